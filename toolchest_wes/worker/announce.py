"""Workers announce the engine versions they run, so service-info reports what executes runs.

Each worker writes ``{name: {"engines": {...}, "seen": epoch}}`` into one Redis hash under the
key prefix on every reconcile tick; the API lists the versions of workers seen recently.
"""

from __future__ import annotations

import json
import logging
import time
from typing import cast

import redis

__all__ = ["WorkerAnnouncer"]

logger = logging.getLogger(__name__)


class WorkerAnnouncer:
    """Reads and writes the ``{prefix}:workers`` hash.

    Args:
        client: A Redis client with ``decode_responses=True``.
        prefix: The deployment's key prefix.
        stale_after_s: A worker not seen for this long no longer counts.
    """

    def __init__(self, client: redis.Redis, prefix: str, *, stale_after_s: float) -> None:
        self.client = client
        self.key = f"{prefix}:workers"
        self.stale_after_s = stale_after_s

    def announce(self, name: str, engines: dict[str, str]) -> None:
        """Record that worker ``name`` is alive and runs these engine versions."""
        self.client.hset(self.key, name, json.dumps({"engines": engines, "seen": time.time()}))

    def engine_versions(self) -> dict[str, list[str]]:
        """``{engine: [versions]}`` over the workers seen recently; stale entries are dropped."""
        now = time.time()
        versions: dict[str, set[str]] = {}
        stale: list[str] = []
        entries = cast("dict[str, str]", self.client.hgetall(self.key))  # decode_responses
        for name, raw in entries.items():
            try:
                entry = json.loads(raw)
                seen = float(entry["seen"])
                engines = dict(entry["engines"])
            except (ValueError, KeyError, TypeError):
                stale.append(name)
                continue
            if now - seen > self.stale_after_s:
                stale.append(name)
                continue
            for engine, version in engines.items():
                versions.setdefault(str(engine), set()).add(str(version))
        if stale:
            self.client.hdel(self.key, *stale)
        return {engine: sorted(found) for engine, found in versions.items()}
