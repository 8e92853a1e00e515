-- Float arithmetic for increments: Lua numbers are IEEE doubles, as Python's
-- floats are, so a + b is the same double; the result is written as the
-- shortest of %.15g/%.16g/%.17g that reads back as the same double (%.17g
-- always does), and the special values as the codec writes them.
local function num(kind, s)
  if kind == 'sF' then
    if s == 'nan' then return 0 / 0 end
    if s == 'inf' then return math.huge end
    if s == '-inf' then return -math.huge end
    if s == '-0.0' then return -1 / math.huge end
  end
  return tonumber(s)
end
local function float_fields(r)
  if r ~= r then return 'sF', 'nan' end
  if r == math.huge then return 'sF', 'inf' end
  if r == -math.huge then return 'sF', '-inf' end
  if r == 0 and 1 / r < 0 then return 'sF', '-0.0' end
  for p = 15, 16 do
    local s = string.format('%.' .. p .. 'g', r)
    if tonumber(s) == r then return 'ff', s end
  end
  return 'ff', string.format('%.17g', r)
end
