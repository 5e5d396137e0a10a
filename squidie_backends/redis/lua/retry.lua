-- squidie: retry.lua — release a lease; the dispatch becomes visible again after a delay.
--
-- The delivery counts toward max_deliveries (the counter is only reset by a redrive).
-- A resend (same request id) of a retry that landed is answered as a replay; any other
-- second use of the lease is refused.
--
-- KEYS[1 .. 7]  the queue group of the lease's dispatch (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  dispatch key
-- ARGV[3]  token hash
-- ARGV[4]  delay (µs, >= 0)
-- ARGV[5]  reason ("" for none)
-- ARGV[6]  request id (made by the client before sending)
--
-- Returns:
--   {0}                OK: released
--   {1}                REPLAYED: this request already landed; nothing written
--   {-1} / {-2} / {-3} LEASE_UNKNOWN / LEASE_NOT_CURRENT / LEASE_EXPIRED; nothing written

--! include common

local g = qgroup(1, '')
local k = ARGV[2]
local now = now_us(ARGV[1])
local rec = load_rec(g, k)
if rec and rec.lq == ARGV[6] and rec.lop == 'retried' then return {REPLAYED} end
local code = lease_state(rec, ARGV[3], now)
if code ~= OK then return {code} end
detach(g, k, rec, rec.w)
rec.s = 'pending'
rec.v = fmt(now + tonumber(ARGV[4]))
rec.x = nil
rec.t = nil
rec.lq, rec.lop = ARGV[6], 'retried'
local entry = {event = 'retried', fence = rec.f, at = fmt(now)}
if ARGV[5] ~= '' then entry.reason = ARGV[5] end
remember(rec, entry)
schedule(g, k, rec, now)
return {OK}
