#!lua flags=no-writes
-- squidie: peek.lua — is work visible in these queues now, and if not, when next?
--
-- Used by wait_for_work before it blocks (XREAD BLOCK, outside any script, on its own
-- connection): the block starts at each group's cursor so an entry appended meanwhile
-- wakes it, and lasts at most until the next delayed dispatch or lease falls due.
--
-- KEYS[7*(j-1) + 1 .. 7*(j-1) + 7]  queue group j (see common.lua)
--
-- ARGV[1]  the store clock's test offset (µs)
-- ARGV[2]  G: number of queue groups
--
-- Returns:
--   {visible (1/0), µs until the next due time or -1, cursor of group 1 .. G}

--! include common

local now = now_us(ARGV[1])
local ngroups = tonumber(ARGV[2])
local visible, next_due = 0, nil
local cursors = {}
for j = 1, ngroups do
  local g = qgroup(GROUP_KEYS * (j - 1) + 1, '')
  local cursor = redis.call('HGET', g.meta, 'cursor') or '0-0'
  cursors[j] = cursor
  if redis.call('EXISTS', g.ready) == 1 then
    if #redis.call('XRANGE', g.ready, '(' .. cursor, '+', 'COUNT', 1) > 0 then visible = 1 end
  end
  for _, key in ipairs({g.delayed, g.leases}) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if #head > 0 then
      local v = tonumber(head[2])
      if v <= now then visible = 1 end
      if not next_due or v < next_due then next_due = v end
    end
  end
end
local wait = next_due and fmt(math.max(next_due - now, 0)) or '-1'
return {visible, wait, unpack(cursors)}
