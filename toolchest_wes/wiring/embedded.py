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

A server under gunicorn runs several API processes, and only one of them holds the pool
(``runner.shared_pool``): each process starts with a :class:`PoolElection`, which takes the
pool lock if it is free, at once or later, and then builds the pool, runs the restart
recovery and starts the pool's jobs in that process. The others hand the runs they accept to
the holder. When the holder dies, another process takes the lock within a fraction of a
second and adopts the runs its engines still run, as a restarted worker would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
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
from toolchest_wes.runner.shared_pool import PoolLock, RelayListener, SharedRunner, relay_address
from toolchest_wes.store.base import RunRecord, StateStore
from toolchest_wes.wiring.jobs import Loop

__all__ = [
    "EngineAdoption",
    "PoolElection",
    "RunPool",
    "engine_records",
    "local_runner",
    "pool_lock",
    "restart_recovery",
    "retention_loop",
]

logger = logging.getLogger(__name__)


@dataclass
class RunPool:
    """What executes an embedded server's runs: the pool, the pass over the runs an earlier
    process left, and the jobs that only the process holding the pool runs."""

    runner: LocalTaskRunner
    recover: Callable[[], None]
    loops: list[Loop] = field(default_factory=list)


def pool_lock(settings: Settings) -> PoolLock:
    """The lock that the process holding the pool holds, in the data folder."""
    return PoolLock(settings.data_dir / "pool.lock")


class PoolElection:
    """Makes this API process the one that executes runs once it can take the pool lock.

    ``start`` tries at once, so the first process of a server builds the pool before it
    serves; until it has the lock, a thread tries again every ``retry_s``.

    Args:
        lock: From :func:`pool_lock`.
        shared: This process's runner, which gets the pool.
        build: Builds the pool, leaving in the stack what releases it.
        queued: The ids of the runs the store holds as QUEUED (the relay's scan).
        address: The relay's socket address; default from the lock's data folder.
        retry_s: How often a process without the lock tries to take it.
        keeper: The pid of this process's parent, the gunicorn arbiter: once it has gone,
            this process is about to exit too, and takes no pool.
    """

    def __init__(
        self,
        lock: PoolLock,
        shared: SharedRunner,
        build: Callable[[ExitStack], RunPool],
        queued: Callable[[], list[str]],
        *,
        address: bytes | None = None,
        retry_s: float = 0.2,
        keeper: int | None = None,
    ) -> None:
        self._lock = lock
        self._shared = shared
        self._build = build
        self._queued = queued
        self._address = address or relay_address(lock.path.parent)
        self._retry_s = retry_s
        self._keeper = keeper
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resources = ExitStack()
        self._guard = threading.Lock()

    @property
    def holds_pool(self) -> bool:
        """Whether this process executes the runs."""
        return self._shared.pool is not None

    def start(self) -> None:
        """Take the pool now if the lock is free, else keep trying on a thread."""
        if self._take():
            return
        self._thread = threading.Thread(
            target=self._wait, name="toolchest-wes-pool-election", daemon=True
        )
        self._thread.start()

    def retire(self) -> None:
        """Stop trying to take the pool: this process is stopping. A server that stops must
        start none of the runs still waiting, and a worker that took the pool over while its
        siblings stop would start them only to stop them again."""
        self._stop.set()

    def stop(self) -> None:
        """Stop trying; stop the pool's jobs and the pool, then release the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._guard:
            self._resources.close()

    def _wait(self) -> None:
        while not self._stop.wait(self._retry_s):
            try:
                if self._take():
                    return
            except Exception:
                # A pool that failed to build leaves the lock; the next try builds it again.
                logger.exception("this process could not take over the run pool")

    def _take(self) -> bool:
        with self._guard:
            orphaned = self._keeper is not None and os.getppid() != self._keeper
            if self._stop.is_set() or orphaned or not self._lock.try_acquire():
                return False
            with ExitStack() as resources:
                resources.callback(self._lock.release)
                pool = self._build(resources)
                listener = RelayListener(self._address, pool.runner.submit, self._queued)
                # Bound before the recovery, so a run accepted meanwhile waits in the socket.
                listener.bind()
                resources.callback(listener.stop)
                self._shared.attach(pool.runner)
                resources.callback(self._shared.attach, None)
                pool.recover()
                for job in pool.loops:
                    job.start()
                    resources.callback(job.stop)
                listener.start()
                self._resources = resources.pop_all()
        logger.info("this process executes the runs pid=%s lock=%s", os.getpid(), self._lock.path)
        return True


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
