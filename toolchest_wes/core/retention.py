"""Retention: how long a finished run keeps its files, and the sweep that removes them.

A run's outputs, work files and attachments are kept for the retention period after the run
ends; then the sweep removes them and records when. The run record stays, and so do the
engine's and the tasks' stdout and stderr, so that a user can still read why a run failed.
From the moment the period is over, downloads answer 410 whether or not the sweep has run yet:
what a user sees depends on the time, not on when a background pass happened to run.
"""

from __future__ import annotations

import calendar
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.storage.base import StorageError
from toolchest_wes.store.base import RunRecord, StateStore, iso_now, iso_time

__all__ = ["OutputsExpiry", "SweepLoop", "describe_period", "outputs_expiry", "sweep_outputs"]

logger = logging.getLogger(__name__)

#: Runs one store call of the sweep handles at most.
_BATCH = 100
#: The share of its time the sweep works; between batches it rests for the rest.
_WORK_SHARE = 0.5
_ISO = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class OutputsExpiry:
    """When a run's outputs expire and whether they have.

    Attributes:
        expire_at: ISO 8601 UTC; ``None`` while the run is active, or when outputs are kept
            forever and were never removed.
        expired: Whether the outputs are gone (or due to go): downloads answer 410.
    """

    expire_at: str | None
    expired: bool


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return float(calendar.timegm(time.strptime(iso, _ISO)))
    except ValueError:
        return None


def outputs_expiry(record: RunRecord, period_s: float | None, now: float) -> OutputsExpiry:
    """The expiry of ``record``'s outputs under a retention period (``None``: forever)."""
    ended = _epoch(record.end_time) if record.state.is_terminal else None
    nominal = ended + period_s if ended is not None and period_s is not None else None
    removed = record.outputs_removed_at is not None
    expire_at = iso_time(nominal) if nominal is not None else record.outputs_removed_at
    return OutputsExpiry(expire_at, removed or (nominal is not None and now >= nominal))


def describe_period(period_s: float | None) -> str:
    """``"7 days"``, ``"90 seconds"``: a retention period for messages."""
    if period_s is None:
        return "forever"
    if period_s >= 86400:
        return f"{period_s / 86400:g} days"
    if period_s >= 3600:
        return f"{period_s / 3600:g} hours"
    return f"{period_s:g} seconds"


def sweep_outputs(
    store: StateStore, workspace: Workspace, period_s: float, files: RunFiles | None = None
) -> list[str]:
    """Remove the files of every run whose retention period is over; return their ids.

    Each run's outputs, work files and attachments are removed (from ``files``' storage too,
    when run files are kept there), then the store records the removal, which takes the run
    out of the store's index of runs to sweep. A file that cannot be removed is logged and
    left; the run is still marked, so that one unremovable file does not make every later
    pass retry it. A storage that does not answer ends the pass: its runs stay due. The sweep
    offers its core to any other runnable thread after each run, and rests between batches
    as long as the batch took.
    """
    swept: list[str] = []
    while True:
        started = time.monotonic()
        due = store.outputs_due(period_s, limit=_BATCH)
        progress = False
        for run_id in due:
            errors = workspace.remove_outputs(run_id)
            if files is not None:
                try:
                    errors += files.remove_outputs(run_id)
                except StorageError as exc:
                    logger.warning("retention sweep stopped: the storage failed: %s", exc)
                    return swept
            if errors:
                logger.warning(
                    "could not remove every file of run_id=%s errors=%s", run_id, errors[:5]
                )
            progress = store.mark_outputs_removed(run_id, iso_now()) or progress
            swept.append(run_id)
            # A busy process keeps its core for a scheduler slice, milliseconds, even against
            # a woken request handler, and neither nice nor SCHED_IDLE changes that: a sweep
            # that never blocked raised every server's status p99 on the machine 4-fold
            # (bench/bench_history.py). Offering the core after each run bounds the wait to
            # one run's work; the call returns at once when nothing else wants the core. It
            # also releases the GIL, so in a server's own process a request thread that waits
            # for it runs next.
            os.sched_yield()
        if len(due) < _BATCH or not progress:
            break
        # A sweep over a long history runs for minutes, in the server's own process (a thread
        # that competes for the GIL) or beside it on the same cores and store. Resting
        # between batches keeps the requests served meanwhile at their usual latency
        # (bench/bench_history.py); a slower sweep costs nothing, since due runs already
        # answer 410.
        time.sleep((time.monotonic() - started) * (1 / _WORK_SHARE - 1))
    if swept:
        logger.info("retention sweep removed the outputs of runs=%d", len(swept))
    return swept


class SweepLoop:
    """Calls ``sweep`` now and then every ``interval_s`` on a daemon thread, until stopped.

    A failing pass is logged and the next one tries again: the store may be restarting.
    """

    def __init__(self, sweep: Callable[[], object], interval_s: float) -> None:
        self._sweep = sweep
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="toolchest-wes-retention", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sweep()
            except Exception:
                logger.warning("retention sweep failed; retrying next interval", exc_info=True)
            self._stop.wait(self._interval_s)
