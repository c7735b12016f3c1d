"""The embedded mode's own parts: the run pool in the API process and its two background jobs.

In embedded mode the API process executes runs itself: a ``LocalTaskRunner`` whose threads
call ``execute_run``, with run records in the SQLite file. Each run's engine process is
recorded in ``<data_dir>/engines`` while it runs. When the process starts, the restart
recovery queues again the QUEUED runs an earlier process left (and the INITIALIZING ones,
whose engine had not started, a few times at most), and hands the RUNNING and
CANCELING ones to ``EngineAdoption``: a run whose engine the zygote kept alive (the earlier
process was a gunicorn worker that died while the arbiter lived) is adopted and followed to
its end on the pool like any other; the engine of a run that cannot be adopted is stopped,
and the run ends as the recovery says. The retention sweep runs here on a loop of its own
(``SweepLoop``); distributed mode sweeps from the reconcile loop instead, under a lock
shared by all processes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from toolchest_wes.config import Settings
from toolchest_wes.core.adoption import adopt_run
from toolchest_wes.core.executor import ExecutorDeps, execute_run
from toolchest_wes.core.reconcile import recover_after_restart
from toolchest_wes.core.retention import SweepLoop, sweep_outputs
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.adopted import AdoptedProcess, CannotAdoptError, adopt, stop_recorded
from toolchest_wes.engines.engine_record import remove_record
from toolchest_wes.models import State
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.store.base import RunRecord, StateStore

__all__ = [
    "EngineAdoption",
    "engine_records",
    "local_runner",
    "restart_recovery",
    "retention_loop",
]

logger = logging.getLogger(__name__)


def engine_records(settings: Settings) -> Path:
    """The folder of the engine records: in the data folder, outside every run's folder
    (which is all the engine jail lets a run see of it)."""
    return settings.data_dir / "engines"


class EngineAdoption:
    """What the run pool executes: a run to start, or a run to adopt after a restart."""

    def __init__(self, executor: ExecutorDeps) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self._adopted: dict[str, AdoptedProcess] = {}

    def execute(self, run_id: str) -> None:
        """Follow the run's adopted engine if it has one, else start the run."""
        with self._lock:
            handle = self._adopted.pop(run_id, None)
        if handle is None:
            execute_run(run_id, self._executor)
            return
        try:
            adopt_run(run_id, self._executor, handle, handle.running_for_s())
        finally:
            handle.close()

    def take_over(self, record: RunRecord, submit: Callable[[str], None]) -> str | None:
        """Adopt a RUNNING run left by an earlier process (``None``: submitted to the pool),
        or stop what is left of its engine and say why the run cannot go on."""
        deps, run_id = self._executor, record.run_id
        path = deps.engine_record(run_id)
        if path is None:
            return "its engine process was lost"
        if record.state is State.RUNNING and deps.files is None:
            try:
                handle = adopt(path)
            except CannotAdoptError as exc:
                stopped = stop_recorded(path, deps.cancel_grace_s)
                _forget(path)
                return f"{exc}{'; it was stopped' if stopped else ''}"
            with self._lock:
                self._adopted[run_id] = handle
            submit(run_id)
            logger.warning("run adopted after restart run_id=%s pid=%s", run_id, handle.pid)
            return None
        stopped = stop_recorded(path, deps.cancel_grace_s)
        _forget(path)
        if stopped is not None and record.state is State.RUNNING:
            stopped += " (the runs of a server that keeps run files in a storage are not adopted)"
        return stopped or "its engine process was lost"

    def has_engine(self, record: RunRecord) -> bool:
        """Whether an engine process is recorded for the run (one that the recovery must not
        start a second time; ``stop_strays`` stops it once the run has ended)."""
        path = self._executor.engine_record(record.run_id)
        return path is not None and path.exists()

    def stop_strays(self, active: set[str]) -> list[str]:
        """Stop the engines recorded for runs that are not active (a process died between
        an engine's end and its record's removal); the run ids whose engine was stopped."""
        folder = self._executor.engine_records
        if folder is None or not folder.is_dir():
            return []
        stopped = []
        for path in folder.glob("*.json"):
            if path.stem in active:
                continue
            if stop_recorded(path, self._executor.cancel_grace_s) is not None:
                stopped.append(path.stem)
            _forget(path)
        return stopped


def _forget(path: Path) -> None:
    with contextlib.suppress(OSError):
        remove_record(path)


def local_runner(settings: Settings, adoption: EngineAdoption) -> LocalTaskRunner:
    """A pool of ``max_concurrent_runs`` threads that execute runs in this process."""
    return LocalTaskRunner(adoption.execute, workers=settings.max_concurrent_runs)


def restart_recovery(
    store: StateStore, runner: TaskRunner, adoption: EngineAdoption
) -> Callable[[], None]:
    """The pass over the runs an earlier server process left active, to run once at start."""

    def recover() -> None:
        report = recover_after_restart(
            store,
            runner.submit,
            reason="the server restarted",
            take_over=lambda record: adoption.take_over(record, runner.submit),
            has_engine=adoption.has_engine,
        )
        strays = adoption.stop_strays(
            {*report.adopted, *(record.run_id for record in store.list_active())}
        )
        if report.requeued or report.failed or report.cancelled or report.adopted or strays:
            logger.warning(
                "reconciled runs after restart requeued=%d failed=%d cancelled=%d adopted=%d "
                "stray_engines_stopped=%d",
                len(report.requeued),
                len(report.failed),
                len(report.cancelled),
                len(report.adopted),
                len(strays),
            )

    return recover


def retention_loop(
    settings: Settings, store: StateStore, workspace: Workspace, files: RunFiles | None = None
) -> SweepLoop | None:
    """The retention sweep every ``retention_sweep_interval_s``; ``None`` if outputs stay."""
    period = settings.retention_s
    if period is None:
        return None
    return SweepLoop(
        lambda: sweep_outputs(store, workspace, period, files),
        settings.retention_sweep_interval_s,
    )
