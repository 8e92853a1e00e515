-- KEYS index, ttl, data key of every key of the commit (sorted), feed, log.
-- ARGV now, base (data key = base .. key), then one check per data key ("-" none, "" absent, else the
-- version), then the mutations in order, each a kind and the 1-based index
-- of its key among the data keys:
--   's' i t v px mmode meta   set (px "" = no TTL; mmode "k" keep, "s" set)
--   'd' i                     delete
--   'i' i delta dkind         increment ("ii" int, "ff" float, "sF" special)
--   'e' i px                  expire (nothing if the key is absent then)
-- -> {0} a check failed; {1, version per data key (0: not written)} done;
--    {2} not numeric; {3} use the slow path (a value Lua cannot add exactly).
-- Every decision is taken before the first write: a refusal changes nothing.
local now, skip = ARGV[1], #ARGV[2]
local n = #KEYS - 4
feed_init(KEYS[n + 3], KEYS[n + 4])
local members, cur = {}, {}
for i = 1, n do
  local r = redis.call('HMGET', KEYS[i + 2], 't', 'v', 'm', 'n', 'c')
  local want = ARGV[i + 2]
  if want ~= '-' then
    if want == '' then
      if r[1] then return {0} end
    elseif not r[1] or r[4] ~= want then
      return {0}
    end
  end
  cur[i] = r
end
-- The state of each key as the mutations leave it: live (t, v, m), whether
-- it was touched, and what its TTL becomes ("keep", "" none, or a px).
local st = {}
for i = 1, n do
  local r = cur[i]
  st[i] = {live = r[1] ~= false and r[1] ~= nil, t = r[1], v = r[2], m = r[3] or '',
           px = 'keep', touched = false}
end
local a = n + 3
while a <= #ARGV do
  local kind, s = ARGV[a], st[tonumber(ARGV[a + 1])]
  if kind == 's' then
    s.t, s.v, s.px = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    if ARGV[a + 5] == 's' then s.m = ARGV[a + 6] elseif not s.live then s.m = '' end
    s.live, s.touched = true, true
    a = a + 7
  elseif kind == 'd' then
    s.live, s.touched = false, true
    a = a + 2
  elseif kind == 'i' then
    local delta, dkind = ARGV[a + 2], ARGV[a + 3]
    if not s.live then
      s.t, s.v, s.m, s.px = dkind, delta, '', ''
      if dkind ~= 'ii' then s.t, s.v = float_fields(num(dkind, delta)) end
    elseif s.t == 'sI' then
      return {3}
    elseif s.t ~= 'ii' and s.t ~= 'ff' and s.t ~= 'sF' then
      return {2}
    elseif s.t == 'ii' and dkind == 'ii' then
      local x, d = tonumber(s.v), tonumber(delta)
      if math.abs(x) >= 2^53 or math.abs(d) >= 2^53 or math.abs(x + d) >= 2^53 then
        return {3}
      end
      s.v = string.format('%d', x + d)
    else
      s.t, s.v = float_fields(num(s.t, s.v) + num(dkind, delta))
    end
    s.live, s.touched = true, true
    a = a + 4
  else -- 'e'
    if s.live then s.px, s.touched = ARGV[a + 2], true end
    a = a + 3
  end
end
-- Apply.
local out = {1}
for i = 1, n do
  local s, r, data = st[i], cur[i], KEYS[i + 2]
  local was = r[1] ~= false and r[1] ~= nil
  local member = string.sub(data, skip + 1)
  out[i + 1] = 0
  if s.touched and s.live then
    local version, created = 1, now
    if was then version, created = tonumber(r[4]) + 1, r[5] end
    redis.call('HSET', data, 't', s.t, 'v', s.v, 'c', created, 'u', now,
               'n', string.format('%d', version))
    if s.m == '' then redis.call('HDEL', data, 'm') else redis.call('HSET', data, 'm', s.m) end
    redis.call('ZADD', KEYS[1], 0, member)
    if s.px == '' then
      if redis.call('PERSIST', data) == 1 then redis.call('ZREM', KEYS[2], member) end
    elseif s.px ~= 'keep' then
      redis.call('PEXPIRE', data, s.px)
      redis.call('ZADD', KEYS[2], now_ms() + tonumber(s.px), member)
    end
    out[i + 1] = version
    feed_note(data, r)
  elseif s.touched and was then
    redis.call('UNLINK', data)
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    feed_note(data, r)
  end
end
return out
