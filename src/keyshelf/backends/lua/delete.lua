-- KEYS index, ttl, data keys, feed, log. ARGV keys. -> {1|0 per key} (1 = was live).
local out, members = {}, {}
local last = #KEYS - 2
feed_init(KEYS[last + 1], KEYS[last + 2])
for i = 3, last do
  local before = feed_before(KEYS[i])
  out[i - 2] = redis.call('UNLINK', KEYS[i])
  feed_note(KEYS[i], before)
  members[i - 2] = ARGV[i - 2]
end
zrem_all(KEYS[1], members)
zrem_all(KEYS[2], members)
return out
