"""make_celery: the worker's Celery app with the one task, ``toolchest_wes.execute_run``."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import worker_shutdown

from toolchest_wes.config import Settings
from toolchest_wes.core.executor import ExecutorDeps, execute_run
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.runner.celery_runner import EXECUTE_RUN_TASK, CeleryTaskRunner
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import StateStore
from toolchest_wes.store.redis_store import connect
from toolchest_wes.wiring import build_executor_deps, build_launcher, build_registry
from toolchest_wes.worker.announce import WorkerAnnouncer
from toolchest_wes.worker.celery_config import new_celery_app
from toolchest_wes.worker.heartbeat import ConsumerLiveness, Heartbeat, LivenessStep
from toolchest_wes.worker.reconciler import Reconciler, start_reconciler

__all__ = ["WorkerContext", "make_celery"]

logger = logging.getLogger(__name__)


class WorkerContext:
    """The executor's dependencies and the reconciler of one worker process, built lazily.

    Built on first use rather than at import, so that ``celery -A`` can import the app
    without touching Redis or starting the warm engine process.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        launcher: Launcher | None = None,
        engines: list[WorkflowEngine] | None = None,
    ) -> None:
        self.settings = settings
        self._engines = engines
        self._launcher = launcher
        self._owns_launcher = launcher is None
        self._store: StateStore | None = None
        self._registry: EngineRegistry | None = None
        self._deps: ExecutorDeps | None = None
        self._reconciler: Reconciler | None = None
        self._lock = threading.Lock()
        #: Sends a run's message again; set by ``make_celery`` to this worker's own app.
        self.requeue: Callable[[str], None] | None = None
        #: Whether the Celery consumer consumes; ticked by ``LivenessStep``.
        self.liveness = ConsumerLiveness()
        self._heartbeat: Heartbeat | None = None

    def store(self) -> StateStore:
        """The run store (opened once per process)."""
        with self._lock:
            if self._store is None:
                self._store = store_from_url(
                    self.settings.effective_store_url, prefix=self.settings.redis_prefix
                )
            return self._store

    def deps(self) -> ExecutorDeps:
        """The executor's dependencies (built once per process)."""
        store = self.store()
        with self._lock:
            if self._deps is None:
                registry = self._registry = build_registry(self.settings, self._engines)
                launcher = self._launcher or build_launcher(self.settings)
                self._launcher = launcher
                self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
                self._deps = build_executor_deps(self.settings, store, registry, launcher)
            return self._deps

    def start_background(self, name: str | None = None) -> None:
        """Start this process's reconcile loop and heartbeat (idempotent).

        Neither needs Redis to start: a worker that starts while Redis is away begins both,
        and they act once it answers.
        """
        deps = self.deps()
        with self._lock:
            if self._reconciler is None:
                self._reconciler = start_reconciler(
                    self.settings, deps.store, requeue=self._requeue
                )
            if self._heartbeat is None:
                self._heartbeat = self._new_heartbeat(
                    name or f"{socket.gethostname()}:{os.getpid()}"
                )
                self._heartbeat.start()

    def _requeue(self, run_id: str) -> None:
        if self.requeue is None:
            raise RuntimeError("this worker context cannot queue runs (no Celery app)")
        self.requeue(run_id)

    def _new_heartbeat(self, name: str) -> Heartbeat:
        assert self.settings.redis_url is not None
        announcer = WorkerAnnouncer(
            connect(self.settings.redis_url, decode_responses=True),
            self.settings.redis_prefix,
            stale_after_s=self.settings.worker_heartbeat_timeout_s,
        )
        assert self._registry is not None  # built by deps()
        engines = {e.name: e.version() for e in self._registry.engines}
        return Heartbeat(
            announcer, name, engines, self.liveness, self.settings.worker_heartbeat_interval_s
        )

    def close(self) -> None:
        """Stop the heartbeat, the reconciler and the engine launcher."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._reconciler is not None:
            self._reconciler.stop()
        if self._launcher is not None and self._owns_launcher:
            self._launcher.close()
        if self._store is not None:
            self._store.close()


def make_celery(
    settings: Settings,
    *,
    launcher: Launcher | None = None,
    engines: list[WorkflowEngine] | None = None,
) -> Celery:
    """The worker's Celery app: broker settings plus the task that calls ``execute_run``.

    Args:
        settings: The same settings the API reads.
        launcher: Starts engine processes; default a warm launcher made in this process.
        engines: Workflow engines; default cwltool configured by ``settings``.
    """
    app = new_celery_app(settings)
    context = WorkerContext(settings, launcher=launcher, engines=engines)
    context.requeue = CeleryTaskRunner(app).submit
    app.conf.toolchest_wes_context = context

    # shared=False: each app (one per test, in tests) keeps its own task, bound to its context.
    @app.task(name=EXECUTE_RUN_TASK, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def execute(run_id: str) -> None:
        # The task is only the transport; the run's whole lifecycle lives in core.
        execute_run(run_id, context.deps())

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            context.close()

    # Starts the heartbeat and the reconcile loop once the consumer is connected.
    app.steps["consumer"].add(LivenessStep)
    # weak=False: the handler is a closure that nothing else keeps alive.
    worker_shutdown.connect(on_shutdown, weak=False)
    return app
