-- KEYS index, ttl, feed, log. ARGV base, low, high, count, with values ("1"/"0").
-- -> {examined, last examined, key1, [t1, v1,] key2, ...}: live keys of one
-- lex range chunk; leftovers of vanished keys are dropped from the indexes.
local index, ttl, base = KEYS[1], KEYS[2], ARGV[1]
feed_init(KEYS[3], KEYS[4])
local members = redis.call('ZRANGEBYLEX', index, ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])
local out = {#members, members[#members] or ''}
local values = ARGV[5] == '1'
for _, m in ipairs(members) do
  local live
  if values then
    local r = redis.call('HMGET', base .. m, 't', 'v')
    live = r[1]
    if live then
      out[#out + 1] = m
      out[#out + 1] = r[1]
      out[#out + 1] = r[2]
    end
  else
    live = redis.call('EXISTS', base .. m) == 1
    if live then out[#out + 1] = m end
  end
  if not live then
    feed_expired(base .. m)
    redis.call('ZREM', index, m)
    redis.call('ZREM', ttl, m)
  end
end
return out
