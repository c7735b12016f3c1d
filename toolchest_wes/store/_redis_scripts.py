"""The Lua scripts of the Redis store; each runs atomically in one round trip.

Keys known before a script runs are passed in ``KEYS``. The per-state index of a run's
*current* state is known only inside the script, so scripts that move a run between state
indexes build those names from a key prefix passed in ``ARGV``. That is fine on one Redis
server (or a primary with replicas), but not on Redis Cluster, which this store does not
support.

An update, as the transition and update scripts take it, is the tail of ``ARGV`` from some
index ``i``: ``ARGV[i]`` is the number ``n`` of field/value pairs to set, the next ``2n``
arguments are those pairs, and every argument after them is a system log line to append.
"""

from __future__ import annotations

__all__ = [
    "CREATE",
    "CREATED_EVENT",
    "DELETE",
    "EXPIRED_LEASES",
    "MARK_OUTPUTS_REMOVED",
    "OUTPUTS_DUE",
    "PAGE",
    "TOUCH_LEASE",
    "TRANSITION",
    "UPDATE",
]

_APPLY_UPDATE = """
local function apply_update(key, i)
  local n = tonumber(ARGV[i])
  if n > 0 then
    redis.call('HSET', key, unpack(ARGV, i + 1, i + 2 * n))
  end
  local first = i + 2 * n + 1
  if first <= #ARGV then
    local logs = cjson.decode(redis.call('HGET', key, 'system_logs') or '[]')
    for j = first, #ARGV do
      logs[#logs + 1] = ARGV[j]
    end
    redis.call('HSET', key, 'system_logs', cjson.encode(logs))
  end
end
"""

_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# The webhook outbox's half of a transition (``store/redis_outbox.py`` reads what it writes).
# A run with webhooks has a hooks hash (owner, base_url, notify_url, notify_on, has_owner,
# sequence: events recorded so far); each event is one JSON entry appended to the outbox's
# log, holding everything its deliveries are built from, so the run's hooks can go with its
# terminal event. Hooks kept for a run not created yet expire; a recorded event keeps them.
_RECORD_EVENT = """
local function record_event(hooks_key, log_key, run_id, previous, to, at_ms, terminal)
  local raw = redis.call('HGETALL', hooks_key)
  if #raw == 0 then
    return 0
  end
  local hooks = {}
  for i = 1, #raw, 2 do
    hooks[raw[i]] = raw[i + 1]
  end
  local sequence = tonumber(hooks.sequence or '0') + 1
  hooks.sequence = nil
  redis.call('RPUSH', log_key, cjson.encode({run_id = run_id, state = to,
    previous = previous or '', sequence = sequence, at_ms = at_ms, hooks = hooks}))
  if terminal then
    redis.call('DEL', hooks_key)
  else
    redis.call('HSET', hooks_key, 'sequence', sequence)
    redis.call('PERSIST', hooks_key)
  end
  return 1
end
"""

#: KEYS: run hash, seq counter, counts hash, idempotency key hash, then every ZSET the run
#: joins (all runs, its state, its tags). ARGV: run id, state, the request's fingerprint ("":
#: no idempotency key), the key's TTL in ms, then the run hash's field/value pairs.
#: Returns the new seq, or 0 if the run exists, or {1 if the fingerprint matches else 0, run
#: id} if the idempotency key already stands for a run; then nothing is stored.
CREATE = """
local claimed = ARGV[3] ~= ''
if claimed then
  local held = redis.call('HMGET', KEYS[4], 'fp', 'run')
  if held[2] then
    return {held[1] == ARGV[3] and 1 or 0, held[2]}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(ARGV, 5))
for i = 5, #KEYS do
  redis.call('ZADD', KEYS[i], seq, ARGV[1])
end
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
if claimed then
  redis.call('HSET', KEYS[4], 'fp', ARGV[3], 'run', ARGV[1])
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return seq
"""

#: KEYS: run hash, counts hash, leases ZSET, lease key, change channel, outputs-kept ZSET,
#: the run's webhook hooks hash, the webhook outbox's log.
#: ARGV: state-index key prefix, run id, new state, "1" if the new state is terminal, the
#: number of allowed source states, those states, the lease TTL in ms (0: leave the lease as
#: it is), then the update. Returns the run's new state version (1 or more) if it moved, else
#: 0, and publishes "<run id> <version> <state>" on the change channel. A run that ends joins
#: the outputs-kept ZSET, scored by its end (ms). A run with webhooks gets the event of its
#: move in its outbox log, in the same step.
TRANSITION = (
    _APPLY_UPDATE
    + _NOW_MS
    + _RECORD_EVENT
    + """
local current = redis.call('HMGET', KEYS[1], 'state', 'seq')
local state, seq = current[1], current[2]
if not state then
  return 0
end
local n = tonumber(ARGV[5])
local allowed = false
for j = 6, 5 + n do
  if ARGV[j] == state then
    allowed = true
    break
  end
end
if not allowed then
  return 0
end
local to = ARGV[3]
redis.call('HSET', KEYS[1], 'state', to)
redis.call('ZREM', ARGV[1] .. state, ARGV[2])
redis.call('ZADD', ARGV[1] .. to, seq, ARGV[2])
-- A state that no run is in leaves the counts hash, as GROUP BY would leave it out.
if redis.call('HINCRBY', KEYS[2], state, -1) <= 0 then
  redis.call('HDEL', KEYS[2], state)
end
redis.call('HINCRBY', KEYS[2], to, 1)
local lease_ms = tonumber(ARGV[6 + n])
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('DEL', KEYS[4])
  redis.call('ZADD', KEYS[6], string.format('%d', now_ms()), ARGV[2])
elseif lease_ms > 0 then
  -- The same lease TOUCH_LEASE sets, in the same step as the move: a run is never in a
  -- leased state without a lease, whatever happens to its executor right after.
  local expires = now_ms() + lease_ms
  redis.call('SET', KEYS[4], string.format('%d', expires), 'PX', lease_ms)
  redis.call('ZADD', KEYS[3], string.format('%d', expires), ARGV[2])
end
apply_update(KEYS[1], 7 + n)
local recorded = redis.call('HGET', KEYS[7], 'sequence')
if recorded then
  if recorded == '0' then
    -- The process that created the run died before recording its creation: that event
    -- comes first, late but in order.
    local created = tonumber(redis.call('HGET', KEYS[1], 'created_at') or '0')
    record_event(KEYS[7], KEYS[8], ARGV[2], false, state, math.floor(created * 1000), false)
  end
  record_event(KEYS[7], KEYS[8], ARGV[2], state, to, now_ms(), ARGV[4] == '1')
end
local version = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PUBLISH', KEYS[5], ARGV[2] .. ' ' .. version .. ' ' .. to)
return version
"""
)

#: KEYS: the run's webhook hooks hash, the webhook outbox's log. ARGV: run id, the state it
#: was created in, when (ms), "1" if that state is terminal. Records the event of the run's
#: creation unless the run has none (no hooks) or has one recorded already. Returns 1 if it
#: recorded it, else 0.
CREATED_EVENT = (
    _RECORD_EVENT
    + """
if redis.call('HGET', KEYS[1], 'sequence') ~= '0' then
  return 0
end
return record_event(KEYS[1], KEYS[2], ARGV[1], false, ARGV[2], tonumber(ARGV[3]),
  ARGV[4] == '1')
"""
)

#: KEYS: run hash. ARGV: the update. Returns 1, or 0 for an unknown run (left uncreated).
UPDATE = (
    _APPLY_UPDATE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
apply_update(KEYS[1], 1)
return 1
"""
)

#: KEYS: run hash, lease key, leases ZSET. ARGV: run id, TTL in ms, the terminal states.
#: Times come from the Redis server's clock, the one clock every API and worker host shares.
#: A terminal run gets no lease: it would never leave the leases ZSET.
TOUCH_LEASE = (
    _NOW_MS
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 0
end
for i = 3, #ARGV do
  if ARGV[i] == state then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
local expires = now_ms() + ttl
if ttl > 0 then
  redis.call('SET', KEYS[2], string.format('%d', expires), 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[2])
end
redis.call('ZADD', KEYS[3], string.format('%d', expires), ARGV[1])
return 1
"""
)

#: KEYS: leases ZSET. ARGV: run-hash key prefix, then the leased states.
#: Returns run id, seq pairs of runs in a leased state whose lease expired before now.
EXPIRED_LEASES = (
    _NOW_MS
    + """
local leased = {}
for i = 2, #ARGV do
  leased[ARGV[i]] = true
end
local out = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now_ms()))
for _, id in ipairs(ids) do
  local run = redis.call('HMGET', ARGV[1] .. id, 'state', 'seq')
  if run[1] and leased[run[1]] then
    out[#out + 1] = id
    out[#out + 1] = run[2]
  end
end
return out
"""
)

#: Part of a listing, newest first. KEYS: the ZSETs walked as one (their union), then ZSETs
#: each returned run must be in, then ZSETs of which it must be in at least one. ARGV: run-hash
#: key prefix, the upper score bound ("+inf" or "(seq"), how many entries to walk at most, how
#: many runs to return at most, how many KEYS are walked (default 1), how many KEYS come last
#: as the at-least-one group (default 0).
#: The walk reads slices that start at the number of runs wanted and double, so a page of an
#: unfiltered index is one ZREVRANGEBYSCORE, and a sparse intersection reads about as many
#: entries as it has to look at. A slice of a union is the newest entries of each walked ZSET
#: merged by score and cut to the slice's length: the newest n of the union are among the
#: newest n of each part, so no ZSET is read further than that. Scores (seqs) are unique
#: across the ZSETs walked together. Returns {1 if the walked ZSETs ran out, else 0; score of
#: the last entry looked at; flat run summaries}, a summary being run id, seq, state,
#: start_time, end_time, tags JSON.
PAGE = """
local budget = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local walks = tonumber(ARGV[5] or '1')
local anys = tonumber(ARGV[6] or '0')
local alls = #KEYS - anys
local bound = ARGV[2]
local walked, found, ran_out = 0, 0, 0
local last = false
local out = {}
local slice = want
local function newest(n)
  local count = string.format('%d', n)
  if walks == 1 then
    return redis.call('ZREVRANGEBYSCORE', KEYS[1], bound, '-inf', 'WITHSCORES', 'LIMIT', 0, count)
  end
  local merged = {}
  for k = 1, walks do
    local part = redis.call('ZREVRANGEBYSCORE', KEYS[k], bound, '-inf', 'WITHSCORES',
      'LIMIT', 0, count)
    for i = 1, #part, 2 do
      merged[#merged + 1] = {part[i], part[i + 1], tonumber(part[i + 1])}
    end
  end
  table.sort(merged, function(a, b) return a[3] > b[3] end)
  local entries = {}
  for i = 1, math.min(n, #merged) do
    entries[#entries + 1] = merged[i][1]
    entries[#entries + 1] = merged[i][2]
  end
  return entries
end
local function matches(id)
  for k = walks + 1, alls do
    if not redis.call('ZSCORE', KEYS[k], id) then
      return false
    end
  end
  if anys == 0 then
    return true
  end
  for k = alls + 1, #KEYS do
    if redis.call('ZSCORE', KEYS[k], id) then
      return true
    end
  end
  return false
end
while found < want and walked < budget do
  local n = math.min(slice, budget - walked)
  local entries = newest(n)
  for i = 1, #entries, 2 do
    if found >= want then
      break
    end
    local id = entries[i]
    last = entries[i + 1]
    walked = walked + 1
    if matches(id) then
      local f = redis.call('HMGET', ARGV[1] .. id, 'state', 'start_time', 'end_time', 'tags')
      out[#out + 1] = id
      out[#out + 1] = last
      for j = 1, 4 do
        out[#out + 1] = f[j]
      end
      found = found + 1
    end
  end
  if #entries < 2 * n then
    ran_out = 1
    break
  end
  bound = '(' .. last
  slice = slice * 2
end
return {ran_out, last, out}
"""

#: KEYS: outputs-kept ZSET. ARGV: age in ms, most ids to return.
#: Returns the ids of runs that ended more than that age ago (Redis server clock), oldest first.
OUTPUTS_DUE = (
    _NOW_MS
    + """
local cutoff = now_ms() - tonumber(ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', cutoff),
  'LIMIT', 0, ARGV[2])
"""
)

#: KEYS: run hash, outputs-kept ZSET. ARGV: run id, removal time (ISO 8601).
#: Returns 1, or 0 for an unknown run (whose stray index entry is dropped all the same).
MARK_OUTPUTS_REMOVED = """
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'outputs_removed_at', ARGV[2])
return 1
"""

#: KEYS: run hash, counts hash, all-runs ZSET, outputs-kept ZSET, leases ZSET, lease key,
#: change channel, then the run's tag ZSETs. ARGV: state-index key prefix, run id, the
#: deletion marker of the change feed, then the terminal states.
#: Deletes the run and every index entry only if its state is terminal. Returns {the state it
#: found, the deletion's version (0 if not deleted)}, or nil for an unknown run. Publishes
#: "<run id> <version> <marker>" so every process's state cache forgets the run.
DELETE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return false
end
local terminal = false
for i = 4, #ARGV do
  if ARGV[i] == state then
    terminal = true
    break
  end
end
if not terminal then
  return {state, 0}
end
local id = ARGV[2]
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', ARGV[1] .. state, id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('DEL', KEYS[6])
for i = 8, #KEYS do
  redis.call('ZREM', KEYS[i], id)
end
if redis.call('HINCRBY', KEYS[2], state, -1) <= 0 then
  redis.call('HDEL', KEYS[2], state)
end
local version = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', KEYS[7], id .. ' ' .. version .. ' ' .. ARGV[3])
return {state, version}
"""
