-- KEYS data, ttl, feed, log. ARGV key, px ("" = persist). -> 1 if done.
feed_init(KEYS[3], KEYS[4])
local before = feed_before(KEYS[1])
if ARGV[2] == '' then
  if redis.call('PERSIST', KEYS[1]) == 1 then
    redis.call('ZREM', KEYS[2], ARGV[1])
    feed_note(KEYS[1], before)
    return 1
  end
  return 0
end
if redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[2]), ARGV[1])
  feed_note(KEYS[1], before)
  return 1
end
return 0
