-- KEYS data, feed, log. ARGV expected t, expected v, new t, new v, now. -> 1 swapped, 0 not.
local data = KEYS[1]
local cur = redis.call('HMGET', data, 't', 'v')
if not cur[1] then return 0 end
local t1, v1, t2, v2 = cur[1], cur[2], ARGV[1], ARGV[2]
if string.sub(t1, 2) ~= string.sub(t2, 2) then return 0 end
local k1, k2 = string.sub(t1, 1, 1), string.sub(t2, 1, 1)
local same
if v1 == v2 and (k1 == k2 or (k1 ~= 'f' and k2 ~= 'f')) then
  same = true
elseif k1 == 'f' and k2 == 'f' then
  local a, b = tonumber(v1), tonumber(v2)
  same = a == b and (a ~= 0 or 1 / a == 1 / b)
else
  same = false
end
if not same then return 0 end
redis.call('HSET', data, 't', ARGV[3], 'v', ARGV[4], 'u', ARGV[5])
redis.call('HINCRBY', data, 'n', 1)
feed_init(KEYS[2], KEYS[3])
feed_note(data, cur)
return 1
