-- KEYS index, ttl, feed, log. ARGV base, low, high, count. -> {examined, last, total size}.
local index, ttl, base = KEYS[1], KEYS[2], ARGV[1]
feed_init(KEYS[3], KEYS[4])
local members = redis.call('ZRANGEBYLEX', index, ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])
local total = 0
for _, m in ipairs(members) do
  local s = size_of(base .. m)
  if s < 0 then
    feed_expired(base .. m)
    redis.call('ZREM', index, m)
    redis.call('ZREM', ttl, m)
  else
    total = total + s
  end
end
return {#members, members[#members] or '', total}
