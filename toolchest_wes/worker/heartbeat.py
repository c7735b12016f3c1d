"""The worker's heartbeat: alive, and whether its consumer is taking runs from the queue.

A process that is alive is not enough: the failure this guards against is a worker whose
process runs on while its Celery consumer no longer consumes (it died, or it is stuck
reconnecting). So the heartbeat carries ``consuming``, which is true only while the
consumer is started (connected, its task consumer registered) and its event loop turned
within the last few seconds: a step in the consumer's blueprint (:class:`LivenessStep`)
ticks from the loop's own timer, and stops being "consuming" when the blueprint stops it on
a lost connection. A thread sends the heartbeat every ``worker_heartbeat_interval_s``, and
at once when ``consuming`` changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import bootsteps

from toolchest_wes.compat.celery_steps import TASK_CONSUMER_STEP
from toolchest_wes.store.redis_workers import WorkerAnnouncer

__all__ = ["ConsumerLiveness", "Heartbeat", "LivenessStep"]

logger = logging.getLogger(__name__)

#: How often the consumer's event loop ticks the liveness.
_TICK_S = 1.0
#: Without a tick for this long, the loop is taken to be stuck.
_STUCK_AFTER_S = 10.0


class ConsumerLiveness:
    """Whether this process's Celery consumer is taking runs, as its event loop reports."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_tick: float | None = None
        #: Set whenever the consumer starts or stops (the heartbeat then goes at once).
        self.changed = threading.Event()

    def tick(self) -> None:
        """The consumer's event loop turned (ignored while stopped: a late tick of a stopped
        consumer does not make it consume again)."""
        if self._last_tick is not None:
            self._last_tick = self._clock()

    def start(self) -> None:
        """The consumer connected and consumes."""
        self._last_tick = self._clock()
        self.changed.set()

    def stop(self) -> None:
        """The consumer stopped (a lost connection, or shutdown)."""
        self._last_tick = None
        self.changed.set()

    def consuming(self) -> bool:
        """Started, and ticked recently."""
        last = self._last_tick
        return last is not None and self._clock() - last < _STUCK_AFTER_S


class LivenessStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery's bootsteps are untyped
    """A consumer step that ticks the app's ``ConsumerLiveness`` from the consumer's loop.

    It starts after the task consumer, and Celery stops it (with the other consumer steps)
    when the broker connection is lost, before reconnecting.
    """

    requires = (TASK_CONSUMER_STEP,)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer_entry: Any = None

    def start(self, parent: Any) -> None:
        """Tick now and every second from the consumer's timer (its event loop's).

        The first start also starts the worker's heartbeat and reconcile loop: this step
        runs in every worker (``celery worker`` and in-process test workers alike), once the
        consumer is connected.
        """
        context = parent.app.conf.toolchest_wes_context
        liveness: ConsumerLiveness = context.liveness
        liveness.start()
        self._timer_entry = parent.timer.call_repeatedly(_TICK_S, liveness.tick)
        context.start_background(parent.hostname)

    def stop(self, parent: Any) -> None:
        """No more ticks: the consumer is not consuming."""
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None
        _liveness(parent).stop()

    def shutdown(self, parent: Any) -> None:
        """As :meth:`stop`."""
        self.stop(parent)


def _liveness(consumer: Any) -> ConsumerLiveness:
    liveness: ConsumerLiveness = consumer.app.conf.toolchest_wes_context.liveness
    return liveness


class Heartbeat:
    """A daemon thread that sends this worker's heartbeat until stopped.

    Args:
        announcer: Writes the heartbeat to Redis.
        name: The worker's name (its Celery node name).
        engines: Engine name -> version, from the worker's registry.
        liveness: Whether the consumer is consuming.
        interval_s: Seconds between heartbeats.
    """

    def __init__(
        self,
        announcer: WorkerAnnouncer,
        name: str,
        engines: dict[str, str],
        liveness: ConsumerLiveness,
        interval_s: float,
    ) -> None:
        self.announcer = announcer
        self.name = name
        self.engines = engines
        self.liveness = liveness
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="toolchest-wes-heartbeat")
        self._thread.daemon = True
        self._failing = False

    def start(self) -> None:
        """Send one heartbeat now, then start sending them from the thread."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Send a last heartbeat that says "not consuming", then stop."""
        self._stop.set()
        self.liveness.changed.set()
        self._thread.join(timeout=10)
        self.announcer.client.close()

    def beat(self) -> None:
        """Send one heartbeat now; a Redis that does not answer is logged, once per outage."""
        try:
            self.announcer.announce(
                self.name,
                self.engines,
                consuming=self.liveness.consuming() and not self._stop.is_set(),
            )
        except redis.RedisError as exc:
            if not self._failing:
                logger.warning("worker heartbeat failed; retrying: %s", exc)
            self._failing = True
        else:
            if self._failing:
                logger.info("worker heartbeat sent again name=%s", self.name)
            self._failing = False

    def _loop(self) -> None:
        while True:
            self.liveness.changed.wait(self.interval_s)
            self.liveness.changed.clear()
            self.beat()
            if self._stop.is_set():
                return
