"""make_celery: the worker's Celery app with the one task, ``toolchest_wes.execute_run``.

The worker's other parts (store, engines, executor, reconcile loop, heartbeat) come from
``wiring.parts.build_parts`` with the worker role, built lazily by :class:`WorkerContext`.
"""

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
from toolchest_wes.runner.celery_runner import EXECUTE_RUN_TASK, CeleryTaskRunner
from toolchest_wes.wiring.parts import Parts, Role, WorkerIdentity, build_parts
from toolchest_wes.worker.celery_config import new_celery_app
from toolchest_wes.worker.heartbeat import ConsumerLiveness, LivenessStep

__all__ = ["WorkerContext", "make_celery"]

logger = logging.getLogger(__name__)


class WorkerContext:
    """The parts of one worker process (``build_parts`` with the worker role), built lazily.

    Built on first use rather than at import, so that ``celery -A`` can import the app
    without touching Redis or starting the warm engine process. The consumer's first start
    (:class:`~toolchest_wes.worker.heartbeat.LivenessStep`) builds them and starts their
    reconcile loop and heartbeat; the ``worker_shutdown`` signal closes them.
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
        self._parts: Parts | None = None
        self._lock = threading.Lock()
        #: Sends a run's message again; set by ``make_celery`` to this worker's own app.
        self.requeue: Callable[[str], None] | None = None
        #: Whether the Celery consumer consumes; ticked by ``LivenessStep``.
        self.liveness = ConsumerLiveness()

    def parts(self, name: str | None = None) -> Parts:
        """This process's parts, built on the first call.

        Args:
            name: The worker's name in its heartbeats; only the first call's counts, and the
                default is ``host:pid``.
        """
        with self._lock:
            if self._parts is None:
                worker = WorkerIdentity(
                    name or f"{socket.gethostname()}:{os.getpid()}", self.liveness, self._requeue
                )
                self._parts = build_parts(
                    self.settings,
                    Role.WORKER,
                    engines=self._engines,
                    launcher=self._launcher,
                    worker=worker,
                )
            return self._parts

    def deps(self) -> ExecutorDeps:
        """The executor's dependencies (built once per process)."""
        executor = self.parts().executor
        assert executor is not None  # the worker role executes runs
        return executor

    def start_background(self, name: str | None = None) -> None:
        """Start this process's reconcile loop and heartbeat (idempotent).

        Neither needs Redis to start: a worker that starts while Redis is away begins both,
        and they act once it answers.
        """
        parts = self.parts(name)
        with self._lock:
            parts.start()

    def _requeue(self, run_id: str) -> None:
        if self.requeue is None:
            raise RuntimeError("this worker context cannot queue runs (no Celery app)")
        self.requeue(run_id)

    def close(self) -> None:
        """Stop the heartbeat and the reconcile loop; close the engine launcher (if this
        context made it) and the store."""
        with self._lock:
            parts = self._parts
        if parts is not None:
            parts.close()


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
