-- squidie: claim.lua — lease up to `limit` visible dispatches from one or more queues.
--
-- Visible: an entry of `ready` the group has not delivered yet (after due delayed ones
-- are promoted), or a claimed dispatch whose lease expired (`leases` score <= now).
-- Candidates from every source are merged by (time, key) — time being visible_at for a
-- ready entry and the lease expiry for a lapsed lease — exactly the contract's order.
-- New entries are delivered with XREADGROUP (the group's PEL is then the set of claimed
-- dispatches); a lapsed lease is taken over with XCLAIM, decided by the store clock and
-- the lease's own expiry rather than the stream's idle time (see docs/backends/redis.md).
-- A dispatch already delivered max_deliveries times is dead-lettered instead.
--
-- Resends: the client makes the token hashes before sending. If the first one is a
-- current lease (the `tokens` index of a group), this call is a resend of a claim that
-- landed, and it answers with the leases that claim granted instead of claiming more.
--
-- KEYS[1 + 7*(j-1) .. 7 + 7*(j-1)]  queue group j (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  owner id (also the consumer name in the group)
-- ARGV[3]  lease duration (µs)
-- ARGV[4]  limit
-- ARGV[5 .. 4+limit]  token hashes for the 1st .. limit-th lease
-- ARGV[5+limit]  G: number of queue groups, followed by the G queue names
--
-- Returns:
--   {0, lease...}  OK; each lease is {queue, key, dispatch JSON, fence, delivery,
--                  lease expiry (µs), run's home queue}, in claim order
--   {1, lease...}  REPLAYED: a resend; the leases the first call granted (those still
--                  current)

--! include common

local owner = ARGV[2]
local lease_us = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local tok_base = 5
local ngroups = tonumber(ARGV[5 + limit])
local groups = {}
for j = 1, ngroups do
  groups[j] = qgroup(1 + GROUP_KEYS * (j - 1), ARGV[5 + limit + j])
end

-- A resend? Its first token is then a current lease; answer with every lease it got.
local function granted(tok)
  for _, g in ipairs(groups) do
    local k = redis.call('HGET', g.tokens, tok)
    if k then
      local rec = load_rec(g, k)
      if rec and rec.s == 'claimed' and rec.t == tok then
        return {g.name, k, rec.d, fmt(rec.f), fmt(rec.n), rec.x, rec.home or g.name}
      end
    end
  end
  return nil
end
local first = granted(ARGV[tok_base])
if first then
  local again = {REPLAYED, first}
  for i = 2, limit do
    local lease = granted(ARGV[tok_base + i - 1])
    if not lease then break end
    again[#again + 1] = lease
  end
  return again
end

local now = now_us(ARGV[1])
for _, g in ipairs(groups) do push_ready(g, now, nil) end

local out = {}
local acked = {}       -- groups where an entry delivered to `owner` was acknowledged
local budget = limit + 1000

-- Lease (or bury) candidate `c` of group `g`; `sid` is the entry just read for it.
local function take(c, g, sid)
  local rec = load_rec(g, c.k)
  local holder = nil
  if c.kind == 'ready' then
    holder = owner
    if not rec or rec.s ~= 'pending' or rec.sid ~= sid then
      -- A stale entry (its record moved on): acknowledge and drop it.
      redis.call('XACK', g.ready, GROUP, sid)
      redis.call('XDEL', g.ready, sid)
      acked[g.name] = g
      return
    end
  else
    if not rec or rec.s ~= 'claimed' then
      redis.call('ZREM', g.leases, c.k)
      return
    end
    remember(rec, {event = 'lease_expired', fence = rec.f, owner = rec.w})
    if rec.t then redis.call('HDEL', g.tokens, rec.t) end
    if rec.sid then
      redis.call('XCLAIM', g.ready, GROUP, owner, 0, rec.sid, 'JUSTID')
      if rec.w ~= owner then forget_consumer(g, rec.w) end
      holder = owner
    end
  end
  if rec.n >= rec.m then
    bury(g, c.k, rec, 'delivery_limit_exceeded', now, nil)
    if holder then acked[g.name] = g end
    return
  end
  local i = #out + 1
  local expiry = now + lease_us
  rec.s = 'claimed'
  rec.n = rec.n + 1
  rec.f = rec.f + 1
  rec.w = owner
  rec.t = ARGV[tok_base + i - 1]
  rec.x = fmt(expiry)
  if sid then rec.sid = sid end
  remember(rec, {event = 'claimed', fence = rec.f, owner = owner, at = fmt(now)})
  redis.call('ZADD', g.leases, rec.x, c.k)
  redis.call('HSET', g.tokens, rec.t, c.k)
  save_rec(g, c.k, rec)
  out[i] = {g.name, c.k, rec.d, fmt(rec.f), fmt(rec.n), rec.x, rec.home or g.name}
end

while #out < limit and budget > 0 do
  local need = limit - #out
  -- One sorted list per source: lapsed leases (by expiry, key) and unread entries (in
  -- stream order) of every group; merged by their heads so entries are taken in order.
  local lists = {}
  for j, g in ipairs(groups) do
    local lapsed = redis.call('ZRANGE', g.leases, '-inf', fmt(now), 'BYSCORE',
                              'LIMIT', 0, need, 'WITHSCORES')
    local items = {}
    for i = 1, #lapsed, 2 do
      items[#items + 1] = {j = j, k = lapsed[i], v = tonumber(lapsed[i + 1]), kind = 'lapsed'}
    end
    if #items > 0 then lists[#lists + 1] = {items = items, pos = 1} end
    if redis.call('EXISTS', g.ready) == 1 then
      local cursor = redis.call('HGET', g.meta, 'cursor') or '0-0'
      local entries = redis.call('XRANGE', g.ready, '(' .. cursor, '+', 'COUNT', need)
      items = {}
      for _, e in ipairs(entries) do
        local rec = load_rec(g, e[2][2])
        items[#items + 1] = {j = j, k = e[2][2], v = rec and tonumber(rec.v) or 0,
                             kind = 'ready'}
      end
      if #items > 0 then lists[#lists + 1] = {items = items, pos = 1} end
    end
  end
  local chosen = {}
  while #chosen < need do
    local best, from = nil, nil
    for _, l in ipairs(lists) do
      local it = l.items[l.pos]
      if it and (not best or by_time_then_key(it, best)) then best, from = it, l end
    end
    if not best then break end
    from.pos = from.pos + 1
    chosen[#chosen + 1] = best
  end
  if #chosen == 0 then break end

  -- Deliver the chosen unread entries through the group (they are a prefix of each
  -- group's unread entries, so XREADGROUP returns exactly them).
  local counts, read = {}, {}
  for _, c in ipairs(chosen) do
    if c.kind == 'ready' then counts[c.j] = (counts[c.j] or 0) + 1 end
  end
  for j, count in pairs(counts) do
    local g = groups[j]
    local got = redis.call('XREADGROUP', 'GROUP', GROUP, owner, 'COUNT', count,
                           'STREAMS', g.ready, '>')
    local entries = got and got[1] and got[1][2] or {}
    read[j] = {entries = entries, pos = 1}
    if #entries > 0 then redis.call('HSET', g.meta, 'cursor', entries[#entries][1]) end
  end

  for _, c in ipairs(chosen) do
    budget = budget - 1
    local g = groups[c.j]
    if c.kind == 'ready' then
      local r = read[c.j]
      local e = r.entries[r.pos]
      r.pos = r.pos + 1
      if e then
        c.k = e[2][2]
        take(c, g, e[1])
      end
    else
      take(c, g, nil)
    end
  end
end

for _, g in pairs(acked) do forget_consumer(g, owner) end

return {OK, unpack(out)}
