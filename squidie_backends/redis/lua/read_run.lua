#!lua flags=no-writes
-- squidie: read_run.lua — a run's checkpoint and the journal after it, in one call.
--
-- Both live in the run's home queue (one cluster slot): the checkpoints HASH (value
-- "<seq>\n<data>") and the run's journal LIST, whose entry i is the fact of sequence
-- i + 1.
--
-- KEYS[1]  checkpoints HASH of the run's home queue
-- KEYS[2]  journal LIST of the run
--
-- ARGV[1]  run id
-- ARGV[2]  after: the last sequence the caller has; -1: from the run's checkpoint
--
-- Returns:
--   {checkpoint as stored (false when not asked for or absent), journal entries after}
--   A checkpoint whose sequence does not parse is returned as it is, with the whole
--   journal (the caller ignores the checkpoint).

local after = tonumber(ARGV[2])
local checkpoint = false
if after < 0 then
  after = 0
  checkpoint = redis.call('HGET', KEYS[1], ARGV[1])
  if checkpoint then
    after = tonumber(string.match(checkpoint, '^(%d+)\n')) or 0
  end
end
return {checkpoint, redis.call('LRANGE', KEYS[2], after, -1)}
