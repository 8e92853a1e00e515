-- Helpers shared by every script. Time for the #ttl index comes from the
-- server (TIME), the same clock Redis expires keys with.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function zadd_all(key, score, members)
  local args = {}
  for _, m in ipairs(members) do
    args[#args + 1] = score
    args[#args + 1] = m
    if #args >= 1000 then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', key, unpack(args)) end
end
local function zrem_all(key, members)
  local args = {}
  for _, m in ipairs(members) do
    args[#args + 1] = m
    if #args >= 1000 then
      redis.call('ZREM', key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZREM', key, unpack(args)) end
end
-- Forget index entries of keys whose expiry is due and that are gone.
-- Returns (entries examined, keys found gone, entries of keys without TTL).
local function tidy(index, ttl, base, now, limit)
  local due = redis.call('ZRANGEBYSCORE', ttl, '-inf', now + 1, 'LIMIT', 0, limit)
  local gone, fixed = 0, 0
  for _, m in ipairs(due) do
    local p = redis.call('PTTL', base .. m)
    if p == -2 then
      redis.call('ZREM', index, m)
      redis.call('ZREM', ttl, m)
      gone = gone + 1
    elseif p == -1 then
      redis.call('ZREM', ttl, m)
      fixed = fixed + 1
    end
  end
  return #due, gone, fixed
end
