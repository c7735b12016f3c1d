"""create_app: build the connexion app and wire the store, runner and engines into it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import connexion
from flask import Response, request

from toolchest_wes.config import ContainerRuntime, Settings
from toolchest_wes.core.executor import ExecutorDeps, execute_run
from toolchest_wes.core.reconcile import recover_after_restart
from toolchest_wes.core.service import RunService, ServiceConfig
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.engines.cwltool_engine import CHILD_ENTRY, CwltoolEngine
from toolchest_wes.engines.process import SubprocessLauncher
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.engines.warm_launcher import WarmLauncher
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.server.api import WesApi
from toolchest_wes.server.errors import error_response, register_error_handlers
from toolchest_wes.server.forms import check_field_names, check_form_request
from toolchest_wes.server.resolver import WesResolver
from toolchest_wes.server.spec import BASE_PATH, load_spec
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import RunRecord, StateStore, StoreError

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

    def close(self) -> None:
        """Stop the runner, the engine launcher (if this app made it) and the store."""
        self.runner.close()
        if self.launcher is not None and self.owns_launcher:
            self.launcher.close()
        self.store.close()


def get_state(app: connexion.FlaskApp) -> AppState:
    """The ``AppState`` of an app made by :func:`create_app`."""
    state: AppState = app.app.extensions[_EXTENSION_KEY]
    return state


def build_engine(settings: Settings) -> CwltoolEngine:
    """The cwltool engine configured by settings."""
    runtime = settings.effective_container_runtime
    engine = CwltoolEngine(
        container_runtime=runtime.value if runtime is not ContainerRuntime.AUTO else "none",
        allow_no_container=settings.allow_no_container,
        default_args=tuple(settings.default_engine_parameters),
    )
    engine.warm()
    return engine


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

    With no ``runner``, this is the embedded mode: a local thread pool executes runs in this
    process, so runs that were active when the process last stopped are reconciled now.

    Args:
        settings: Everything configurable.
        store: Run records; default from ``settings.effective_store_url``.
        runner: Where runs execute; default a ``LocalTaskRunner`` in this process.
        engines: Workflow engines; default cwltool configured by ``settings``.
        launcher: Starts engine processes in embedded mode; default from settings. The
            caller keeps ownership of a launcher it passes.
        validate_responses: Check every response against the spec (tests switch it on).
    """
    workspace = Workspace(settings.runs_dir)
    workspace.ensure_root()
    store = store or store_from_url(settings.effective_store_url)
    registry = EngineRegistry(engines or [build_engine(settings)])
    owns_launcher = launcher is None
    embedded = runner is None
    if runner is None:
        launcher = launcher or _make_launcher(settings)
        deps = ExecutorDeps(
            store=store,
            workspace=workspace,
            engine_for=_engine_lookup(registry),
            launcher=launcher,
            poll_interval_s=settings.poll_interval_s,
            cancel_grace_s=settings.cancel_grace_s,
        )
        runner = LocalTaskRunner(
            lambda run_id: execute_run(run_id, deps), workers=settings.max_concurrent_runs
        )
    service = RunService(
        store,
        runner,
        registry,
        workspace,
        ServiceConfig(
            default_page_size=settings.default_page_size, max_page_size=settings.max_page_size
        ),
    )
    if embedded:
        report = recover_after_restart(store, runner.submit, reason="the server restarted")
        if report.requeued or report.failed or report.cancelled:
            logger.warning(
                "reconciled runs after restart requeued=%d failed=%d cancelled=%d",
                len(report.requeued),
                len(report.failed),
                len(report.cancelled),
            )
    app = connexion.FlaskApp(__name__, options={"swagger_ui": True})
    app.add_api(
        load_spec(),
        base_path=BASE_PATH,
        resolver=WesResolver(WesApi(service, public_url=settings.public_url)),
        strict_validation=True,
        validate_responses=validate_responses,
    )
    register_error_handlers(app)
    app.app.before_request(_check_run_request_fields)
    app.app.add_url_rule("/health", "health", _health(store))
    app.app.extensions[_EXTENSION_KEY] = AppState(
        settings, service, store, runner, launcher, owns_launcher
    )
    return app


def _make_launcher(settings: Settings) -> Launcher:
    if not settings.warm_engine:
        return SubprocessLauncher()
    launcher = WarmLauncher([CHILD_ENTRY])
    launcher.start_background()
    return launcher


def _engine_lookup(registry: EngineRegistry) -> Any:
    def engine_for(record: RunRecord) -> WorkflowEngine:
        engine = registry.for_type(record.request.workflow_type)
        if engine is None:
            raise LookupError(f"no engine for workflow_type {record.request.workflow_type!r}")
        return engine

    return engine_for


def _check_run_request_fields() -> None:
    if request.method == "POST" and request.path == f"{BASE_PATH}/runs":
        check_form_request(request.mimetype)
        check_field_names([*request.form.keys(), *request.files.keys()])


def _health(store: StateStore) -> Any:
    def health() -> Response | dict[str, str]:
        try:
            store.ping()
        except StoreError:
            return error_response(503, "the run database is not answering")
        return {"status": "ok"}

    return health
