-- KEYS index, ttl, feed, log. ARGV base, low, high. Deletes every key of the lex range
-- (the whole namespace for "-" "+") in one atomic step. -> live keys removed.
local index, ttl, base, low, high = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local removed = 0
feed_init(KEYS[3], KEYS[4])
while true do
  local members = redis.call('ZRANGEBYLEX', index, low, high, 'LIMIT', 0, 500)
  if #members == 0 then break end
  for _, m in ipairs(members) do
    local before = feed_before(base .. m)
    local gone = redis.call('UNLINK', base .. m)
    removed = removed + gone
    if gone == 1 then feed_note(base .. m, before) else feed_expired(base .. m) end
  end
  zrem_all(index, members)
  zrem_all(ttl, members)
end
if low == '-' and high == '+' then redis.call('UNLINK', ttl) end
return removed
