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
from dataclasses import dataclass, field

import redis

from toolchest_wes.compat import kombu_internals
from toolchest_wes.config import Settings
from toolchest_wes.core.reconcile import ReconcileReport, reconcile_runs
from toolchest_wes.core.retention import sweep_outputs
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.store.base import StateStore, StoreError
from toolchest_wes.worker.celery_config import queue_name

__all__ = ["QueueProbe", "QueueSnapshot", "Reconciler"]

logger = logging.getLogger(__name__)


@dataclass
class QueueSnapshot:
    """The run messages in Redis at one instant: waiting ones, and delivered ones by run id."""

    waiting: set[str] = field(default_factory=set)
    #: run id -> [(delivery tag, delivered at, epoch seconds of the consuming host)]
    delivered: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def alive(self, run_id: str, *, delivered_after: float) -> bool:
        """Whether a message of the run waits, or was delivered after ``delivered_after``.

        A delivery older than that whose run is still QUEUED went to a worker that died, or
        that could not start the run; kombu would hand it out again only after the
        visibility timeout (hours).
        """
        if run_id in self.waiting:
            return True
        return any(at > delivered_after for _, at in self.delivered.get(run_id, ()))


class QueueProbe:
    """The run queue in Redis: how long it is, and which runs have a message in it.

    It reads kombu's keys directly (``toolchest_wes.compat.kombu_internals`` has their
    layout): kombu has no API that lists a queue's messages or its unacknowledged ones.
    """

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.client = client
        self.queue = queue
        self.keys = kombu_internals.queue_keys(queue)

    def snapshot(self) -> QueueSnapshot:
        """Every message of the queue, read in one ``MULTI``; O(messages), for one pass.

        One transaction, so a message that moves from the list to the unacknowledged hash
        while it is read is seen in exactly one of them.
        """
        pipe = self.client.pipeline(transaction=True)
        for key in self.keys:
            pipe.lrange(key, 0, -1)
        pipe.hgetall(kombu_internals.UNACKED_KEY)
        pipe.zrange(kombu_internals.UNACKED_INDEX_KEY, 0, -1, withscores=True)
        *lists, unacked, index = pipe.execute()
        snapshot = QueueSnapshot()
        for raw in (raw for items in lists for raw in items):
            snapshot.waiting.update(_message_id(raw))
        times = {_text(tag): float(at) for tag, at in index}
        for tag, raw in unacked.items():
            delivery = kombu_internals.unacked_delivery(raw)
            if delivery is None:
                continue
            message, routing_key = delivery
            if routing_key != self.queue:
                continue  # another deployment's queue on the same Redis
            for run_id in _message_id(json.dumps(message)):
                entry = (_text(tag), times.get(_text(tag), 0.0))
                snapshot.delivered.setdefault(run_id, []).append(entry)
        return snapshot

    def forget(self, tags: list[str]) -> None:
        """Drop deliveries from the unacknowledged hash, as an acknowledgement would.

        For deliveries whose run was queued again: kombu would otherwise restore them after
        the visibility timeout, a second (harmless, but useless) message. A worker that does
        hold one and acknowledges it later removes nothing.
        """
        if tags:
            pipe = self.client.pipeline(transaction=True)
            pipe.zrem(kombu_internals.UNACKED_INDEX_KEY, *tags)
            pipe.hdel(kombu_internals.UNACKED_KEY, *tags)
            pipe.execute()

    def length(self) -> int:
        """Messages waiting for a worker across the priority lists; delivered ones excluded."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys:
            pipe.llen(key)
        return sum(int(n) for n in pipe.execute())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _message_id(raw: bytes | str) -> list[str]:
    try:
        headers = json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return []
    task_id = headers.get("id")
    return [task_id] if isinstance(task_id, str) else []


class Reconciler:
    """Periodically queues again, or ends, the runs no worker holds any more.

    Args:
        settings: Intervals, grace periods and the queue's name.
        store: The run store.
        client: A Redis client for the lock and the queue.
        requeue: Sends a run's message again (``CeleryTaskRunner.submit``).
        clock: Epoch seconds; the delivery times kombu records are epoch seconds too.
    """

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        client: redis.Redis,
        *,
        requeue: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        files: RunFiles | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.requeue = requeue
        self.probe = QueueProbe(client, queue_name(settings))
        self.clock = clock
        self._lock_key = f"{settings.redis_prefix}:reconcile-lock"
        self._sweep_lock_key = f"{settings.redis_prefix}:retention-lock"
        self.workspace = Workspace(settings.runs_dir)
        self.files = files
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, *, force: bool = False) -> ReconcileReport | None:
        """One pass, if this instance wins the lock (or ``force``); ``None`` if it did not."""
        interval_ms = max(1, int(self.settings.reconcile_interval_s * 1000))
        if not force and not self.client.set(self._lock_key, self._token, nx=True, px=interval_ms):
            return None
        now = self.clock()
        grace = self.settings.queue_lost_after_s
        snapshot: QueueSnapshot | None = None

        def message_alive(run_id: str) -> bool:
            nonlocal snapshot
            # Read once, lazily: only a QUEUED run older than the grace period needs it, and
            # after the runs were listed, so a run listed QUEUED whose message is not in the
            # snapshot had none when the snapshot was taken.
            if snapshot is None:
                snapshot = self.probe.snapshot()
            return snapshot.alive(run_id, delivered_after=now - grace)

        report = reconcile_runs(
            self.store,
            message_alive=message_alive,
            requeue=self.requeue,
            queued_grace_s=grace,
            now=now,
        )
        if snapshot is not None and report.requeued:
            stale = [
                tag for run_id in report.requeued for tag, _ in snapshot.delivered.get(run_id, ())
            ]
            self.probe.forget(stale)
        return report

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
        return sweep_outputs(self.store, self.workspace, period, self.files)

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

    def sweep_scratch(self) -> list[str]:
        """Remove this process's scratch folders that no process holds any more (a killed
        worker's); the ids of their runs. Nothing without ``--storage``."""
        if self.files is None:
            return []
        store = self.store
        return self.files.sweep_scratch(lambda run_id: store.get_state(run_id) is not None)

    def _sweep_scratch(self) -> None:
        try:
            self.sweep_scratch()
        except (redis.RedisError, StoreError, OSError):
            logger.warning("scratch sweep failed; retrying next interval", exc_info=True)

    def _loop(self) -> None:
        # At once: a worker started again after a SIGKILL clears what the killed one left.
        self._sweep_scratch()
        while not self._stop.wait(self.settings.reconcile_interval_s):
            self._sweep_scratch()
            try:
                report = self.run_once()
            except (redis.RedisError, StoreError):
                # Redis may be restarting; the next pass tries again.
                logger.warning("reconcile pass failed; retrying next interval", exc_info=True)
                continue
            if report and (report.failed or report.cancelled or report.requeued):
                logger.warning(
                    "reconcile requeued=%d failed=%d cancelled=%d",
                    len(report.requeued),
                    len(report.failed),
                    len(report.cancelled),
                )
            try:
                self.sweep_once()
            except (redis.RedisError, StoreError, OSError):
                logger.warning("retention sweep failed; retrying next interval", exc_info=True)
