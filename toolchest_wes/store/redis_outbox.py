"""The webhook outbox in Redis, under the state store's key prefix.

``{prefix}:webhooks:run:{run_id}`` (hash) holds a run's hooks, ``{prefix}:webhooks:log``
(list) the events recorded and not yet turned into deliveries, ``{prefix}:webhooks:d:{id}``
(hash) one delivery, ``{prefix}:webhooks:q:{run_id} {url}`` (list) the deliveries of one run
to one URL in order, ``{prefix}:webhooks:due`` (sorted set) the first delivery of each such
list by the time it is due (so a run's deliveries to a URL go out one at a time, in order),
and ``{prefix}:webhooks:queued`` (sorted set) every delivery. The store's transition script
appends a run's event to the log in the same step as the move (``_redis_scripts.TRANSITION``),
so a state change that is stored has its event stored too. The creation of a run is the
store's other write, made without the outbox; its event is recorded right after
(:meth:`RedisOutbox.record_created`), and if the process dies in between, the run's first
transition records it before its own.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from toolchest_wes.models import State
from toolchest_wes.store import _redis_scripts
from toolchest_wes.store.outbox import Builder, Delivery, RunHooks

__all__ = ["RedisOutbox", "hooks_key", "log_key"]

logger = logging.getLogger(__name__)

# Claims the due deliveries and holds them (a new score) in one step, so two processes'
# loops do not both send the same delivery at once.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""
# Takes the log's first entry, if it is still ARGV[1], and queues its deliveries (ARGV[3...],
# seven values each, the last its run-and-URL list) in one step: an entry taken by another
# process meanwhile is left alone, so each event is turned into deliveries once. A delivery
# is due only once it heads its list.
_TAKE = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then
  return 0
end
redis.call('LPOP', KEYS[1])
for i = 3, #ARGV, 7 do
  redis.call('HSET', ARGV[2] .. ARGV[i], 'event_id', ARGV[i + 1], 'url', ARGV[i + 2],
    'subscriber', ARGV[i + 3], 'body', ARGV[i + 4], 'first_at', ARGV[i + 5], 'attempts', 0,
    'queue', ARGV[i + 6])
  redis.call('ZADD', KEYS[3], ARGV[i + 5], ARGV[i])
  if redis.call('RPUSH', ARGV[i + 6], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[i + 5], ARGV[i])
  end
end
return 1
"""
# Removes delivery ARGV[2] and makes the next one of its list due.
_DONE = """
local key = ARGV[1] .. ARGV[2]
local queue = redis.call('HGET', key, 'queue')
redis.call('DEL', key)
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if queue then
  redis.call('LREM', queue, 1, ARGV[2])
  local head = redis.call('LINDEX', queue, 0)
  if head then
    redis.call('ZADD', KEYS[1], 'NX', redis.call('HGET', ARGV[1] .. head, 'first_at'), head)
  end
end
return 1
"""
# Deliveries queued before the queued set existed are only in the due set.
_PENDING = """
local n = redis.call('ZCARD', KEYS[2])
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not redis.call('ZSCORE', KEYS[2], id) then
    n = n + 1
  end
end
return n
"""
_FIELDS = ("event_id", "url", "subscriber", "body", "first_at", "attempts")
#: How long a run's hooks wait for its creation to be recorded: long after any submission
#: that kept them and then failed to create the run.
_UNCREATED_TTL_S = 7 * 86400


def hooks_key(prefix: str, run_id: str) -> str:
    """The key of a run's hooks, for the store with key prefix ``prefix``."""
    return f"{prefix}:webhooks:run:{run_id}"


def log_key(prefix: str) -> str:
    """The key of the log of recorded events, for the store with key prefix ``prefix``."""
    return f"{prefix}:webhooks:log"


class RedisOutbox:
    """An :class:`~toolchest_wes.store.outbox.Outbox` in Redis (see the module docstring)."""

    records_creations = False

    def __init__(self, url: str, *, prefix: str) -> None:
        self._client: redis.Redis = redis.Redis.from_url(url, decode_responses=True)
        self._store_prefix = prefix
        self._prefix = f"{prefix}:webhooks"
        self._due = f"{self._prefix}:due"
        self._queued = f"{self._prefix}:queued"
        self._log = log_key(prefix)
        self._claim = self._client.register_script(_CLAIM)
        self._take = self._client.register_script(_TAKE)
        self._done = self._client.register_script(_DONE)
        self._pending = self._client.register_script(_PENDING)
        self._created = self._client.register_script(_redis_scripts.CREATED_EVENT)

    def _delivery_key(self, delivery_id: str) -> str:
        return f"{self._prefix}:d:{delivery_id}"

    def register(self, hooks: RunHooks) -> None:
        """Keep ``hooks`` for the run."""
        mapping: dict[Any, Any] = {"owner": hooks.owner or "", "base_url": hooks.base_url}
        mapping |= {"notify_url": hooks.notify_url or "", "notify_on": hooks.notify_on}
        mapping |= {"has_owner": "1" if hooks.owner is not None else "", "sequence": "0"}
        key = hooks_key(self._store_prefix, hooks.run_id)
        with self._client.pipeline() as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, _UNCREATED_TTL_S)
            pipe.execute()

    def record_created(self, run_id: str, state: State, at: float) -> bool:
        """Record the event of the run's creation, unless one is recorded already."""
        keys = [hooks_key(self._store_prefix, run_id), self._log]
        args = [run_id, state.value, round(at * 1000), "1" if state.is_terminal else "0"]
        return bool(self._created(keys=keys, args=args))

    def drain(self, build: Builder, limit: int = 100) -> int:
        """Turn up to ``limit`` logged events into deliveries, oldest first; how many."""
        taken = 0
        while taken < limit:
            raw: str | None = self._client.lindex(self._log, 0)  # type: ignore[assignment]
            if raw is None:
                break
            args: list[Any] = [raw, f"{self._prefix}:d:"]
            run_id, deliveries = _deliveries(raw, build)
            for d in deliveries:
                args += [d.delivery_id, d.event_id, d.url, d.subscriber, d.body, d.first_at]
                args.append(f"{self._prefix}:q:{run_id} {d.url}")
            # 0: another process took this entry first; look at the new first one.
            taken += int(self._take(keys=[self._log, self._due, self._queued], args=args))
        return taken

    def claim_due(self, now: float, limit: int, hold_s: float) -> list[Delivery]:
        """Due deliveries, earliest first, held for ``hold_s``; one that waits for an earlier
        one of its run to the same URL is not due."""
        ids: list[str] = self._claim(keys=[self._due], args=[now, limit, now + hold_s])
        if not ids:
            return []
        with self._client.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hmget(self._delivery_key(delivery_id), _FIELDS)
            rows: list[list[Any]] = pipe.execute()
        found = []
        for delivery_id, row in zip(ids, rows, strict=True):
            if row[0] is None:
                # Removed by another process between the claim and the read.
                self._client.zrem(self._due, delivery_id)
                continue
            found.append(
                Delivery(delivery_id, row[0], row[1], row[2], row[3], float(row[4]), int(row[5]))
            )
        return found

    def done(self, delivery_id: str) -> None:
        """Remove a delivery; the next of its run to its URL is due."""
        self._done(keys=[self._due, self._queued], args=[f"{self._prefix}:d:", delivery_id])

    def retry_at(self, delivery_id: str, at: float, attempts: int) -> None:
        """Reschedule a delivery."""
        with self._client.pipeline() as pipe:
            pipe.hset(self._delivery_key(delivery_id), "attempts", attempts)
            pipe.zadd(self._due, {delivery_id: at}, xx=True)
            pipe.execute()

    def forget(self, run_id: str) -> None:
        """Drop the run's hooks."""
        self._client.delete(hooks_key(self._store_prefix, run_id))

    def pending(self) -> int:
        """How many deliveries are queued."""
        return int(self._pending(keys=[self._due, self._queued]))

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()


def _deliveries(raw: str, build: Builder) -> tuple[str, list[Delivery]]:
    """The run and deliveries of one logged event; none for an entry that cannot be read."""
    try:
        entry = json.loads(raw)
        hooks = entry["hooks"]
        run_hooks = RunHooks(
            entry["run_id"],
            hooks.get("owner", "") if hooks.get("has_owner") else None,
            hooks.get("base_url", ""),
            hooks.get("notify_url") or None,
            hooks.get("notify_on", "terminal"),
            State(entry["previous"]) if entry["previous"] else None,
            int(entry["sequence"]) - 1,
        )
        deliveries = build(run_hooks, State(entry["state"]), int(entry["at_ms"]) / 1000)
        return run_hooks.run_id, deliveries
    except (ValueError, KeyError, TypeError):
        # Kept, it would stop every event behind it.
        logger.error("dropped a webhook event that cannot be read: %.200s", raw)
        return "", []
