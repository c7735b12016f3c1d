"""LeaseKeeper: one thread per process that renews the leases of the runs it holds.

A run's lease says that the process executing it is alive; the reconcile loop of distributed
mode ends (or queues again) a run whose lease ran out. The lease must therefore be renewed
for as long as the process holds the run, whatever the run is doing: fetching its files,
waiting for its engine to be forked (a burst of a thousand runs waits minutes for the
zygote, which forks one at a time), running, or uploading its results. Renewing it from the
thread that executes the run would tie it to that thread's progress instead, and a slow
fork would look like a dead worker.

One thread renews every held run, each ``ttl_s / 4``: a thousand runs cost one thread and a
few hundred store calls a second, not a thousand timers. It dies with the process, so a
worker that dies stops renewing all its runs at once, and they are reconciled within the
lease as before.

Only distributed mode reads leases. The embedded server executes every run in its one
process, and when that process is replaced, ``reconcile.recover_after_restart`` takes each
active run by its state and its engine record, never by its lease (and the ``reconcile``
command refuses embedded mode); so an embedded keeper renews nothing, which spares the
SQLite file a write per run every ``ttl_s / 4``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from toolchest_wes.store.base import StateStore, StoreUnavailableError

__all__ = ["LeaseKeeper"]

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews, every ``ttl_s / 4``, the lease of each run held with :meth:`hold`.

    The thread starts with the first held run and ends once none is held, so an idle process
    (or a test that builds many keepers) keeps no thread. The constructor does no I/O.

    Args:
        store: Where the leases are kept.
        ttl_s: The length of a lease; each renewal extends it to ``ttl_s`` from now.
        renew: Whether anything reads the leases (a reconcile loop). Without, :meth:`hold`
            only counts the held runs, and no thread starts.
    """

    def __init__(self, store: StateStore, ttl_s: float, *, renew: bool = True) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.renew = renew
        # Notified when the last held run is released, so the thread ends at once.
        self._lock = threading.Condition()
        #: run id -> how many holders (a duplicate delivery may hold a run twice for a moment).
        self._held: Counter[str] = Counter()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, run_id: str) -> Iterator[None]:
        """Keep the run's lease renewed until the block exits.

        The run must have a lease already (the transition that took it sets one): the first
        renewal comes up to ``ttl_s / 4`` later.
        """
        with self._lock:
            self._held[run_id] += 1
            # is_alive, not only None: a keeper inherited through fork has no thread.
            if self.renew and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._loop, name="toolchest-wes-leases", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held[run_id] -= 1
                if self._held[run_id] <= 0:
                    del self._held[run_id]
                if not self._held:
                    self._lock.notify_all()

    def renew_now(self, run_id: str) -> None:
        """Renew the run's lease at once, rather than at the next pass, if leases are renewed.

        For a run whose lease may have run out before this process took it (an adopted run).
        """
        if self.renew:
            self.store.touch_lease(run_id, self.ttl_s)

    def held(self) -> list[str]:
        """The run ids held now."""
        with self._lock:
            return list(self._held)

    def _loop(self) -> None:
        interval = self.ttl_s / 4
        due = time.monotonic() + interval
        while True:
            with self._lock:
                while self._held and (remaining := due - time.monotonic()) > 0:
                    self._lock.wait(remaining)
                if not self._held:
                    self._thread = None
                    return
                runs = list(self._held)
            self._renew(runs)
            # A pass slower than the interval (a slow store) starts the next one at once
            # rather than piling up missed ones.
            due = max(due + interval, time.monotonic())

    def _renew(self, runs: list[str]) -> None:
        for run_id in runs:
            try:
                self.store.touch_lease(run_id, self.ttl_s)
            except StoreUnavailableError as exc:
                # The store is restarting or out of reach: the leases are renewed once it
                # answers. If that takes longer than a lease, the reconcile loop takes the
                # runs for lost, and their final compare-and-set finds them ended.
                logger.warning("could not renew the leases of %d runs: %s", len(runs), exc)
                return
            except Exception:
                # Every run of the process depends on this thread: it must outlive any error.
                logger.exception("could not renew the lease of run_id=%s", run_id)
