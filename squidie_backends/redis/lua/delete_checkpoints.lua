-- squidie: delete_checkpoints.lua — delete one run's checkpoint, or every checkpoint of
-- the runs homed in one queue.
--
-- KEYS[1]  checkpoints HASH of a queue
--
-- ARGV[1]  run id, or "" for every checkpoint in KEYS[1]
--
-- Returns:
--   {0, count}  OK: how many checkpoints were deleted

--! include common

if ARGV[1] == '' then
  local count = redis.call('HLEN', KEYS[1])
  redis.call('DEL', KEYS[1])
  return {OK, count}
end
return {OK, redis.call('HDEL', KEYS[1], ARGV[1])}
