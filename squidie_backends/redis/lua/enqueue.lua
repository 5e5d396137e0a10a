-- squidie: enqueue.lua — make dispatches deliverable after their delay, idempotently.
--
-- All or nothing: every dispatch is checked (in order: same key with another intent,
-- then a terminal run) before any is written. An existing key with the same intent is
-- skipped. Immediate dispatches enter `ready` in claim order, delayed ones `delayed`.
--
-- KEYS[2*(r-1) + 1]  runmeta HASH of run r (its home queue's hash tag)
-- KEYS[2*(r-1) + 2]  rd HASH of run r (dispatch key -> "<n>|<queue>")
-- KEYS[2*R + 7*(j-1) + 1 .. 2*R + 7*(j-1) + 7]  queue group j (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  R: number of runs
-- ARGV[3]  G: number of queue groups
-- ARGV[4]  D: number of dispatches
-- ARGV[5 .. 4+R]        run ids
-- ARGV[5+R .. 4+R+G]    queue names of the groups
-- ARGV[5+R+G ..]        D dispatches of 7 values: key, run number, group number, intent,
--                       dispatch JSON, delay (µs), max deliveries
-- ARGV[last]            the home queue of each run, R values (after the dispatches)
--
-- Returns:
--   {0}             OK
--   {-6, key}       IDEMPOTENCY_CONFLICT: key exists with a different intent
--   {-5, status, run}  RUN_TERMINAL: a new dispatch's run is terminal
-- Nothing is written unless the reply is {0}.

--! include common

local nruns, ngroups, nd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local runs, groups = {}, {}
for r = 1, nruns do
  runs[r] = {id = ARGV[4 + r], meta = KEYS[2 * (r - 1) + 1], rd = KEYS[2 * (r - 1) + 2]}
end
for j = 1, ngroups do
  groups[j] = qgroup(2 * nruns + GROUP_KEYS * (j - 1) + 1, ARGV[4 + nruns + j])
end
local base = 5 + nruns + ngroups
for r = 1, nruns do runs[r].home = ARGV[base + 7 * nd + r - 1] end

local now = now_us(ARGV[1])
local fresh, taken, status = {}, {}, {}
for i = 0, nd - 1 do
  local p = base + 7 * i
  local run = runs[tonumber(ARGV[p + 1])]
  local g = groups[tonumber(ARGV[p + 2])]
  local e = {k = ARGV[p], intent = ARGV[p + 3], json = ARGV[p + 4],
             delay = tonumber(ARGV[p + 5]), maxd = tonumber(ARGV[p + 6]),
             g = g, queue = g.name, run = run.id, home = run.home, rd = run.rd}
  local verdict = existing(g, run.rd, e)
  if type(verdict) == 'table' then return verdict end
  if verdict == 'new' and not taken[e.k] then
    if status[run.id] == nil then
      local raw = redis.call('HGET', run.meta, run.id)
      status[run.id] = raw and decode(raw, 'run index entry ' .. run.id).st or false
    end
    if status[run.id] and TERMINAL[status[run.id]] then
      return {E_RUN_TERMINAL, status[run.id], run.id}
    end
    taken[e.k] = true
    fresh[#fresh + 1] = e
  end
end

add_dispatches(fresh, now)
return {OK}
