"""Threads that wait for a run's state to change, and the wake-up a store gives them.

A status request that waits (``GET /runs/{id}/status?wait=``) should answer the moment the
run moves, not at the next tick of a polling loop, and should cost nothing while it waits.
A store calls :meth:`StateWaits.changed` for each run whose state it changed or learned of
(the embedded store after each transition it commits, the Redis store for each message of
its change feed); a waiting thread sleeps on an event of its own until then. It still reads
the state again every ``recheck_s``, since a change may come from where this process hears
nothing of it: another process writing the same SQLite file, or a Redis store whose change
feed is down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from toolchest_wes.models import State

__all__ = ["StateWaits"]

#: How often a waiting thread reads the state again without being woken, in seconds.
RECHECK_S = 0.25


class StateWaits:
    """Run id -> the events of the threads waiting on it; thread-safe."""

    def __init__(self, recheck_s: float = RECHECK_S) -> None:
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._waiting: dict[str, list[threading.Event]] = {}

    def changed(self, run_id: str) -> None:
        """Wake every thread waiting on ``run_id`` (a cheap no-op when none waits)."""
        if run_id not in self._waiting:
            return
        with self._lock:
            for event in self._waiting.get(run_id, ()):
                event.set()

    def wait(
        self,
        run_id: str,
        read: Callable[[], State | None],
        done: Callable[[State | None], bool],
        timeout_s: float,
    ) -> State | None:
        """What ``read`` answers once ``done`` holds for it, or after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(run_id, []).append(event)
        try:
            while True:
                # Cleared before the read: a change after the read sets it again.
                event.clear()
                state = read()
                left = deadline - time.monotonic()
                if done(state) or left <= 0:
                    return state
                event.wait(min(left, self._recheck_s))
        finally:
            with self._lock:
                events = self._waiting[run_id]
                events.remove(event)
                if not events:
                    del self._waiting[run_id]
