-- KEYS index, ttl. ARGV base, low, high. Deletes every key of the lex range
-- (the whole namespace for "-" "+") in one atomic step. -> live keys removed.
local index, ttl, base, low, high = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local removed = 0
while true do
  local members = redis.call('ZRANGEBYLEX', index, low, high, 'LIMIT', 0, 500)
  if #members == 0 then break end
  for _, m in ipairs(members) do
    removed = removed + redis.call('UNLINK', base .. m)
  end
  zrem_all(index, members)
  zrem_all(ttl, members)
end
if low == '-' and high == '+' then redis.call('UNLINK', ttl) end
return removed
