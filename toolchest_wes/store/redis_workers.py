"""Worker heartbeats in Redis: which workers are alive, and the engine versions they run.

Each worker writes ``{name: {"engines": {...}, "consuming": bool, "seen": epoch}}`` into one
hash under the key prefix every few seconds (see ``worker/heartbeat.py``). ``seen`` comes
from the Redis server's clock, the one clock every API and worker host shares, so ages are
comparable across hosts. API processes read the hash for ``/health``, ``/metrics``,
service-info and the warning on ``POST /runs`` (see ``server/workers.py``).

Kept with the other Redis adapters rather than under ``worker/`` because both sides use it:
workers write the hash and API processes read it, and ``server/`` does not import ``worker/``.
``toolchest_wes.wiring`` connects the announcer each side gets.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import cast

import redis

__all__ = ["WorkerAnnouncer", "WorkerBeat"]

logger = logging.getLogger(__name__)

#: KEYS: the workers hash. ARGV: worker name, its entry as JSON without ``seen``.
#: Sets ``seen`` to the server's time (epoch seconds) and stores the entry.
_BEAT = """
local t = redis.call('TIME')
local entry = cjson.decode(ARGV[2])
entry['seen'] = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return 1
"""
#: Entries this many timeouts old are deleted: a worker that stopped long ago is history.
_FORGET_AFTER_TIMEOUTS = 10


@dataclass(frozen=True)
class WorkerBeat:
    """A worker's last heartbeat.

    Attributes:
        name: The Celery node name (``toolchest-wes@host``).
        seen: When it was sent, epoch seconds on the Redis server's clock.
        age_s: How long ago that was.
        consuming: Whether the worker's consumer was connected to the broker and taking runs.
        engines: Engine name -> version the worker runs.
    """

    name: str
    seen: float
    age_s: float
    consuming: bool
    engines: dict[str, str]


class WorkerAnnouncer:
    """Reads and writes the ``{prefix}:workers`` hash.

    Args:
        client: A Redis client with ``decode_responses=True``.
        prefix: The deployment's key prefix.
        stale_after_s: A worker whose last heartbeat is older than this no longer counts.
    """

    def __init__(self, client: redis.Redis, prefix: str, *, stale_after_s: float) -> None:
        self.client = client
        self.key = f"{prefix}:workers"
        self.stale_after_s = stale_after_s
        self._beat = client.register_script(_BEAT)

    def announce(self, name: str, engines: dict[str, str], *, consuming: bool = True) -> None:
        """Record a heartbeat of worker ``name``: alive now, running these engine versions."""
        entry = json.dumps({"engines": engines, "consuming": consuming})
        self._beat(keys=[self.key], args=[name, entry])

    def workers(self) -> list[WorkerBeat]:
        """The workers seen within ``stale_after_s``, newest heartbeat first."""
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(self.key)
        (seconds, micros), entries = pipe.execute()
        now = float(seconds) + float(micros) / 1e6
        beats: list[WorkerBeat] = []
        forget: list[str] = []
        for name, raw in cast("dict[str, str]", entries).items():  # decode_responses
            try:
                entry = json.loads(raw)
                seen = float(entry["seen"])
                engines = {str(k): str(v) for k, v in dict(entry["engines"]).items()}
                consuming = bool(entry.get("consuming", True))
            except (ValueError, KeyError, TypeError):
                forget.append(name)
                continue
            age = max(0.0, now - seen)
            if age > _FORGET_AFTER_TIMEOUTS * self.stale_after_s:
                forget.append(name)
            elif age <= self.stale_after_s:
                beats.append(WorkerBeat(name, seen, age, consuming, engines))
        if forget:
            self.client.hdel(self.key, *forget)
        return sorted(beats, key=lambda b: b.age_s)
