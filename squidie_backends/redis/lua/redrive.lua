-- squidie: redrive.lua — make a dead letter deliverable again with a fresh delivery count.
--
-- The fence keeps increasing across redrives (it never repeats for a dispatch).
-- A resend (same request id) of a redrive that landed is answered as a replay.
--
-- KEYS[1 .. 7]  the queue group holding the dead letter (see common.lua)
-- KEYS[8]       runmeta HASH of the dispatch's run (its home queue's hash tag)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  dispatch key
-- ARGV[3]  delay (µs, >= 0)
-- ARGV[4]  request id (made by the client before sending)
--
-- Returns:
--   {0}             OK: pending again
--   {1}             REPLAYED: this request already landed; nothing written
--   {-9}            NOT_DEAD: no dead letter has this key; nothing written
--   {-5, status}    RUN_TERMINAL: its run ended meanwhile; nothing written

--! include common

local g = qgroup(1, '')
local k = ARGV[2]
local now = now_us(ARGV[1])
local rec = load_rec(g, k)
if rec and rec.lq == ARGV[4] and rec.lop == 'redriven' then return {REPLAYED} end
if not rec or rec.s ~= 'dead_lettered' then return {E_NOT_DEAD} end
local metaraw = redis.call('HGET', KEYS[8], rec.r)
if metaraw then
  local meta = decode(metaraw, 'run index entry ' .. rec.r)
  if TERMINAL[meta.st] then return {E_RUN_TERMINAL, meta.st} end
end
if rec.did then redis.call('XDEL', g.dead, rec.did) end
rec.did = nil
rec.s = 'pending'
rec.n = 0
rec.why = nil
rec.v = fmt(now + tonumber(ARGV[3]))
rec.lq, rec.lop = ARGV[4], 'redriven'
remember(rec, {event = 'redriven', at = fmt(now)})
schedule(g, k, rec, now)
return {OK}
