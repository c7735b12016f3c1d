"""build_parts: every part one process needs, for its role and the settings' mode.

=========== ================================== ==========================================
role        embedded (no ``redis_url``)        distributed (``redis_url``)
=========== ================================== ==========================================
``API``     store (SQLite), engines, launcher, store (Redis, states cached), engines,
            executor, local pool runner;       Celery runner, worker monitor;
            restart recovery, retention loop   reconcile loop
            (with ``shared_pool``: a shared
            runner and the pool election,
            which builds the rest once this
            process holds the pool)
``WORKER``  (none: embedded has no workers)    store, engines, launcher, executor;
                                               reconcile loop, heartbeat
``COMMAND`` store                              store, Celery runner, reconciler (unstarted)
=========== ================================== ==========================================

Every role also gets the workspace; the store is the one ``effective_store_url`` names. The
API role is what ``server.app.create_app`` builds, the worker role what each Celery worker
process builds (``worker.app.WorkerContext``), and the command role what the one-shot
``toolchest-wes sweep`` and ``reconcile`` commands build. Building starts none of the
background jobs in the last line of a cell: ``Parts.start`` runs the restart recovery and
starts the loops, and ``Parts.close`` stops the loops and then releases everything else.
(Building does start the warm launcher warming, and the API's Redis state feed.)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import cast

from toolchest_wes.config import Settings
from toolchest_wes.core.executor import ExecutorDeps
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.webhooks import EventingStore, Webhooks
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.models import State
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.runner.shared_pool import PoolRelay, SharedRunner, relay_address
from toolchest_wes.server.workers import WorkerMonitor
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import StateStore
from toolchest_wes.wiring import distributed, embedded
from toolchest_wes.wiring.distributed import WorkerIdentity
from toolchest_wes.wiring.engines import build_executor_deps, build_launcher, build_registry
from toolchest_wes.wiring.jobs import Loop
from toolchest_wes.wiring.storage import build_run_files
from toolchest_wes.wiring.webhooks import build_webhooks, delivery_loop
from toolchest_wes.worker.reconciler import Reconciler

__all__ = ["Loop", "Parts", "Role", "WorkerIdentity", "build_parts"]


class Role(enum.Enum):
    """What the process does, which decides the parts it gets."""

    #: Serves the WES API; in embedded mode it also executes the runs.
    API = "api"
    #: A Celery worker process that executes runs (distributed mode only).
    WORKER = "worker"
    #: A one-shot maintenance command: no engines and no background jobs.
    COMMAND = "command"


@dataclass
class Parts:
    """The parts of one process, built by :func:`build_parts`.

    Attributes:
        settings: What they were built from.
        role: What the process does.
        store: The run store.
        workspace: The run directories.
        registry: The engines (API and worker roles).
        executor: What ``execute_run`` needs, where this process executes runs.
        runner: Where runs are sent (API role, and the command role in distributed mode).
        monitor: The workers' heartbeats, as the API reads them (distributed API).
        reconciler: The reconcile loop (distributed mode); the command role gets it unstarted,
            for one pass.
        queue_length: How many runs wait for an executor, for ``/metrics``; ``None`` if unknown.
        recover: The startup pass over runs an earlier process left (embedded API).
        loops: The background jobs :meth:`start` starts, in order.
    """

    settings: Settings
    role: Role
    store: StateStore
    workspace: Workspace
    registry: EngineRegistry | None = None
    executor: ExecutorDeps | None = None
    runner: TaskRunner | None = None
    monitor: WorkerMonitor | None = None
    reconciler: Reconciler | None = None
    queue_length: Callable[[], int] | None = None
    recover: Callable[[], None] | None = None
    loops: list[Loop] = field(default_factory=list)
    #: The webhooks, when this server sends them (the store then records their events).
    webhooks: Webhooks | None = None
    #: Where run files are kept (``--storage``); ``None``: in the workspace, shared.
    files: RunFiles | None = None
    #: Embedded API with a shared pool: what makes this process the one that executes runs.
    election: embedded.PoolElection | None = None
    #: What close() undoes, newest first: stop loops, close runner, launcher and store.
    _resources: ExitStack = field(default_factory=ExitStack, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)

    def start(self) -> None:
        """Run the startup pass, then start the loops; later calls do nothing.

        Not thread-safe: a caller that may start from several threads holds a lock.
        """
        if self._started:
            return
        self._started = True
        if self.recover is not None:
            self.recover()
        for loop in self.loops:
            loop.start()
            self._resources.callback(loop.stop)

    def retire(self) -> None:
        """The process is stopping: it takes on no run pool from now on (one it holds, it
        keeps until :meth:`close`)."""
        if self.election is not None:
            self.election.retire()

    def close(self) -> None:
        """Stop the loops, then release the runner, an engine launcher that was built here and
        the store (idempotent). A store or runner passed to :func:`build_parts` is closed too;
        a launcher passed to it is not."""
        self._resources.close()


def build_parts(
    settings: Settings,
    role: Role,
    *,
    store: StateStore | None = None,
    runner: TaskRunner | None = None,
    engines: list[WorkflowEngine] | None = None,
    launcher: Launcher | None = None,
    worker: WorkerIdentity | None = None,
    engine_keeper: int | None = None,
    shared_pool: bool = False,
) -> Parts:
    """The parts of a process in ``role``, for the mode ``settings`` select; none started.

    Args:
        settings: Everything configurable.
        role: What the process does.
        store: Run records; default from ``settings.effective_store_url``.
        runner: Where the API sends runs; default from the mode. An embedded API given a
            runner neither executes runs itself nor recovers or sweeps.
        engines: Workflow engines; default cwltool configured by ``settings``.
        launcher: Starts engine processes; default one built here (and closed by ``close``).
        worker: The worker process's name, liveness and requeue (worker role only).
        engine_keeper: Embedded API: the pid of the process (the gunicorn arbiter) while
            which the engines this process starts outlive its death, for the process that
            replaces it to adopt; ``None``: they die with it.
        shared_pool: Embedded API: this is one of several API processes of one server, and
            only the one that holds the pool lock executes runs (``wiring.embedded``).

    Raises:
        ValueError: A worker role without ``worker``, or in embedded mode.
    """
    if role is Role.WORKER and (worker is None or not settings.distributed):
        raise ValueError("a worker needs distributed mode (--redis) and its identity")
    # Distributed mode has no run pool to share: its workers execute the runs.
    shared_pool = shared_pool and not settings.distributed
    with ExitStack() as resources:
        if store is None:
            # API processes keep run states in memory, refreshed by the store's change feed,
            # so status polls cost no round trip (a no-op for SQLite).
            store = store_from_url(
                settings.effective_store_url,
                prefix=settings.redis_prefix,
                cache_states=role is Role.API,
            )
        resources.callback(store.close)
        webhooks = build_webhooks(settings)
        if webhooks is not None and not webhooks.outbox.records_creations:
            store = cast(StateStore, EventingStore(store, webhooks))
        workspace = Workspace(settings.runs_dir)
        parts = Parts(
            settings,
            role,
            store,
            workspace,
            webhooks=webhooks,
            files=build_run_files(settings, workspace),
        )
        _webhook_loop(parts, resources, shared_pool)
        if role is Role.COMMAND:
            _command(parts, resources)
        else:
            parts.workspace.ensure_root()
            parts.registry = build_registry(settings, engines)
            if role is Role.WORKER:
                assert worker is not None  # checked above, before anything was built
                _worker(parts, resources, launcher, worker)
            elif settings.distributed:
                _distributed_api(parts, resources, runner)
            else:
                _embedded_api(parts, resources, runner, launcher, engine_keeper, shared_pool)
        # Built: from here on, close() releases what a failure above released at once.
        parts._resources = resources.pop_all()
    return parts


def _webhook_loop(parts: Parts, resources: ExitStack, shared_pool: bool) -> None:
    if parts.webhooks is None:
        return
    # With a shared pool, the process that holds it sends them (``_embedded_api``).
    if parts.role is Role.API and not shared_pool:
        # The loop closes the outbox when it stops.
        parts.loops.append(delivery_loop(parts.settings, parts.webhooks))
    else:
        resources.callback(parts.webhooks.outbox.close)


def _embedded_api(
    parts: Parts,
    resources: ExitStack,
    runner: TaskRunner | None,
    launcher: Launcher | None,
    engine_keeper: int | None,
    shared_pool: bool,
) -> None:
    if runner is not None:
        parts.runner = runner
        resources.callback(runner.close)
        if isinstance(runner, LocalTaskRunner):
            parts.queue_length = runner.queue_length
        return
    if not shared_pool:
        pool = _run_pool(parts, resources, launcher, engine_keeper)
        parts.runner = pool.runner
        parts.queue_length = pool.runner.queue_length
        parts.recover = pool.recover
        parts.loops += pool.loops
        return
    store, settings = parts.store, parts.settings
    shared = SharedRunner(
        PoolRelay(relay_address(settings.data_dir)),
        queued=lambda: store.count_by_state().get(State.QUEUED, 0),
    )
    parts.runner = shared
    resources.callback(shared.close)
    parts.queue_length = shared.queue_length

    def build(pool_resources: ExitStack) -> embedded.RunPool:
        pool = _run_pool(parts, pool_resources, launcher, engine_keeper)
        if parts.webhooks is not None:
            # One process sends the deliveries, in order per run; the loop closes the outbox.
            pool.loops.append(delivery_loop(settings, parts.webhooks))
        return pool

    def queued() -> list[str]:
        page = store.list_runs(page_size=_SCAN_PAGE, states=frozenset({State.QUEUED}))
        return [run.run_id for run in page.runs]

    parts.election = embedded.PoolElection(
        embedded.pool_lock(settings), shared, build, queued, keeper=engine_keeper
    )
    parts.loops.append(parts.election)


#: The most QUEUED runs one scan of the relay hands to the pool (the pool holds the rest).
_SCAN_PAGE = 1000


def _run_pool(
    parts: Parts, resources: ExitStack, launcher: Launcher | None, engine_keeper: int | None
) -> embedded.RunPool:
    """The pool that executes runs in this process, with its recovery and retention sweep."""
    _executor(parts, resources, launcher, engine_keeper)
    assert parts.executor is not None
    parts.executor.engine_records = embedded.engine_records(parts.settings)
    adoption = embedded.EngineAdoption(parts.executor)
    local = embedded.local_runner(parts.settings, adoption)
    resources.callback(local.close)
    pool = embedded.RunPool(local, embedded.restart_recovery(parts.store, local, adoption))
    sweeper = embedded.retention_loop(parts.settings, parts.store, parts.workspace, parts.files)
    if sweeper is not None:
        pool.loops.append(sweeper)
    return pool


def _distributed_api(parts: Parts, resources: ExitStack, runner: TaskRunner | None) -> None:
    settings = parts.settings
    parts.runner = runner or distributed.celery_runner(settings)
    resources.callback(parts.runner.close)
    parts.monitor = distributed.worker_monitor(settings)
    resources.callback(parts.monitor.announcer.client.close)
    # The API runs the reconcile loop too, so lost runs end even when no worker is left.
    parts.reconciler = distributed.reconciler(
        settings, parts.store, requeue=parts.runner.submit, files=parts.files
    )
    parts.queue_length = parts.reconciler.probe.length
    parts.loops.append(parts.reconciler)


def _worker(
    parts: Parts, resources: ExitStack, launcher: Launcher | None, worker: WorkerIdentity
) -> None:
    settings = parts.settings
    _executor(parts, resources, launcher)
    assert parts.registry is not None
    parts.reconciler = distributed.reconciler(
        settings, parts.store, requeue=worker.requeue, files=parts.files
    )
    parts.loops += [parts.reconciler, distributed.heartbeat(settings, parts.registry, worker)]


def _command(parts: Parts, resources: ExitStack) -> None:
    if not parts.settings.distributed:
        return
    runner = distributed.celery_runner(parts.settings)
    parts.runner = runner
    resources.callback(runner.close)
    parts.reconciler = distributed.reconciler(
        parts.settings, parts.store, requeue=runner.submit, files=parts.files
    )
    # Never started, so close() must release its Redis client itself.
    resources.callback(parts.reconciler.stop)


def _executor(
    parts: Parts, resources: ExitStack, launcher: Launcher | None, keeper: int | None = None
) -> None:
    """Give ``parts`` what ``execute_run`` needs: this process executes runs."""
    if launcher is None:
        launcher = build_launcher(parts.settings, keeper)
        resources.callback(launcher.close)
    assert parts.registry is not None
    parts.executor = build_executor_deps(
        parts.settings, parts.store, parts.workspace, parts.registry, launcher, parts.files
    )
