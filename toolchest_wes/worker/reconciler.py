"""The reconcile loop of distributed mode: a thread in every worker, one acting at a time.

Each pass takes a short lock in Redis (``SET NX PX``) so that however many workers run, one
pass happens per interval across the deployment. The lock is never released early: it
expires, which also spaces the passes. The retention sweep runs from the same loop under a
lock of its own, which spaces sweeps by ``retention_sweep_interval_s``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

import redis

from toolchest_wes.config import Settings
from toolchest_wes.core.reconcile import ReconcileReport, end_lost_runs
from toolchest_wes.core.retention import sweep_outputs
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.store.base import StateStore, StoreError
from toolchest_wes.store.redis_store import connect
from toolchest_wes.worker.celery_config import queue_name

__all__ = ["QueueProbe", "Reconciler", "start_reconciler"]

logger = logging.getLogger(__name__)

# kombu's Redis transport keeps one list per priority step (the bare name is priority 0) and
# every delivered, unacknowledged message in one hash.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED_KEY = "unacked"


class QueueProbe:
    """The run queue in Redis: how long it is, and which task ids have a message in it.

    A message counts as in it while waiting or delivered but unacknowledged.
    """

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.client = client
        self.keys = [queue, *(f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in _PRIORITY_STEPS)]

    def task_ids(self) -> set[str]:
        """Ids of every message of the queue; O(messages), for one reconcile pass."""
        ids: set[str] = set()
        for key in self.keys:
            for raw in self.client.lrange(key, 0, -1):
                ids.update(_message_id(raw))
        for raw in self.client.hvals(_UNACKED_KEY):
            try:
                message = json.loads(raw)[0]
            except (ValueError, IndexError, TypeError):
                continue
            ids.update(_message_id(json.dumps(message)))
        return ids

    def length(self) -> int:
        """Messages waiting for a worker across the priority lists; delivered ones excluded."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys:
            pipe.llen(key)
        return sum(int(n) for n in pipe.execute())


def _message_id(raw: bytes | str) -> list[str]:
    try:
        headers = json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return []
    task_id = headers.get("id")
    return [task_id] if isinstance(task_id, str) else []


class Reconciler:
    """Periodically ends runs whose worker died or whose message was lost."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        client: redis.Redis,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.probe = QueueProbe(client, queue_name(settings))
        self.clock = clock
        self._lock_key = f"{settings.redis_prefix}:reconcile-lock"
        self._sweep_lock_key = f"{settings.redis_prefix}:retention-lock"
        self.workspace = Workspace(settings.runs_dir)
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Called every interval before the pass (workers announce themselves here).
        self.on_tick: Callable[[], None] | None = None

    def run_once(self, *, force: bool = False) -> ReconcileReport | None:
        """One pass, if this instance wins the lock (or ``force``); ``None`` if it did not."""
        interval_ms = max(1, int(self.settings.reconcile_interval_s * 1000))
        if not force and not self.client.set(self._lock_key, self._token, nx=True, px=interval_ms):
            return None
        known: set[str] | None = None

        def message_exists(run_id: str) -> bool:
            nonlocal known
            if known is None:
                known = self.probe.task_ids()
            return run_id in known

        return end_lost_runs(
            self.store,
            message_exists=message_exists,
            queued_grace_s=self.settings.queue_lost_after_s,
            now=self.clock(),
        )

    def sweep_once(self, *, force: bool = False) -> list[str] | None:
        """Remove expired outputs, if this instance wins the sweep lock (or ``force``).

        Returns the ids of the runs swept, or ``None`` if another instance holds the lock or
        outputs are kept forever.
        """
        period = self.settings.retention_s
        if period is None:
            return None
        interval_ms = max(1, int(self.settings.retention_sweep_interval_s * 1000))
        if not force and not self.client.set(
            self._sweep_lock_key, self._token, nx=True, px=interval_ms
        ):
            return None
        return sweep_outputs(self.store, self.workspace, period)

    def start(self) -> None:
        """Run passes every ``reconcile_interval_s`` on a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, name="toolchest-wes-reconcile", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop after the current pass and close the Redis connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reconcile_interval_s):
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except redis.RedisError:
                    logger.warning("reconcile tick hook failed", exc_info=True)
            try:
                report = self.run_once()
            except (redis.RedisError, StoreError):
                # Redis may be restarting; the next pass tries again.
                logger.warning("reconcile pass failed; retrying next interval", exc_info=True)
                continue
            if report and (report.failed or report.cancelled):
                logger.warning(
                    "reconcile ended runs failed=%d cancelled=%d",
                    len(report.failed),
                    len(report.cancelled),
                )
            try:
                self.sweep_once()
            except (redis.RedisError, StoreError, OSError):
                logger.warning("retention sweep failed; retrying next interval", exc_info=True)


def start_reconciler(
    settings: Settings, store: StateStore, *, on_tick: Callable[[], None] | None = None
) -> Reconciler:
    """A started reconcile loop on the settings' Redis; ``on_tick`` runs every interval."""
    if settings.redis_url is None:
        raise ValueError("the reconcile loop needs redis_url")
    client = connect(settings.redis_url)
    reconciler = Reconciler(settings, store, client)
    reconciler.on_tick = on_tick
    if on_tick is not None:
        on_tick()  # announce at once rather than after the first interval
    reconciler.start()
    return reconciler
