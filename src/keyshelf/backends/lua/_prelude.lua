-- Helpers shared by every script. Time for the #ttl index comes from the
-- server (TIME), the same clock Redis expires keys with.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The change feed (docs/changes.md). A script that writes gets the feed's
-- hash and stream as its last two KEYS and calls feed_init first. The feed
-- records only if the hash says it is on (one HMGET: the check is in the same
-- script as the write, so every writer honours enabling from its next write).
-- A change is one stream entry "<revision>-<n>" (fields k data key, y kind
-- s/d/e, t v n x after a set, pt pv the value before if the key was live);
-- all the changes of one script share one revision, and so do the scripts
-- of one MULTI that set the hash's field j to 1 first (the first script
-- takes the revision and sets j to 2, the later ones reuse it).
local FEED, LOG, FEED_ON, FEED_REV, FEED_CFG = nil, nil, false, nil, nil
local function feed_init(feed, log)
  FEED, LOG = feed, log
  FEED_CFG = redis.call('HMGET', feed, 'on', 'count', 'ms', 'j')
  FEED_ON = FEED_CFG[1] == '1'
end
-- The value of a data key before a write (nil when the feed is off).
local function feed_before(data)
  if FEED_ON then return redis.call('HMGET', data, 't', 'v') end
  return nil
end
local function feed_rev()
  if FEED_REV then return FEED_REV end
  if FEED_CFG[4] == '2' then
    FEED_REV = tonumber(redis.call('HGET', FEED, 'rev'))
    return FEED_REV
  end
  FEED_REV = redis.call('HINCRBY', FEED, 'rev', 1)
  if FEED_CFG[4] == '1' then redis.call('HSET', FEED, 'j', '2') end
  local ms = FEED_CFG[3]
  if ms and FEED_REV % 64 == 0 then
    -- A duration bound, amortised: drop entries older than the bound
    -- (looking at no more than 1000 of them per run).
    local t = redis.call('TIME')
    local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ms)
    local old = redis.call('XRANGE', LOG, '-', '+', 'COUNT', 1000)
    local keep = nil
    for _, e in ipairs(old) do
      local f = e[2]
      local at = nil
      for i = 1, #f, 2 do if f[i] == 'at' then at = tonumber(f[i + 1]) end end
      if at and at >= cutoff then keep = e[1] break end
    end
    if keep then
      redis.call('XTRIM', LOG, 'MINID', keep)
    elseif #old > 0 then
      local last = old[#old][1]
      local r, n = string.match(last, '^(%d+)-(%d+)$')
      redis.call('XTRIM', LOG, 'MINID', r .. '-' .. string.format('%d', tonumber(n) + 1))
    end
  end
  return FEED_REV
end
local function feed_add(data, kind, after, before)
  local args = {'XADD', LOG}
  local count = FEED_CFG[2]
  if count then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = count
  end
  args[#args + 1] = string.format('%d', feed_rev()) .. '-*'
  args[#args + 1] = 'k'
  args[#args + 1] = data
  args[#args + 1] = 'y'
  args[#args + 1] = kind
  if FEED_CFG[3] then
    -- The server time of the change, for a duration bound (entries without
    -- one, written under a count bound, count as old).
    args[#args + 1] = 'at'
    args[#args + 1] = string.format('%d', now_ms())
  end
  if after then
    args[#args + 1] = 't'
    args[#args + 1] = after[1]
    args[#args + 1] = 'v'
    args[#args + 1] = after[2]
    args[#args + 1] = 'n'
    args[#args + 1] = after[3]
    args[#args + 1] = 'x'
    args[#args + 1] = after[4]
  end
  if before and before[1] then
    args[#args + 1] = 'pt'
    args[#args + 1] = before[1]
    args[#args + 1] = 'pv'
    args[#args + 1] = before[2]
  end
  redis.call(unpack(args))
end
-- Record what a write did to a data key, from its value before (feed_before)
-- and its state now: a set, a removal (kind gone: 'd' or 'e'), or nothing.
local function feed_note(data, before, gone)
  if not FEED_ON then return end
  local a = redis.call('HMGET', data, 't', 'v', 'n')
  if a[1] then
    local x = redis.pcall('PEXPIRETIME', data)
    if type(x) ~= 'number' then
      local left = redis.call('PTTL', data)
      x = -1
      if left >= 0 then x = now_ms() + left end
    end
    a[4] = x
    feed_add(data, 's', a, before)
  elseif before and before[1] then
    feed_add(data, gone or 'd', nil, before)
  end
end
-- Record that Redis expired a key (its value is gone: no prev).
local function feed_expired(data)
  if FEED_ON then feed_add(data, 'e', nil, nil) end
end
-- A namespace's data key is base .. key and its index base minus ':' plus
-- '#keys' (docs in _redis_layout.py), so both are derived from the index's
-- name instead of being sent with every call.
local function base_of(index)
  return string.sub(index, 1, -6) .. ':'
end
local function member_of(data, index)
  return string.sub(data, #index - 3)
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
      feed_expired(base .. m)
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
