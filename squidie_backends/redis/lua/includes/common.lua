-- squidie include: common.lua — helpers shared by the scripts (inlined where a script
-- says `--! include common`; never loaded on its own).
--
-- Conventions
--   * Times are integer microseconds of the store clock (server TIME + the client's test
--     offset), held in Lua numbers (exact below 2^53) and stored or returned as decimal
--     strings made by fmt(): tostring() and cjson would round them to 14 digits.
--   * A "queue group" is seven consecutive KEYS of one queue, all with the queue's hash tag:
--       +0 disp     HASH    dispatch key -> record (cjson, see below)
--       +1 ready    STREAM  visible dispatches, read by the consumer group GROUP
--       +2 delayed  ZSET    pending dispatches not yet in `ready`, score = visible_at
--       +3 leases   ZSET    claimed dispatches, score = lease expiry
--       +4 meta     HASH    `cursor` (the group's last delivered id), `dlast` (last dead id)
--       +5 dead     STREAM  dead letters
--       +6 tokens   HASH    token hash of every current lease -> dispatch key (lets a
--                           resent claim find the leases its first send granted)
--   * A dispatch record (cjson object, all times as strings):
--       d dispatch JSON (made by the client, opaque here)   i intent (opaque string)
--       r run id   q queue   home the run's home queue      m max deliveries
--       s state: pending | claimed | completed | failed | dead_lettered
--       v visible_at   n deliveries   f fence   w owner   t token hash   x lease expiry
--       why reason   sid entry id in `ready`   did entry id in `dead`
--       h history (oldest first, at most HISTORY_LIMIT)   lq/lop last request id and op
--   * String order is byte order (bytes_lt): Redis sets LC_COLLATE from its environment,
--     so Lua's `<` on strings could follow a locale.

local GROUP = 'squidie'
local HISTORY_LIMIT = 50
local PROMOTE_LIMIT = 1000

-- Return codes, mirrored by squidie_backends.redis._scripts.Code.
local OK = 0
local REPLAYED = 1
local E_LEASE_UNKNOWN = -1
local E_LEASE_NOT_CURRENT = -2
local E_LEASE_EXPIRED = -3
local E_APPEND_CONFLICT = -4
local E_RUN_TERMINAL = -5
local E_IDEMPOTENCY = -6
local E_NEED_QUEUES = -7
local E_REINDEX = -8
local E_NOT_DEAD = -9
local E_OTHER_HOME = -10

local TERMINAL = {completed = true, failed = true, cancelled = true}

local function fmt(n)
  return string.format('%d', n)
end

-- ``offset`` is the client's test offset added to the server's TIME, or, when the store
-- runs on an injected clock, "=<microseconds>": that clock's absolute time (one clock per
-- decision either way, never a mix).
local function now_us(offset)
  if string.sub(offset, 1, 1) == '=' then
    return tonumber(string.sub(offset, 2))
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(offset)
end

local function bytes_lt(a, b)
  if a == b then return false end
  local la, lb = #a, #b
  local n = la < lb and la or lb
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return la < lb
end

-- Claim order: earliest time (visible_at, or lease expiry for a lapsed lease), then key.
local function by_time_then_key(a, b)
  if a.v ~= b.v then return a.v < b.v end
  return bytes_lt(a.k, b.k)
end

local GROUP_KEYS = 7

local function qgroup(base, name)
  return {name = name, disp = KEYS[base], ready = KEYS[base + 1], delayed = KEYS[base + 2],
          leases = KEYS[base + 3], meta = KEYS[base + 4], dead = KEYS[base + 5],
          tokens = KEYS[base + 6]}
end

local function decode(raw, what)
  local ok, value = pcall(cjson.decode, raw)
  if not ok or type(value) ~= 'table' then
    error({err = 'SQUIDIE_CORRUPT ' .. what})
  end
  return value
end

local function load_rec(g, k)
  local raw = redis.call('HGET', g.disp, k)
  if not raw then return nil end
  local rec = decode(raw, 'dispatch record ' .. k)
  if type(rec.h) ~= 'table' then rec.h = {} end
  return rec
end

local function save_rec(g, k, rec)
  redis.call('HSET', g.disp, k, cjson.encode(rec))
end

local function remember(rec, entry)
  local h = rec.h
  h[#h + 1] = entry
  if #h > HISTORY_LIMIT then table.remove(h, 1) end
end

local function ensure_stream(g)
  if redis.call('EXISTS', g.ready) == 0 then
    redis.call('XGROUP', 'CREATE', g.ready, GROUP, '0', 'MKSTREAM')
    redis.call('HSET', g.meta, 'cursor', '0-0')
  end
end

-- Remove a consumer (one per owner id) from the group once it holds no pending entry, so
-- owners that come and go do not accumulate in the group.
local function forget_consumer(g, owner)
  if owner and redis.call('EXISTS', g.ready) == 1 then
    local pending = redis.call('XPENDING', g.ready, GROUP, '-', '+', 1, owner)
    if #pending == 0 then
      redis.call('XGROUP', 'DELCONSUMER', g.ready, GROUP, owner)
    end
  end
end

-- Take the record's entry out of `ready`: acknowledged (if delivered) and deleted.
local function drop_entry(g, rec)
  if rec.sid then
    redis.call('XACK', g.ready, GROUP, rec.sid)
    redis.call('XDEL', g.ready, rec.sid)
    rec.sid = nil
  end
end

-- Move into `all` (sorted, about to be appended) the unread entries at the end of `ready`
-- that sort after its first item, so that appending `all` keeps the unread part of
-- `ready` in claim order. Every earlier batch promoted all that was due at its time, so
-- only entries visible at the same instant as the new batch can sort after it (several
-- calls at one clock reading, common under an injected clock): the scan usually stops
-- at the first entry. The moved entries were never delivered, so deleting and
-- re-adding them is invisible to the group; stale ones (their record moved on) go.
local function unread_tail_after(g, all)
  local cursor = redis.call('HGET', g.meta, 'cursor') or '0-0'
  local first = all[1]
  local moved, done = false, false
  local top, count = '+', 1
  while not done do
    -- One entry first: the scan usually stops there, and every entry read is a reply
    -- Redis builds and Lua converts. Reading a hundred made each enqueue behind a
    -- backlog cost the server about 130 µs more.
    local tail = redis.call('XREVRANGE', g.ready, top, '(' .. cursor, 'COUNT', count)
    if #tail == 0 then break end
    count = 100
    for _, e in ipairs(tail) do
      local k = e[2][2]
      local rec = load_rec(g, k)
      if rec and rec.s == 'pending' and rec.sid == e[1] then
        local it = {k = k, v = tonumber(rec.v), rec = rec}
        if not by_time_then_key(first, it) then
          done = true
          break
        end
        all[#all + 1] = it
        moved = true
      end
      redis.call('XDEL', g.ready, e[1])
      top = '(' .. e[1]
    end
  end
  if moved then table.sort(all, by_time_then_key) end
end

-- Append `items` ({k, v, rec}, visible now) and the due delayed dispatches to `ready` in
-- (visible_at, key) order. Every append goes through here, so `ready` stays sorted by the
-- time each entry became visible and the group reads it in claim order. Promotion is
-- bounded per call (PROMOTE_LIMIT, so no script runs long); while more is due than one
-- call promotes, `items` wait in `delayed` too (they are due, so the next promotion
-- moves them, in order, after the backlog before them).
local function push_ready(g, now, items)
  local due = redis.call('ZRANGE', g.delayed, '-inf', fmt(now), 'BYSCORE',
                         'LIMIT', 0, PROMOTE_LIMIT + 1, 'WITHSCORES')
  local backlog = #due > 2 * PROMOTE_LIMIT
  local all, members = {}, {}
  for i = 1, math.min(#due, 2 * PROMOTE_LIMIT), 2 do
    all[#all + 1] = {k = due[i], v = tonumber(due[i + 1])}
    members[#members + 1] = due[i]
  end
  if items then
    for _, it in ipairs(items) do
      if backlog then
        redis.call('ZADD', g.delayed, fmt(it.v), it.k)
        save_rec(g, it.k, it.rec or load_rec(g, it.k))
      else
        all[#all + 1] = it
      end
    end
  end
  if #all == 0 then return end
  if #members > 0 then redis.call('ZREM', g.delayed, unpack(members)) end
  table.sort(all, by_time_then_key)
  ensure_stream(g)
  unread_tail_after(g, all)
  for _, it in ipairs(all) do
    local rec = it.rec or load_rec(g, it.k)
    if rec and rec.s == 'pending' then
      rec.sid = redis.call('XADD', g.ready, '*', 'k', it.k)
      save_rec(g, it.k, rec)
    end
  end
end

-- Make a pending record deliverable at rec.v: now (into `ready`) or later (`delayed`).
local function schedule(g, k, rec, now)
  local v = tonumber(rec.v)
  if v <= now then
    push_ready(g, now, {{k = k, v = v, rec = rec}})
  else
    redis.call('ZADD', g.delayed, rec.v, k)
    save_rec(g, k, rec)
  end
end

-- Why a lease presented with token hash `tok` may not act now (OK when it may).
local function lease_state(rec, tok, now)
  if not rec then return E_LEASE_UNKNOWN end
  if rec.s ~= 'claimed' or rec.t ~= tok then return E_LEASE_NOT_CURRENT end
  if not rec.x or tonumber(rec.x) <= now then return E_LEASE_EXPIRED end
  return OK
end

-- A dead-letter stream id "<ms>-<µs within the ms * 1000 + n>" from the store clock,
-- n counting burials within this script call: strictly increasing per stream, and the
-- dead letters of several queues merge in the order they were buried, even when one
-- claim buries in two queues at the same instant.
local buried_in_call = 0
local function dead_id(g, now)
  buried_in_call = buried_in_call + 1
  local ms, seq = math.floor(now / 1000), (now % 1000) * 1000 + buried_in_call
  local last = redis.call('HGET', g.meta, 'dlast')
  if last then
    local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
    lms, lseq = tonumber(lms), tonumber(lseq)
    if ms < lms or (ms == lms and seq <= lseq) then ms, seq = lms, lseq + 1 end
  end
  local id = fmt(ms) .. '-' .. fmt(seq)
  redis.call('HSET', g.meta, 'dlast', id)
  return id
end

-- Leave a record's delivery structures (stream entry, delayed, leases, token index).
-- `holder` is the consumer that has its entry pending, if any.
local function detach(g, k, rec, holder)
  drop_entry(g, rec)
  if holder then forget_consumer(g, holder) end
  redis.call('ZREM', g.leases, k)
  redis.call('ZREM', g.delayed, k)
  if rec.s == 'claimed' and rec.t then redis.call('HDEL', g.tokens, rec.t) end
end

local function bury(g, k, rec, reason, now, holder)
  detach(g, k, rec, holder)
  rec.s = 'dead_lettered'
  rec.why = reason
  rec.x = nil
  rec.t = nil
  remember(rec, {event = 'dead_lettered', reason = reason, at = fmt(now)})
  rec.did = redis.call('XADD', g.dead, dead_id(g, now), 'k', k, 'run', rec.r,
                       'reason', reason, 'deliveries', fmt(rec.n), 'at', fmt(now))
  save_rec(g, k, rec)
end

-- Settle as `completed` or `failed` (the token hash is kept: a resend can be recognised).
local function settle(g, k, rec, state, reason, now)
  detach(g, k, rec, rec.s == 'claimed' and rec.w or nil)
  rec.s = state
  rec.why = reason
  rec.x = nil
  local entry = {event = state, fence = rec.f, at = fmt(now)}
  if reason then entry.reason = reason end
  remember(rec, entry)
  save_rec(g, k, rec)
end

-- ---------------------------------------------------------------- enqueue helpers

-- The queue of a run's dispatch from its `rd` entry ("<n>|<queue>").
local function rd_queue(value)
  local _, q = string.match(value, '^(%d+)|(.*)$')
  return q
end

-- Whether dispatch `e` ({k, intent, queue}) is 'new', 'same' (already there with the
-- same intent) or a conflict reply. `rd` is the run's dispatch map (home slot).
local function existing(g, rd, e)
  local rec = load_rec(g, e.k)
  if rec then
    if rec.i ~= e.intent then return {E_IDEMPOTENCY, e.k} end
    return 'same'
  end
  local other = redis.call('HGET', rd, e.k)
  if other and rd_queue(other) ~= e.queue then
    -- The key is taken in another queue: the queue is part of the intent.
    return {E_IDEMPOTENCY, e.k}
  end
  return 'new'
end

-- Create the records of `fresh` dispatches ({k, intent, json, delay, maxd, run, queue,
-- home, rd, g}) and make them deliverable; immediate ones enter `ready` in claim order.
local function add_dispatches(fresh, now)
  local immediate, order = {}, {}
  for _, e in ipairs(fresh) do
    local rec = {d = e.json, i = e.intent, r = e.run, q = e.queue, home = e.home, m = e.maxd,
                 s = 'pending', v = fmt(now + e.delay), n = 0, f = 0, h = {}}
    local n = redis.call('HLEN', e.rd) + 1
    redis.call('HSET', e.rd, e.k, fmt(n) .. '|' .. e.queue)
    if e.delay <= 0 then
      local list = immediate[e.g.name]
      if not list then
        list = {}
        immediate[e.g.name] = list
        order[#order + 1] = e.g
      end
      list[#list + 1] = {k = e.k, v = now, rec = rec}
    else
      redis.call('ZADD', e.g.delayed, rec.v, e.k)
      save_rec(e.g, e.k, rec)
    end
  end
  for _, g in ipairs(order) do push_ready(g, now, immediate[g.name]) end
end

-- ---------------------------------------------------------------- journal helpers

-- Whether `facts` (a list of strings) are exactly the facts after `expected` (a resend).
local function is_replay(journal, expected, facts)
  local n = #facts
  if n == 0 then return false end
  local got = redis.call('LRANGE', journal, expected, expected + n - 1)
  if #got ~= n then return false end
  for i = 1, n do
    if got[i] ~= facts[i] then return false end
  end
  return true
end

local function push_facts(journal, facts)
  local n, i = #facts, 0
  while i < n do
    local j = math.min(i + 500, n)
    redis.call('RPUSH', journal, unpack(facts, i + 1, j))
    i = j
  end
end

local function write_checkpoint(key, run, seq, data)
  local current = redis.call('HGET', key, run)
  if current then
    local cseq = tonumber(string.match(current, '^(%d+)\n'))
    if cseq and cseq > seq then return 0 end
  end
  redis.call('HSET', key, run, fmt(seq) .. '\n' .. data)
  return 1
end
