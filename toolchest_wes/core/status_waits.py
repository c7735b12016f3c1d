"""Status requests that wait for the run to move (``GET /runs/{id}/status?wait=``).

A client that polls learns of a run's end up to one poll interval late, and spends a
request per interval; one that asks with ``wait`` gets its answer the moment the run ends
(or, with ``changed_from``, the moment its state is another), in one request. Each waiting
request holds one of the server's request threads, so only ``limit`` wait at once in a
process; the others are answered at once, as ``wait`` allows ("for up to"). A server that
is stopping answers its waiting requests within a quarter of a second
(:meth:`StatusWaits.release`), rather than holding its graceful stop for them.
"""

from __future__ import annotations

import threading

from toolchest_wes.models import State
from toolchest_wes.store.base import StateStore

__all__ = ["MAX_WAIT_S", "StatusWaits"]

#: The longest a status request waits, in seconds: well under the idle timeouts of load
#: balancers (60 s by default on the common ones).
MAX_WAIT_S = 30.0


class StatusWaits:
    """Reads a run's state, waiting for a change when asked to and a slot is free.

    Args:
        store: Where states are read and waited for.
        limit: How many requests of this process may wait at once.
    """

    def __init__(self, store: StateStore, limit: int) -> None:
        self.store = store
        self._slots = threading.BoundedSemaphore(limit) if limit > 0 else None
        self._released = threading.Event()

    def state(
        self, run_id: str, wait_s: float = 0.0, changed_from: State | None = None
    ) -> State | None:
        """The run's state (``None``: no such run), once it has ended, or is not
        ``changed_from``, or ``wait_s`` seconds (at most ``MAX_WAIT_S``) have passed."""
        slots = self._slots
        if (
            wait_s <= 0
            or slots is None
            or self._released.is_set()
            or not slots.acquire(blocking=False)
        ):
            return self.store.get_state(run_id)
        try:
            return self.store.wait_for_state(
                run_id, _Until(changed_from, self._released), min(wait_s, MAX_WAIT_S)
            )
        finally:
            slots.release()

    def release(self) -> None:
        """Answer every waiting request now (within the store's recheck, a quarter of a
        second) and every later one at once: the server is stopping."""
        self._released.set()


class _Until:
    """Whether a wait is over: the run is gone, has ended (an ended run never changes
    again), or left ``changed_from``; or the waits were released."""

    def __init__(self, changed_from: State | None, released: threading.Event) -> None:
        self.changed_from = changed_from
        self.released = released

    def __call__(self, state: State | None) -> bool:
        if state is None or state.is_terminal or self.released.is_set():
            return True
        return self.changed_from is not None and state is not self.changed_from
