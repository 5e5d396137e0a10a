-- squidie: append.lua — append facts to a run's journal after an expected sequence.
--
-- The journal is a LIST of canonical fact JSON, one element per fact, so the journal's
-- last sequence is its length. An identical resend of an append that already landed is
-- recognised by comparing the stored facts and answered as a replay.
--
-- KEYS[1]  journal LIST of the run (the run's home hash tag)
--
-- ARGV[1]  expected_seq: the sequence the writer last read
-- ARGV[2]  n: the number of facts
-- ARGV[3..2+n]  the facts (canonical JSON, sequences expected_seq+1 ..)
--
-- Returns:
--   {0, head}   OK: appended; head is the new last sequence
--   {1, seq}    REPLAYED: these exact facts were already there; nothing written; seq is
--               expected_seq + n (the head the first call returned), as the memory store
--               answers
--   {-4, head}  APPEND_CONFLICT: the journal is at `head`, not expected_seq; nothing written

--! include common

local journal = KEYS[1]
local expected = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local facts = {}
for i = 1, n do facts[i] = ARGV[2 + i] end

if is_replay(journal, expected, facts) then
  return {REPLAYED, expected + n}
end
local head = redis.call('LLEN', journal)
if head ~= expected then
  return {E_APPEND_CONFLICT, head}
end
push_facts(journal, facts)
return {OK, expected + n}
