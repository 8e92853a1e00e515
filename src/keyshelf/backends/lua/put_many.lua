-- KEYS index, ttl, data keys, feed, log. ARGV head "now|px" (px "" none),
-- items: per data key, in order, its t and v packed as struct '>Bc0I4c0'
-- (t's length in one byte, t, v's length in four, v). One argument for the
-- whole batch instead of three per key: the client's cost is per argument
-- (docs/redis.md). Keeps each live key's user metadata.
local index, ttl = KEYS[1], KEYS[2]
local now, px = string.match(ARGV[1], '^([^|]*)|(.*)$')
local items = ARGV[2]
local fresh, all, befores = {}, {}, {}
local last = #KEYS - 2
local skip = #index - 3
feed_init(KEYS[last + 1], KEYS[last + 2])
local pos, t, v = 1, nil, nil
for i = 3, last do
  local data = KEYS[i]
  t, v, pos = struct.unpack('>Bc0I4c0', items, pos)
  local member = string.sub(data, skip)
  befores[i] = feed_before(data)
  if redis.call('HINCRBY', data, 'n', 1) == 1 then
    redis.call('HSET', data, 't', t, 'v', v, 'c', now, 'u', now)
    fresh[#fresh + 1] = member
  else
    redis.call('HSET', data, 't', t, 'v', v, 'u', now)
  end
  all[#all + 1] = member
  if px ~= '' then redis.call('PEXPIRE', data, px) end
end
zadd_all(index, 0, fresh)
if px == '' and redis.call('EXISTS', ttl) == 1 then
  -- Only keys listed in #ttl can have an expiry to remove.
  local listed = {}
  for start = 1, #all, 500 do
    local chunk = {unpack(all, start, math.min(start + 499, #all))}
    local scores = redis.call('ZMSCORE', ttl, unpack(chunk))
    for j, score in ipairs(scores) do
      if score then
        redis.call('PERSIST', KEYS[start + j + 1])
        listed[#listed + 1] = chunk[j]
      end
    end
  end
  zrem_all(ttl, listed)
end
if FEED_ON then
  for i = 3, last do feed_note(KEYS[i], befores[i]) end
end
if px ~= '' then
  local clock = now_ms()
  zadd_all(ttl, clock + tonumber(px), all)
  if #fresh > 0 then tidy(index, ttl, base_of(index), clock, #fresh + 4) end
end
return 1
