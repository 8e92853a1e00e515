-- KEYS data keys. -> {size or -1 per key}.
local out = {}
for i, key in ipairs(KEYS) do out[i] = size_of(key) end
return out
