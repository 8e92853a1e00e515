-- KEYS data, index, feed, log. ARGV key, t, v, now, max size.
-- -> {0, t, v} done; {1, stored t} type mismatch; {2, size} too large.
local data = KEYS[1]
local t, v, now = ARGV[2], ARGV[3], ARGV[4]
feed_init(KEYS[3], KEYS[4])
local cur = redis.call('HMGET', data, 't', 'v')
if not cur[1] then
  redis.call('HSET', data, 't', t, 'v', v, 'c', now, 'u', now, 'n', 1)
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  feed_note(data, cur)
  return {0, t, v}
end
if cur[1] ~= t or (t ~= 'ss' and t ~= 'by') then return {1, cur[1]} end
local size = #cur[2] + #v
if size > tonumber(ARGV[5]) then return {2, size} end
local joined = cur[2] .. v
redis.call('HSET', data, 'v', joined, 'u', now)
redis.call('HINCRBY', data, 'n', 1)
feed_note(data, cur)
return {0, t, joined}
