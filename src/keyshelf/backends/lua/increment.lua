-- KEYS data, index, feed, log. ARGV head "now|delta kind|delta" (delta kind
-- "ii" int, "ff" float, "sF" special float; one argument: see put.lua).
-- -> v (an int result, the bare string: a table reply costs the client ~3 us
-- more), {0, t, v} done (a float result); {1} not numeric; {2, v} int
-- overflow; {3} use the slow path.
local data = KEYS[1]
local now, dkind, delta = string.match(ARGV[1], '^([^|]*)|([^|]*)|(.*)$')
feed_init(KEYS[3], KEYS[4])
local cur = redis.call('HMGET', data, 't', 'v', 'n')
local before = {cur[1], cur[2]}
local t = cur[1]
if not t then
  local nt, nv = dkind, delta
  if dkind ~= 'ii' then nt, nv = float_fields(num(dkind, delta)) end
  redis.call('HSET', data, 't', nt, 'v', nv, 'c', now, 'u', now, 'n', 1)
  redis.call('ZADD', KEYS[2], 0, member_of(data, KEYS[2]))
  feed_note(data, before)
  if nt == 'ii' then return nv end
  return {0, nt, nv}
end
if t == 'sI' then return {3} end
if t ~= 'ii' and t ~= 'ff' and t ~= 'sF' then return {1} end
local version = string.format('%d', tonumber(cur[3]) + 1)
local nt, nv
if t == 'ii' and dkind == 'ii' then
  -- Doubles add integers exactly below 2^53; beyond, Redis adds them (and
  -- checks the 64-bit range).
  local a, d = tonumber(cur[2]), tonumber(delta)
  local sum = a + d
  if math.abs(a) < 2^53 and math.abs(d) < 2^53 and math.abs(sum) < 2^53 then
    nt, nv = 'ii', string.format('%d', sum)
    redis.call('HSET', data, 'v', nv, 'u', now, 'n', version)
    feed_note(data, before)
    return nv
  end
  local r = redis.pcall('HINCRBY', data, 'v', delta)
  if type(r) == 'table' and r.err then return {2, cur[2]} end
  nv = redis.call('HGET', data, 'v')
  redis.call('HSET', data, 'u', now, 'n', version)
  feed_note(data, before)
  return nv
end
nt, nv = float_fields(num(t, cur[2]) + num(dkind, delta))
redis.call('HSET', data, 't', nt, 'v', nv, 'u', now, 'n', version)
feed_note(data, before)
return {0, nt, nv}
