"""create_app: build the connexion app and wire the store, runner and engines into it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import connexion
from flask import Response, request
from redis import RedisError

from toolchest_wes.config import Settings
from toolchest_wes.core.executor import execute_run
from toolchest_wes.core.reconcile import recover_after_restart
from toolchest_wes.core.retention import SweepLoop, sweep_outputs
from toolchest_wes.core.service import RunService, ServiceConfig
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.runner.celery_runner import CeleryTaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.server.api import WesApi
from toolchest_wes.server.auth import build_authenticator, install_auth
from toolchest_wes.server.errors import RETRY_AFTER_S, error_response, register_error_handlers
from toolchest_wes.server.fastpath import install_fast_views
from toolchest_wes.server.forms import check_field_names, check_form_request
from toolchest_wes.server.limits import (
    RequestLimits,
    build_submit_limits,
    build_url_policy,
    install_request_limits,
)
from toolchest_wes.server.metrics import install_metrics
from toolchest_wes.server.resolver import WesResolver
from toolchest_wes.server.spec import BASE_PATH, load_spec
from toolchest_wes.server.workers import WorkerMonitor
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import StateStore, StoreError
from toolchest_wes.wiring import (
    build_executor_deps,
    build_launcher,
    build_registry,
    check_sandbox,
    describe_sandbox,
)
from toolchest_wes.worker.announce import WorkerAnnouncer
from toolchest_wes.worker.celery_config import new_celery_app
from toolchest_wes.worker.reconciler import Reconciler, start_reconciler

__all__ = ["AppState", "create_app", "get_state"]

logger = logging.getLogger(__name__)

_EXTENSION_KEY = "toolchest_wes"


@dataclass
class AppState:
    """The parts of a running app, kept for shutdown and for tests."""

    settings: Settings
    service: RunService
    store: StateStore
    runner: TaskRunner
    launcher: Launcher | None
    owns_launcher: bool = True
    reconciler: Reconciler | None = None
    sweeper: SweepLoop | None = None
    monitor: WorkerMonitor | None = None

    def close(self) -> None:
        """Stop the reconciler, the runner, the engine launcher (if this app made it), the store."""
        if self.monitor is not None:
            self.monitor.announcer.client.close()
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.reconciler is not None:
            self.reconciler.stop()
        self.runner.close()
        if self.launcher is not None and self.owns_launcher:
            self.launcher.close()
        self.store.close()


def get_state(app: connexion.FlaskApp) -> AppState:
    """The ``AppState`` of an app made by :func:`create_app`."""
    state: AppState = app.app.extensions[_EXTENSION_KEY]
    return state


def create_app(
    settings: Settings,
    *,
    store: StateStore | None = None,
    runner: TaskRunner | None = None,
    engines: list[WorkflowEngine] | None = None,
    launcher: Launcher | None = None,
    validate_responses: bool = False,
) -> connexion.FlaskApp:
    """The WES app.

    Embedded mode (no ``settings.redis_url``): a local thread pool executes runs in this
    process, so runs that were active when the process last stopped are reconciled now.
    Distributed mode: runs go to Celery workers through the broker, and the workers'
    reconcile loop ends runs whose worker is gone.

    Args:
        settings: Everything configurable.
        store: Run records; default from ``settings.effective_store_url``.
        runner: Where runs execute; default from the mode.
        engines: Workflow engines; default cwltool configured by ``settings``.
        launcher: Starts engine processes in embedded mode; default from settings. The
            caller keeps ownership of a launcher it passes.
        validate_responses: Check every response against the spec (tests switch it on).
    """
    # First, so that a configuration that cannot work fails before anything starts.
    authenticator = build_authenticator(settings)
    sandbox = check_sandbox(settings)
    workspace = Workspace(settings.runs_dir)
    workspace.ensure_root()
    # API processes keep run states in memory, refreshed by the store's change feed, so
    # status polls cost no round trip (a no-op for SQLite).
    store = store or store_from_url(
        settings.effective_store_url, prefix=settings.redis_prefix, cache_states=True
    )
    registry = build_registry(settings, engines)
    owns_launcher = launcher is None
    local = runner is None and not settings.distributed
    if runner is None and settings.distributed:
        runner = CeleryTaskRunner(new_celery_app(settings))
    elif runner is None:
        launcher = launcher or build_launcher(settings)
        deps = build_executor_deps(settings, store, registry, launcher)
        runner = LocalTaskRunner(
            lambda run_id: execute_run(run_id, deps), workers=settings.max_concurrent_runs
        )
    assert runner is not None
    monitor = _worker_monitor(settings)
    service = RunService(
        store,
        runner,
        registry,
        workspace,
        ServiceConfig(
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
            worker_engine_versions=monitor.engine_versions if monitor else None,
            worker_status=monitor.info if monitor else None,
            auth_instructions_url=settings.auth_instructions_url,
            retention_s=settings.retention_s,
            url_policy=build_url_policy(settings),
            limits=build_submit_limits(settings),
            extensions={"toolchest_wes_sandbox": describe_sandbox(settings, sandbox)},
        ),
    )
    reconciler: Reconciler | None = None
    if local:
        _recover(store, runner)
    elif settings.distributed:
        # The API runs the reconcile loop too, so lost runs end even when no worker is left.
        reconciler = start_reconciler(settings, store, requeue=runner.submit)
    app = connexion.FlaskApp(__name__, options={"swagger_ui": True})
    spec = load_spec()
    request_limits = RequestLimits.from_settings(settings)
    install_request_limits(app.app, request_limits)
    handlers = WesApi(
        service,
        public_url=settings.public_url,
        limits=request_limits,
        output_locations=settings.output_locations,
        submit_headers=monitor.submit_headers if monitor else None,
    )
    app.add_api(
        spec,
        base_path=BASE_PATH,
        resolver=WesResolver(handlers),
        strict_validation=True,
        validate_responses=validate_responses,
    )
    install_fast_views(app, handlers, spec)
    register_error_handlers(app)
    # Before the request-field check, so the requests it rejects are timed too. The queue is
    # Celery's list in Redis or the local pool's; a runner passed in may keep its own to itself.
    local_queue = runner.queue_length if isinstance(runner, LocalTaskRunner) else None
    install_metrics(
        app,
        count_by_state=store.count_by_state,
        queue_length=reconciler.probe.length if reconciler else local_queue,
        workers=monitor.workers if monitor else None,
    )
    install_auth(app.app, authenticator)
    app.app.before_request(_check_run_request_fields)
    app.app.add_url_rule("/health", "health", _health(store, monitor))
    app.app.extensions[_EXTENSION_KEY] = AppState(
        settings, service, store, runner, launcher, owns_launcher, reconciler, monitor=monitor
    )
    if local and settings.retention_s is not None:
        # Distributed mode sweeps from the reconcile loop, under a lock of its own.
        period = settings.retention_s
        sweeper = SweepLoop(
            lambda: sweep_outputs(store, workspace, period), settings.retention_sweep_interval_s
        )
        get_state(app).sweeper = sweeper
        sweeper.start()
    return app


def _worker_monitor(settings: Settings) -> WorkerMonitor | None:
    if not settings.distributed or settings.redis_url is None:
        return None
    from toolchest_wes.store.redis_store import connect

    announcer = WorkerAnnouncer(
        connect(settings.redis_url, decode_responses=True),
        settings.redis_prefix,
        stale_after_s=settings.worker_heartbeat_timeout_s,
    )
    return WorkerMonitor(announcer)


def _recover(store: StateStore, runner: TaskRunner) -> None:
    report = recover_after_restart(store, runner.submit, reason="the server restarted")
    if report.requeued or report.failed or report.cancelled:
        logger.warning(
            "reconciled runs after restart requeued=%d failed=%d cancelled=%d",
            len(report.requeued),
            len(report.failed),
            len(report.cancelled),
        )


def _check_run_request_fields() -> None:
    if request.method == "POST" and request.path == f"{BASE_PATH}/runs":
        check_form_request(request.mimetype)
        check_field_names([*request.form.keys(), *request.files.keys()])


def _health(store: StateStore, monitor: WorkerMonitor | None) -> Any:
    def health() -> Response | dict[str, str]:
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        try:
            store.ping()
            live = None if monitor is None else monitor.live()
        except (StoreError, RedisError):
            return error_response(503, "the run database is not answering", retry)
        if live is not None and not live:
            # Submissions are still accepted (they wait QUEUED), but nothing executes them:
            # an operator must hear of it, not find out from runs that never start.
            assert monitor is not None
            return error_response(503, monitor.no_worker_message(), retry)
        return {"status": "ok"}

    return health
