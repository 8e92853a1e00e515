-- The documented size of a payload (codec.payload_size), from the t field.
local function size_of(data)
  local t = redis.call('HGET', data, 't')
  if not t then return -1 end
  local kind = string.sub(t, 1, 1)
  if kind == 'n' then return 0 end
  if kind == 'i' or kind == 'f' then
    if string.sub(t, 2) == 'b' then return 1 end
    return 8
  end
  return redis.call('HSTRLEN', data, 'v')
end
