-- squidie: write_checkpoint.lua — store a run's checkpoint unless a newer one is stored.
--
-- Checkpoints of every run homed in a queue live in one HASH (field = run id, value =
-- "<seq>\n<data>"), so "delete every checkpoint" is one DEL per queue.
--
-- KEYS[1]  checkpoints HASH of the run's home queue
--
-- ARGV[1]  run id
-- ARGV[2]  seq: the last fact sequence the checkpoint covers
-- ARGV[3]  data: the encoded state (opaque)
--
-- Returns:
--   {0, 1}  OK: stored
--   {0, 0}  OK: a checkpoint with a higher sequence is already stored; nothing written

--! include common

return {OK, write_checkpoint(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3])}
