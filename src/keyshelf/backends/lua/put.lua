-- KEYS data, index, ttl, feed, log. ARGV head, v, meta (absent = none).
-- head is "now|px|flags|t": px "" none or "keep"; flags the meta mode ("k"
-- keep, "s" set) then the condition ("", "nx", "xx"); t last, as it is the
-- only free text. Few arguments: each one costs the client more than this
-- script's parse of the head (docs/redis.md).
-- -> 1 written, 0 stopped by the condition.
local data, index, ttl = KEYS[1], KEYS[2], KEYS[3]
local now, px, flags, t = string.match(ARGV[1], '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
local v, meta = ARGV[2], ARGV[3] or ''
local mmode, cond = string.sub(flags, 1, 1), string.sub(flags, 2)
feed_init(KEYS[4], KEYS[5])
if cond ~= '' then
  local e = redis.call('EXISTS', data)
  if (cond == 'nx' and e == 1) or (cond == 'xx' and e == 0) then return 0 end
end
local before = feed_before(data)
local version = redis.call('HINCRBY', data, 'n', 1)
if version == 1 then
  if mmode == 's' and meta ~= '' then
    redis.call('HSET', data, 't', t, 'v', v, 'c', now, 'u', now, 'm', meta)
  else
    redis.call('HSET', data, 't', t, 'v', v, 'c', now, 'u', now)
  end
  redis.call('ZADD', index, 0, member_of(data, index))
else
  redis.call('HSET', data, 't', t, 'v', v, 'u', now)
  if mmode == 's' then
    if meta == '' then redis.call('HDEL', data, 'm') else redis.call('HSET', data, 'm', meta) end
  end
  if px == '' then
    if redis.call('PERSIST', data) == 1 then redis.call('ZREM', ttl, member_of(data, index)) end
  end
end
if px ~= '' and px ~= 'keep' then
  redis.call('PEXPIRE', data, px)
  local clock = now_ms()
  redis.call('ZADD', ttl, clock + tonumber(px), member_of(data, index))
  feed_note(data, before)
  if version == 1 then tidy(index, ttl, base_of(index), clock, 4) end
  return 1
end
feed_note(data, before)
return 1
