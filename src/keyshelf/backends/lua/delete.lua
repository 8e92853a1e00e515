-- KEYS index, ttl, data keys. ARGV keys. -> {1|0 per key} (1 = was live).
local out, members = {}, {}
for i = 3, #KEYS do
  out[i - 2] = redis.call('UNLINK', KEYS[i])
  members[i - 2] = ARGV[i - 2]
end
zrem_all(KEYS[1], members)
zrem_all(KEYS[2], members)
return out
