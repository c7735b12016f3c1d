"""The webhook outbox in Redis, under the state store's key prefix.

``{prefix}:webhooks:run:{run_id}`` (hash) holds a run's hooks, ``{prefix}:webhooks:d:{id}``
(hash) one delivery, and ``{prefix}:webhooks:due`` (sorted set) every delivery by the time
it is due. A run's event is recorded in one optimistic transaction (WATCH on the run's hash,
then MULTI), so two processes recording events of one run cannot both take one sequence.
"""

from __future__ import annotations

from typing import Any

import redis

from toolchest_wes.models import TERMINAL_STATES, State
from toolchest_wes.store.outbox import Builder, Delivery, RunHooks

__all__ = ["RedisOutbox"]

# Claims the due deliveries and holds them (a new score) in one step, so two processes'
# loops do not both send the same delivery at once.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""
_FIELDS = ("event_id", "url", "subscriber", "body", "first_at", "attempts")


class RedisOutbox:
    """An :class:`~toolchest_wes.store.outbox.Outbox` in Redis.

    Events are recorded just after the store's transition script, not inside it.
    """

    records_transitions = False

    def __init__(self, url: str, *, prefix: str) -> None:
        self._client: redis.Redis = redis.Redis.from_url(url, decode_responses=True)
        self._prefix = f"{prefix}:webhooks"
        self._due = f"{self._prefix}:due"
        self._runs = f"{self._prefix}:runs"
        self._claim = self._client.register_script(_CLAIM)

    def _run_key(self, run_id: str) -> str:
        return f"{self._prefix}:run:{run_id}"

    def _delivery_key(self, delivery_id: str) -> str:
        return f"{self._prefix}:d:{delivery_id}"

    def register(self, hooks: RunHooks) -> None:
        """Keep ``hooks`` for the run."""
        mapping: dict[Any, Any] = {"owner": hooks.owner or "", "base_url": hooks.base_url}
        mapping |= {"notify_url": hooks.notify_url or "", "notify_on": hooks.notify_on}
        mapping |= {"has_owner": "1" if hooks.owner is not None else "", "sequence": "0"}
        with self._client.pipeline() as pipe:
            pipe.hset(self._run_key(hooks.run_id), mapping=mapping)
            pipe.sadd(self._runs, hooks.run_id)
            pipe.execute()

    def record(self, run_id: str, state: State, at: float, build: Builder) -> int:
        """Advance the run's last state and queue its deliveries, atomically."""
        key = self._run_key(run_id)
        with self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw: dict[str, str] = pipe.hgetall(key)  # type: ignore[assignment]
                    if not raw:
                        pipe.unwatch()
                        return 0
                    hooks = RunHooks(
                        run_id,
                        raw["owner"] if raw.get("has_owner") else None,
                        raw["base_url"],
                        raw.get("notify_url") or None,
                        raw.get("notify_on", "terminal"),
                        State(raw["last_state"]) if raw.get("last_state") else None,
                        int(raw.get("sequence", "0")),
                    )
                    if hooks.last_state is state:
                        pipe.unwatch()
                        return 0
                    deliveries = build(hooks, state, at)
                    pipe.multi()
                    if state in TERMINAL_STATES:
                        # A terminal state is final: no more events, so the hooks can go.
                        pipe.delete(key)
                        pipe.srem(self._runs, run_id)
                    else:
                        pipe.hset(key, "last_state", state.value)
                        pipe.hincrby(key, "sequence", 1)
                    for d in deliveries:
                        pipe.hset(self._delivery_key(d.delivery_id), mapping=_mapping(d))
                        pipe.zadd(self._due, {d.delivery_id: d.first_at})
                    pipe.execute()
                    return len(deliveries)
                except redis.WatchError:
                    continue

    def drain(self, build: Builder, limit: int = 100) -> int:
        """Nothing to drain: :meth:`record` queues deliveries itself."""
        return 0

    def claim_due(self, now: float, limit: int, hold_s: float) -> list[Delivery]:
        """Due deliveries, earliest first, held for ``hold_s``."""
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
        """Remove a delivery."""
        with self._client.pipeline() as pipe:
            pipe.delete(self._delivery_key(delivery_id))
            pipe.zrem(self._due, delivery_id)
            pipe.execute()

    def retry_at(self, delivery_id: str, at: float, attempts: int) -> None:
        """Reschedule a delivery."""
        with self._client.pipeline() as pipe:
            pipe.hset(self._delivery_key(delivery_id), "attempts", attempts)
            pipe.zadd(self._due, {delivery_id: at}, xx=True)
            pipe.execute()

    def tracked(self) -> list[tuple[str, State | None]]:
        """Every run with hooks and the last state recorded for it."""
        run_ids = sorted(self._client.sscan_iter(self._runs))
        with self._client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hget(self._run_key(run_id), "last_state")
            states: list[str | None] = pipe.execute()
        return [(r, State(s) if s else None) for r, s in zip(run_ids, states, strict=True)]

    def forget(self, run_id: str) -> None:
        """Drop the run's hooks."""
        with self._client.pipeline() as pipe:
            pipe.delete(self._run_key(run_id))
            pipe.srem(self._runs, run_id)
            pipe.execute()

    def pending(self) -> int:
        """How many deliveries are queued."""
        return int(self._client.zcard(self._due))

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()


def _mapping(d: Delivery) -> dict[Any, Any]:
    return {
        "event_id": d.event_id,
        "url": d.url,
        "subscriber": d.subscriber,
        "body": d.body,
        "first_at": d.first_at,
        "attempts": d.attempts,
    }
