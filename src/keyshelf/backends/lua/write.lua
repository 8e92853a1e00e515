-- KEYS data, index, ttl, feed, log. ARGV key, t, v, meta ("" none), created, updated,
-- version, px ("" none, "keep"). Stores a whole record (the slow path's write).
local data, index, ttl = KEYS[1], KEYS[2], KEYS[3]
local member, px = ARGV[1], ARGV[8]
feed_init(KEYS[4], KEYS[5])
local before = feed_before(data)
redis.call('HSET', data, 't', ARGV[2], 'v', ARGV[3], 'c', ARGV[5], 'u', ARGV[6], 'n', ARGV[7])
if ARGV[4] == '' then redis.call('HDEL', data, 'm') else redis.call('HSET', data, 'm', ARGV[4]) end
redis.call('ZADD', index, 0, member)
if px == '' then
  redis.call('PERSIST', data)
  redis.call('ZREM', ttl, member)
elseif px ~= 'keep' then
  redis.call('PEXPIRE', data, px)
  redis.call('ZADD', ttl, now_ms() + tonumber(px), member)
end
feed_note(data, before)
return 1
