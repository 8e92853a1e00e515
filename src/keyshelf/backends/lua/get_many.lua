-- KEYS data keys. -> flat {t1, v1, t2, v2, ...}, nil for missing keys.
local out = {}
for i, key in ipairs(KEYS) do
  local r = redis.call('HMGET', key, 't', 'v')
  out[2 * i - 1] = r[1]
  out[2 * i] = r[2]
end
return out
