-- KEYS index, ttl, data keys, feed, log. ARGV now, base, then key, t, v, meta ("" none),
-- at ("" none) per item: import and migration. Each record replaces the
-- value and the user metadata and gets its absolute expiry exactly
-- (PEXPIREAT, on the server's clock: an instant already past deletes the key).
local index, ttl = KEYS[1], KEYS[2]
local now = ARGV[1]
local fresh = {}
local clock = now_ms()
local last = #KEYS - 2
feed_init(KEYS[last + 1], KEYS[last + 2])
for i = 3, last do
  local data = KEYS[i]
  local a = 5 * (i - 3) + 3
  local member, meta, at = ARGV[a], ARGV[a + 3], ARGV[a + 4]
  local before = feed_before(data)
  if redis.call('HINCRBY', data, 'n', 1) == 1 then
    redis.call('HSET', data, 't', ARGV[a + 1], 'v', ARGV[a + 2], 'c', now, 'u', now)
    fresh[#fresh + 1] = member
  else
    redis.call('HSET', data, 't', ARGV[a + 1], 'v', ARGV[a + 2], 'u', now)
  end
  if meta == '' then redis.call('HDEL', data, 'm') else redis.call('HSET', data, 'm', meta) end
  if at == '' then
    if redis.call('PERSIST', data) == 1 then redis.call('ZREM', ttl, member) end
  else
    redis.call('PEXPIREAT', data, at)
    redis.call('ZADD', ttl, at, member)
  end
  feed_note(data, before)
end
zadd_all(index, 0, fresh)
if #fresh > 0 then tidy(index, ttl, ARGV[2], clock, #fresh + 4) end
return 1
