-- KEYS data. -> {t, v, m, c, u, n, expires_at} or nil; expires_at is the
-- server's own absolute expiry in ms (PEXPIRETIME; TIME + PTTL before Redis
-- 7), -1 for none: the same instant however often it is read.
local r = redis.call('HMGET', KEYS[1], 't', 'v', 'm', 'c', 'u', 'n')
if not r[1] then return false end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  r[7] = -1
else
  local at = redis.pcall('PEXPIRETIME', KEYS[1])
  if type(at) ~= 'number' then at = now_ms() + left end
  r[7] = at
end
return r
