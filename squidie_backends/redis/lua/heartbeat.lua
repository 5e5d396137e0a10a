-- squidie: heartbeat.lua — extend a live lease to now + lease duration.
--
-- Naturally idempotent: a resend extends the lease again from a slightly later now.
--
-- KEYS[1 .. 7]  the queue group of the lease's dispatch (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  dispatch key
-- ARGV[3]  token hash
-- ARGV[4]  lease duration (µs)
--
-- Returns:
--   {0, expiry}        OK: the lease now expires at `expiry` (µs)
--   {-1} / {-2} / {-3} LEASE_UNKNOWN / LEASE_NOT_CURRENT / LEASE_EXPIRED; nothing written

--! include common

local g = qgroup(1, '')
local k = ARGV[2]
local now = now_us(ARGV[1])
local rec = load_rec(g, k)
local code = lease_state(rec, ARGV[3], now)
if code ~= OK then return {code} end
rec.x = fmt(now + tonumber(ARGV[4]))
redis.call('ZADD', g.leases, rec.x, k)
save_rec(g, k, rec)
return {OK, rec.x}
