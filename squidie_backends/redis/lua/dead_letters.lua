#!lua flags=no-writes
-- squidie: dead_letters.lua — one page of a queue's dead letters, oldest first.
--
-- KEYS[1]  dead STREAM of the queue
-- KEYS[2]  disp HASH of the queue
--
-- ARGV[1]  start: "-" or an exclusive bound "(<id>" (or an inclusive "<id>")
-- ARGV[2]  count
--
-- Returns:
--   {id, dispatch key, record JSON or false, ...}

local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local out = {}
for _, e in ipairs(entries) do
  local k = e[2][2]
  out[#out + 1] = e[1]
  out[#out + 1] = k
  out[#out + 1] = redis.call('HGET', KEYS[2], k)
end
return out
