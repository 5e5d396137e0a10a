#!lua flags=no-writes
-- squidie: list_runs.lua — one page of a queue's run index, newest first, with the rows.
--
-- Index members are "[<status>|]<created_at as 16 sortable hex digits>|<run id>" in ZSETs
-- with score 0, so BYLEX order is (created_at, run id) and a cursor is an exclusive bound.
--
-- KEYS[1]  an index ZSET of the queue (all, by status, by workflow, or both)
-- KEYS[2]  runs HASH of the queue (run id -> row JSON)
--
-- ARGV[1]  upper bound (ZRANGE BYLEX syntax, e.g. "(ready|0123...|run" or "+")
-- ARGV[2]  lower bound (e.g. "[ready|" or "-")
-- ARGV[3]  limit
-- ARGV[4]  prefix length (0, or the length of "<status>|")
--
-- Returns:
--   {member, row JSON or false, ...}

local members = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYLEX', 'REV',
                           'LIMIT', 0, tonumber(ARGV[3]))
local skip = tonumber(ARGV[4]) + 18
local out = {}
for _, m in ipairs(members) do
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], string.sub(m, skip))
end
return out
