-- squidie: dead_letter.lua — move a leased dispatch to the dead letters with a reason.
--
-- The record keeps its delivery history; an entry (key, run, reason, deliveries, at) is
-- appended to the queue's dead-letter stream. A resend (same request id) is a replay.
--
-- KEYS[1 .. 7]  the queue group of the lease's dispatch (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  dispatch key
-- ARGV[3]  token hash
-- ARGV[4]  reason
-- ARGV[5]  request id (made by the client before sending)
--
-- Returns:
--   {0}                OK: dead-lettered
--   {1}                REPLAYED: this request already landed; nothing written
--   {-1} / {-2} / {-3} LEASE_UNKNOWN / LEASE_NOT_CURRENT / LEASE_EXPIRED; nothing written

--! include common

local g = qgroup(1, '')
local k = ARGV[2]
local now = now_us(ARGV[1])
local rec = load_rec(g, k)
if rec and rec.lq == ARGV[5] and rec.lop == 'dead_lettered' then return {REPLAYED} end
local code = lease_state(rec, ARGV[3], now)
if code ~= OK then return {code} end
rec.lq, rec.lop = ARGV[5], 'dead_lettered'
bury(g, k, rec, ARGV[4], now, rec.w)
return {OK}
