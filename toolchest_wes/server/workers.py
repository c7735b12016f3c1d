"""WorkerMonitor: the API's view of the workers' heartbeats (distributed mode).

It feeds ``GET /health`` (503 while no worker is live), ``GET /metrics``, the ``workers``
field of service-info and the warning headers of ``POST /runs``. A worker is *live* when its
last heartbeat is within ``worker_heartbeat_timeout_s`` and says its consumer takes runs.
The heartbeats are read from Redis at most once a second per process, so a burst of
submissions costs one read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from toolchest_wes.models import WorkersInfo, WorkerStatus
from toolchest_wes.store.base import iso_time
from toolchest_wes.store.redis_workers import WorkerAnnouncer, WorkerBeat

__all__ = ["LIVE_WORKERS_HEADER", "WorkerMonitor"]

logger = logging.getLogger(__name__)

#: Response header of ``POST /runs`` while no worker is live: how many are (0).
LIVE_WORKERS_HEADER = "X-Toolchest-Wes-Live-Workers"
_CACHE_S = 1.0


class WorkerMonitor:
    """Cached reads of the workers' heartbeats.

    Args:
        announcer: Reads the heartbeats from Redis.
        clock: Monotonic seconds, for the cache.
    """

    def __init__(
        self, announcer: WorkerAnnouncer, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.announcer = announcer
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._beats: list[WorkerBeat] = []

    @property
    def timeout_s(self) -> float:
        """How old a heartbeat may be for its worker to count."""
        return self.announcer.stale_after_s

    def workers(self) -> list[WorkerBeat]:
        """Workers seen within the timeout (read from Redis at most once a second).

        Raises:
            redis.RedisError: Redis did not answer.
        """
        with self._lock:
            if self._clock() - self._read_at >= _CACHE_S:
                self._beats = self.announcer.workers()
                self._read_at = self._clock()
            return list(self._beats)

    def live(self) -> list[WorkerBeat]:
        """Workers seen within the timeout whose consumer takes runs."""
        return [beat for beat in self.workers() if beat.consuming]

    def info(self) -> WorkersInfo:
        """The ``workers`` field of service-info."""
        beats = self.workers()
        return WorkersInfo(
            live=sum(beat.consuming for beat in beats),
            heartbeat_timeout_s=self.timeout_s,
            workers=[
                WorkerStatus(
                    name=beat.name,
                    last_heartbeat=iso_time(beat.seen),
                    seconds_since_heartbeat=round(beat.age_s, 3),
                    consuming=beat.consuming,
                    engines=beat.engines,
                )
                for beat in beats
            ],
        )

    def engine_versions(self) -> dict[str, list[str]]:
        """``{engine: [versions]}`` the workers seen within the timeout run."""
        versions: dict[str, set[str]] = {}
        for beat in self.workers():
            for engine, version in beat.engines.items():
                versions.setdefault(engine, set()).add(version)
        return {engine: sorted(found) for engine, found in versions.items()}

    def no_worker_message(self) -> str:
        """Why runs will not start now (for ``/health`` and the ``POST /runs`` warning)."""
        return (
            f"no worker has sent a heartbeat in the last {self.timeout_s:g} s "
            "(TOOLCHEST_WES_WORKER_HEARTBEAT_TIMEOUT_S); runs are accepted and wait QUEUED "
            "until a worker starts"
        )

    def submit_headers(self) -> dict[str, str]:
        """Headers for an accepted ``POST /runs``: a warning while no worker is live.

        Never fails the submission: the run is stored and queued either way, so a heartbeat
        read that fails adds nothing.
        """
        try:
            live = len(self.live())
        except redis.RedisError:
            logger.warning("could not read the workers' heartbeats", exc_info=True)
            return {}
        if live:
            return {}
        # RFC 9110 deprecates Warning, but clients and proxies still show it; the X- header
        # is for programs.
        text = self.no_worker_message().replace('"', "'")
        return {LIVE_WORKERS_HEADER: "0", "Warning": f'199 toolchest-wes "{text}"'}
