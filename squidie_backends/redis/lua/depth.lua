#!lua flags=no-writes
-- squidie: depth.lua — count one queue's dispatches by state, against the store clock.
--
-- visible   = unread entries of `ready` (XLEN minus the PEL) + delayed ones now due
-- scheduled = delayed ones not yet due
-- claimed   = `leases` (lapsed leases included until they are claimed again)
-- dead      = entries of `dead`
--
-- KEYS[1 .. 7]  the queue group (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
--
-- Returns:
--   {visible, scheduled, claimed, dead, oldest_visible_at (µs) or false}

--! include common

local g = qgroup(1, '')
local now = now_us(ARGV[1])
local unread, oldest = 0, nil
if redis.call('EXISTS', g.ready) == 1 then
  local pending = redis.call('XPENDING', g.ready, GROUP)[1]
  unread = redis.call('XLEN', g.ready) - pending
  local cursor = redis.call('HGET', g.meta, 'cursor') or '0-0'
  local first = redis.call('XRANGE', g.ready, '(' .. cursor, '+', 'COUNT', 1)
  if #first > 0 then
    local rec = load_rec(g, first[1][2][2])
    if rec then oldest = tonumber(rec.v) end
  end
end
local due = redis.call('ZCOUNT', g.delayed, '-inf', fmt(now))
local scheduled = redis.call('ZCOUNT', g.delayed, '(' .. fmt(now), '+inf')
local head = redis.call('ZRANGE', g.delayed, 0, 0, 'WITHSCORES')
if #head > 0 then
  local v = tonumber(head[2])
  if v <= now and (not oldest or v < oldest) then oldest = v end
end
return {unread + due, scheduled, redis.call('ZCARD', g.leases), redis.call('XLEN', g.dead),
        oldest and fmt(oldest) or false}
