"""Threads that wait for a run's state to change, and the wake-up a store gives them.

A status request that waits (``GET /runs/{id}/status?wait=``) should answer the moment the
run moves, not at the next tick of a polling loop, and should cost nothing while it waits.
A store calls :meth:`StateWaits.changed` for each run whose state it changed or learned of
(the embedded store after each transition it commits, the Redis store for each message of
its change feed); a waiting thread sleeps on an event of its own until then. It still reads
the state again every ``recheck_s``, since a change may come from where this process hears
nothing of it: another process writing the same SQLite file, or a Redis store whose change
feed is down.

For the first of those, a store can also give a ``version``: a number that changes whenever
another connection commits (SQLite's ``PRAGMA data_version``). While any thread waits, and for
a second after the last one stops, one watcher thread reads it every ``version_poll_s`` and
wakes every waiting thread when it moves, so a change that another API process of the same
server commits answers a waiting request within milliseconds too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from toolchest_wes.models import State

__all__ = ["StateWaits"]

logger = logging.getLogger(__name__)

#: How often a waiting thread reads the state again without being woken, in seconds.
RECHECK_S = 0.25
#: How often the watcher reads the store's ``version`` while threads wait, in seconds.
VERSION_POLL_S = 0.002
# How long the watcher stays after the last wait: a client that polls with waits keeps it, and
# with it the version it last read, from one request to the next.
_WATCHER_LINGER_S = 1.0


class StateWaits:
    """Run id -> the events of the threads waiting on it; thread-safe."""

    def __init__(
        self,
        recheck_s: float = RECHECK_S,
        *,
        version: Callable[[], int] | None = None,
        version_poll_s: float = VERSION_POLL_S,
    ) -> None:
        self._recheck_s = recheck_s
        self._version = version
        self._version_poll_s = version_poll_s
        self._lock = threading.Lock()
        self._waiting: dict[str, list[threading.Event]] = {}
        self._watcher: threading.Thread | None = None
        self._generation = 0

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
            if self._version is not None and self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch, name="toolchest-wes-state-watch", daemon=True
                )
                self._watcher.start()
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

    def stop_watching(self) -> None:
        """End the watcher and wait until it has made its last read (the store is closing);
        a later wait starts a new one."""
        with self._lock:
            self._generation += 1
            watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=5)

    def _watch(self) -> None:
        """Wake every waiting thread when the store's version moves; end once no thread has
        waited for ``_WATCHER_LINGER_S``."""
        assert self._version is not None
        with self._lock:
            generation = self._generation
        last: int | None = None
        idle_since: float | None = None
        while True:
            with self._lock:
                if generation != self._generation:
                    return
                if self._waiting:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= _WATCHER_LINGER_S:
                    self._watcher = None
                    return
            try:
                version: int | None = self._version()
            except Exception as exc:
                # The waiting threads still read their state every recheck_s.
                logger.debug("store version not read: %s", exc)
                version = last
            if last is not None and version != last:
                with self._lock:
                    for events in self._waiting.values():
                        for event in events:
                            event.set()
            last = version
            time.sleep(self._version_poll_s)
