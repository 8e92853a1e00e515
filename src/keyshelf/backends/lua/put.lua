-- KEYS data, index, ttl, feed, log. ARGV key, t, v, now, px ("" none, "keep"),
-- meta mode ("k" keep, "s" set), meta ("" = none), condition ("", "nx", "xx"),
-- base. -> 1 written, 0 stopped by the condition.
local data, index, ttl = KEYS[1], KEYS[2], KEYS[3]
local member, t, v, now, px = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local mmode, meta, cond = ARGV[6], ARGV[7], ARGV[8]
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
  redis.call('ZADD', index, 0, member)
else
  redis.call('HSET', data, 't', t, 'v', v, 'u', now)
  if mmode == 's' then
    if meta == '' then redis.call('HDEL', data, 'm') else redis.call('HSET', data, 'm', meta) end
  end
  if px == '' then
    if redis.call('PERSIST', data) == 1 then redis.call('ZREM', ttl, member) end
  end
end
if px ~= '' and px ~= 'keep' then
  redis.call('PEXPIRE', data, px)
  local clock = now_ms()
  redis.call('ZADD', ttl, clock + tonumber(px), member)
  feed_note(data, before)
  if version == 1 then tidy(index, ttl, ARGV[9], clock, 4) end
  return 1
end
feed_note(data, before)
return 1
