-- KEYS index, ttl, feed, log. ARGV base, limit, low, high ("" = no lex count).
-- Tidies up to ``limit`` due entries, then
-- -> {examined, gone, keys, keys with ttl, keys in [low, high], fixed}.
local index, ttl = KEYS[1], KEYS[2]
feed_init(KEYS[3], KEYS[4])
local examined, gone, fixed = tidy(index, ttl, ARGV[1], now_ms(), tonumber(ARGV[2]))
local ranged = 0
if ARGV[3] ~= '' then ranged = redis.call('ZLEXCOUNT', index, ARGV[3], ARGV[4]) end
return {examined, gone, redis.call('ZCARD', index), redis.call('ZCARD', ttl), ranged, fixed}
