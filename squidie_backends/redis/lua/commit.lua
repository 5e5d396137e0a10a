-- squidie: commit.lua — the atomic commit: append facts, enqueue the next dispatches,
-- complete the settled lease, update the run index and checkpoint, and fail the run's
-- other dispatches when it ends. All of it, or nothing.
--
-- Every check runs before the first write (a Lua error does not roll back earlier
-- writes), in the contract's order: identical resend, lease, sequence, terminal run,
-- intent. Then the structural checks this layout needs (every queue the run has
-- dispatches in is present when it ends; the workflow's index keys are the right ones).
--
-- KEYS[1]   journal LIST of the run                      -- all KEYS[1..11] carry the
-- KEYS[2]   runs HASH (run id -> index row JSON)         -- run's home queue hash tag
-- KEYS[3]   runmeta HASH (run id -> {st, wf, m})
-- KEYS[4]   checkpoints HASH
-- KEYS[5]   rd HASH of the run (dispatch key -> "<n>|<queue>")
-- KEYS[6]   index ZSET, all runs ("<created>|<run>")
-- KEYS[7]   index ZSET by status ("<status>|<created>|<run>")
-- KEYS[8]   index ZSET of the row's workflow
-- KEYS[9]   index ZSET of the row's workflow, by status
-- KEYS[10]  index ZSET of the previously indexed workflow (= KEYS[8] unless told)
-- KEYS[11]  index ZSET of the previously indexed workflow, by status
-- KEYS[12 + 7*(j-1) .. 18 + 7*(j-1)]  queue group j (see common.lua); group 1 is the
--           run's home queue, then the queues of the settled lease and of the dispatches
-- KEYS[#KEYS] the run's home STRING, last, only with claim_home (below)
--
-- ARGV[1]   the store clock's test offset (µs)
-- ARGV[2]   the commit, one JSON object (one argument instead of some fifty: redis-py
--           encodes arguments one by one, and that was a fifth of a worker's CPU):
--             run, expected (the journal's expected_seq), facts (their canonical JSON
--             strings), settle ([dispatch key, token hash, queue group number]; absent
--             when the commit settles nothing), enqueue (one [key, queue group number,
--             intent, dispatch JSON, delay (µs), max deliveries] per dispatch), row
--             (the index row JSON), status, workflow, member ("<created>|<run>"),
--             terminal (boolean), checkpoint ([seq, data]; absent: none), old_workflow
--             (the previously indexed workflow), queues (the queue groups' names, in
--             order), claim_home (true: the client does not know the run's home yet;
--             the script claims it for group 1's queue, SET NX, before anything else)
--
-- Returns:
--   {0, head}          OK: written; head is the journal's new last sequence
--   {1, head}          REPLAYED: these exact facts are already in the journal
--   {-1} / {-2} / {-3} LEASE_UNKNOWN / LEASE_NOT_CURRENT / LEASE_EXPIRED
--   {-4, head}         APPEND_CONFLICT: the journal is at head, not expected_seq
--   {-5, status}       RUN_TERMINAL: the run is terminal and the commit enqueues
--   {-6, key}          IDEMPOTENCY_CONFLICT: key exists with a different intent
--   {-7, queue...}     NEED_QUEUES: the run ends and has dispatches in these queues,
--                      whose groups were not passed; resend with them
--   {-8, workflow}     REINDEX: the run is indexed under this other workflow; resend with
--                      its index keys as KEYS[10..11]
--   {-10, home}        OTHER_HOME: the run's home is this other queue; resend with its keys
-- Nothing is written unless the reply is {0, head}, except the home claim_home claims
-- (once, for good, as the client's own SET NX of a run's home did before).

--! include common

local c = decode(ARGV[2], 'commit request')
local run, expected, facts = c.run, c.expected, c.facts
local nfacts = #facts
local skey, stok, sgi = '', '', 0
if c.settle then skey, stok, sgi = c.settle[1], c.settle[2], c.settle[3] end
local enq = {}
for i, e in ipairs(c.enqueue) do
  enq[i] = {k = e[1], gi = e[2], intent = e[3], json = e[4], delay = e[5], maxd = e[6]}
end
local nenq = #enq
local row, status, wf, member = c.row, c.status, c.workflow, c.member
local terminal = c.terminal
local ckseq, ckdata = -1, ''
if c.checkpoint then ckseq, ckdata = c.checkpoint[1], c.checkpoint[2] end
local oldwf = c.old_workflow
local groups, by_name = {}, {}
for j, name in ipairs(c.queues) do
  local g = qgroup(12 + GROUP_KEYS * (j - 1), name)
  groups[j] = g
  by_name[g.name] = g
end
local home = groups[1].name
local journal, rd = KEYS[1], KEYS[5]

-- 0. a run's first write from this client: its home, claimed here saving a round trip.
-- A single-key SET of an untagged key: on Redis Cluster this would be the client's own
-- SET NX before the script, as before (see docs/backends/redis.md).
if c.claim_home then
  local found = redis.call('SET', KEYS[#KEYS], home, 'NX', 'GET')
  if found and found ~= home then return {E_OTHER_HOME, found} end
end

local now = now_us(ARGV[1])

-- 1. an identical commit already applied
if is_replay(journal, expected, facts) then
  return {REPLAYED, redis.call('LLEN', journal)}
end

-- 2. the settled lease is current and unexpired
local srec = nil
if skey ~= '' then
  srec = load_rec(groups[sgi], skey)
  local code = lease_state(srec, stok, now)
  if code ~= OK then return {code} end
end

-- 3. the journal is at expected_seq
local head = redis.call('LLEN', journal)
if head ~= expected then return {E_APPEND_CONFLICT, head} end

-- 4. the run is not terminal when the commit enqueues
local metaraw = redis.call('HGET', KEYS[3], run)
local old = metaraw and decode(metaraw, 'run index entry ' .. run) or nil
if nenq > 0 and old and TERMINAL[old.st] then return {E_RUN_TERMINAL, old.st} end

-- 5. every enqueued key is new or has the same intent
local fresh, taken = {}, {}
for _, e in ipairs(enq) do
  local g = groups[e.gi]
  e.g, e.queue, e.run, e.home, e.rd = g, g.name, run, home, rd
  local verdict = existing(g, rd, e)
  if type(verdict) == 'table' then return verdict end
  if verdict == 'new' and not taken[e.k] then
    taken[e.k] = true
    fresh[#fresh + 1] = e
  end
end

-- structural: the groups of every queue holding a dispatch of an ending run
if terminal then
  local missing, seen = {}, {}
  for _, value in ipairs(redis.call('HVALS', rd)) do
    local q = rd_queue(value)
    if q and not by_name[q] and not seen[q] then
      seen[q] = true
      missing[#missing + 1] = q
    end
  end
  if #missing > 0 then return {E_NEED_QUEUES, unpack(missing)} end
end

-- structural: the index keys of the workflow the run is indexed under
if old and old.wf ~= wf and old.wf ~= oldwf then return {E_REINDEX, old.wf} end

-- every check passed: write
push_facts(journal, facts)
add_dispatches(fresh, now)
if srec then settle(groups[sgi], skey, srec, 'completed', nil, now) end

redis.call('HSET', KEYS[2], run, row)
redis.call('HSET', KEYS[3], run, cjson.encode({st = status, wf = wf, m = member}))
if not old or old.m ~= member or old.wf ~= wf then
  if old then
    redis.call('ZREM', KEYS[6], old.m)
    redis.call('ZREM', KEYS[10], old.m)
  end
  redis.call('ZADD', KEYS[6], 0, member)
  redis.call('ZADD', KEYS[8], 0, member)
end
if not old or old.m ~= member or old.wf ~= wf or old.st ~= status then
  if old then
    redis.call('ZREM', KEYS[7], old.st .. '|' .. old.m)
    redis.call('ZREM', KEYS[11], old.st .. '|' .. old.m)
  end
  redis.call('ZADD', KEYS[7], 0, status .. '|' .. member)
  redis.call('ZADD', KEYS[9], 0, status .. '|' .. member)
end

if ckseq >= 0 then write_checkpoint(KEYS[4], run, ckseq, ckdata) end

if terminal then
  -- Fail every other dispatch still pending or claimed: none can be claimed, completed
  -- or scheduled again (its holder's next commit finds its token no longer current).
  local all = redis.call('HGETALL', rd)
  for i = 1, #all, 2 do
    local g = by_name[rd_queue(all[i + 1])]
    local rec = load_rec(g, all[i])
    if rec and (rec.s == 'pending' or rec.s == 'claimed') then
      settle(g, all[i], rec, 'failed', 'run_terminal', now)
    end
  end
end

return {OK, expected + nfacts}
