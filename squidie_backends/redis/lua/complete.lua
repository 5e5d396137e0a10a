-- squidie: complete.lua — settle a leased dispatch as completed.
--
-- Completing again with the same token is a no-op (the token hash is kept on the record),
-- which also makes a resend safe.
--
-- KEYS[1 .. 7]  the queue group of the lease's dispatch (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  dispatch key
-- ARGV[3]  token hash
--
-- Returns:
--   {0}                OK: completed
--   {1}                REPLAYED: already completed with this token; nothing written
--   {-1} / {-2} / {-3} LEASE_UNKNOWN / LEASE_NOT_CURRENT / LEASE_EXPIRED; nothing written

--! include common

local g = qgroup(1, '')
local k = ARGV[2]
local now = now_us(ARGV[1])
local rec = load_rec(g, k)
if rec and rec.s == 'completed' and rec.t == ARGV[3] then return {REPLAYED} end
local code = lease_state(rec, ARGV[3], now)
if code ~= OK then return {code} end
settle(g, k, rec, 'completed', nil, now)
return {OK}
