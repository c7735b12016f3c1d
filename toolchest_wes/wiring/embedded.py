"""The embedded mode's own parts: the run pool in the API process and its two background jobs.

In embedded mode the API process executes runs itself: a ``LocalTaskRunner`` whose threads
call ``execute_run``, with run records in the SQLite file. That process owns every engine
process it starts, so when it starts, a run that an earlier process left past QUEUED has lost
its engine; the restart recovery ends those and queues the QUEUED ones again. The retention
sweep runs here on a loop of its own (``SweepLoop``); distributed mode sweeps from the
reconcile loop instead, under a lock shared by all processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from toolchest_wes.config import Settings
from toolchest_wes.core.executor import ExecutorDeps, execute_run
from toolchest_wes.core.reconcile import recover_after_restart
from toolchest_wes.core.retention import SweepLoop, sweep_outputs
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.store.base import StateStore

__all__ = ["local_runner", "restart_recovery", "retention_loop"]

logger = logging.getLogger(__name__)


def local_runner(settings: Settings, executor: ExecutorDeps) -> LocalTaskRunner:
    """A pool of ``max_concurrent_runs`` threads that execute runs in this process."""
    return LocalTaskRunner(
        lambda run_id: execute_run(run_id, executor), workers=settings.max_concurrent_runs
    )


def restart_recovery(store: StateStore, runner: TaskRunner) -> Callable[[], None]:
    """The pass over the runs an earlier server process left active, to run once at start."""

    def recover() -> None:
        report = recover_after_restart(store, runner.submit, reason="the server restarted")
        if report.requeued or report.failed or report.cancelled:
            logger.warning(
                "reconciled runs after restart requeued=%d failed=%d cancelled=%d",
                len(report.requeued),
                len(report.failed),
                len(report.cancelled),
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
