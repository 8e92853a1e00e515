-- KEYS index, ttl, data keys, feed, log. ARGV now, px ("" none), base, then key, t, v
-- per item. Keeps each live key's user metadata.
local index, ttl = KEYS[1], KEYS[2]
local now, px = ARGV[1], ARGV[2]
local fresh, all, befores = {}, {}, {}
local last = #KEYS - 2
feed_init(KEYS[last + 1], KEYS[last + 2])
for i = 3, last do
  local data = KEYS[i]
  local a = 3 * (i - 2) + 1
  local member = ARGV[a]
  befores[i] = feed_before(data)
  if redis.call('HINCRBY', data, 'n', 1) == 1 then
    redis.call('HSET', data, 't', ARGV[a + 1], 'v', ARGV[a + 2], 'c', now, 'u', now)
    fresh[#fresh + 1] = member
  else
    redis.call('HSET', data, 't', ARGV[a + 1], 'v', ARGV[a + 2], 'u', now)
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
  if #fresh > 0 then tidy(index, ttl, ARGV[3], clock, #fresh + 4) end
end
return 1
