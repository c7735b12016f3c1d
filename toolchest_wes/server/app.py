"""create_app: the connexion app over the parts ``toolchest_wes.wiring`` builds.

The parts of each mode (store, runner, engines, background jobs) come from
``wiring.parts.build_parts``; this module adds what only the HTTP side has: the spec-driven
routes, authentication, limits, metrics, error handling and ``/health``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import connexion
from flask import Response, request
from redis import RedisError

from toolchest_wes.catalog.catalog import Catalog
from toolchest_wes.compat import verify_all
from toolchest_wes.config import SandboxMode, Settings
from toolchest_wes.core.service import RunService, ServiceConfig
from toolchest_wes.core.status_waits import MAX_WAIT_S
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.server.api import WesApi
from toolchest_wes.server.auth import Authenticator, build_authenticator, install_auth
from toolchest_wes.server.dashboard import OIDC_LOGIN_EXTENSION, install_dashboard, oidc_login
from toolchest_wes.server.errors import RETRY_AFTER_S, error_response, register_error_handlers
from toolchest_wes.server.fastpath import install_fast_views, install_status_lane
from toolchest_wes.server.forms import (
    IDEMPOTENCY_KEY_HEADER,
    check_field_names,
    check_form_request,
)
from toolchest_wes.server.limits import (
    RequestLimits,
    build_submit_limits,
    build_url_policy,
    install_request_limits,
)
from toolchest_wes.server.metrics import install_metrics
from toolchest_wes.server.resolver import WesResolver
from toolchest_wes.server.spec import BASE_PATH, TRS_BASE_PATH, load_spec, load_trs_spec
from toolchest_wes.server.trs_api import TrsApi
from toolchest_wes.server.workers import WorkerMonitor
from toolchest_wes.store.base import StateStore, StoreError
from toolchest_wes.wiring.catalog import build_catalog, build_tool_resolver
from toolchest_wes.wiring.parts import Parts, Role, build_parts
from toolchest_wes.wiring.sandbox import check_sandbox, describe_sandbox
from toolchest_wes.wiring.webhooks import describe_webhooks

__all__ = ["AppState", "create_app", "get_state"]

_EXTENSION_KEY = "toolchest_wes"


@dataclass
class AppState:
    """The service and the parts of a running app, kept for shutdown and for tests."""

    service: RunService
    parts: Parts

    @property
    def settings(self) -> Settings:
        """The settings the app was made with."""
        return self.parts.settings

    @property
    def store(self) -> StateStore:
        """The run store."""
        return self.parts.store

    def close(self) -> None:
        """Stop the background jobs; close the runner, an engine launcher the app made, the
        store."""
        self.parts.close()


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
    engine_keeper: int | None = None,
    shared_pool: bool = False,
) -> connexion.FlaskApp:
    """The WES app, with its background jobs started.

    Embedded mode (no ``settings.redis_url``): a local thread pool executes runs in this
    process, so runs that were active when the process last stopped are reconciled now.
    Distributed mode: runs go to Celery workers through the broker, and the reconcile loop
    (here and in every worker) ends runs whose worker is gone. ``wiring.parts`` has the
    details of both.

    Args:
        settings: Everything configurable.
        store: Run records; default from ``settings.effective_store_url``.
        runner: Where runs execute; default from the mode.
        engines: Workflow engines; default cwltool configured by ``settings``.
        launcher: Starts engine processes in embedded mode; default from settings. The
            caller keeps ownership of a launcher it passes.
        validate_responses: Check every response against the spec (tests switch it on).
        engine_keeper: Embedded mode: the pid of the gunicorn arbiter, while which the
            engines of this process outlive its death, for the next worker to adopt;
            ``None``: they die with this process.
        shared_pool: Embedded mode: this app is one of several processes of one server
            (gunicorn's workers), and only one of them executes runs at a time.
    """
    # First, so that a configuration that cannot work fails before anything starts.
    authenticator = build_authenticator(settings)
    sandbox = check_sandbox(settings)
    verify_all()
    catalog = build_catalog(settings)
    parts = build_parts(
        settings,
        Role.API,
        store=store,
        runner=runner,
        engines=engines,
        launcher=launcher,
        engine_keeper=engine_keeper,
        shared_pool=shared_pool,
    )
    try:
        service = _service(settings, parts, sandbox, catalog)
        app = _connexion_app(settings, parts, service, authenticator, validate_responses)
        _add_trs_api(app, TrsApi(catalog, public_url=settings.public_url), validate_responses)
        install_dashboard(app.app, catalog)
        app.app.extensions[_EXTENSION_KEY] = AppState(service, parts)
        parts.start()
    except BaseException:
        parts.close()
        raise
    return app


def _connexion_app(
    settings: Settings,
    parts: Parts,
    service: RunService,
    authenticator: Authenticator | None,
    validate_responses: bool,
) -> connexion.FlaskApp:
    """The spec-driven routes over ``service``, with the HTTP side's checks in their order."""
    app = connexion.FlaskApp(__name__, options={"swagger_ui": True})
    spec = load_spec()
    request_limits = RequestLimits.from_settings(settings)
    install_request_limits(app.app, request_limits)
    monitor = parts.monitor
    handlers = WesApi(
        service,
        public_url=settings.public_url,
        limits=request_limits,
        output_locations=settings.output_locations,
        submit_headers=monitor.submit_headers if monitor else None,
        presign_s=settings.storage_presign_expiry_s if settings.storage_presign else None,
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
    # Before the request-field check, so the requests it rejects are timed too.
    record_request = install_metrics(
        app,
        count_by_state=parts.store.count_by_state,
        queue_length=parts.queue_length,
        workers=monitor.workers if monitor else None,
    )
    install_auth(app.app, authenticator)
    install_status_lane(
        app,
        lambda run_id, caller: service.get_state(run_id, caller=caller),
        authenticator,
        record_request,
    )
    app.app.before_request(_check_run_request_fields)
    app.app.add_url_rule("/health", "health", _health(parts.store, monitor))
    return app


def _add_trs_api(app: connexion.FlaskApp, handlers: TrsApi, validate_responses: bool) -> None:
    """The read-only TRS API over the catalog, under ``/ga4gh/trs/v2``."""
    app.add_api(
        load_trs_spec(),
        base_path=TRS_BASE_PATH,
        resolver=WesResolver(handlers),
        strict_validation=True,
        validate_responses=validate_responses,
    )
    # TRS allows a relative path with unencoded slashes (lib/step.cwl), which the spec's
    # one-segment path parameter cannot match; this route takes those.
    app.app.add_url_rule(
        f"{TRS_BASE_PATH}/tools/<id>/versions/<version_id>/<type>/descriptor/<path:relative_path>",
        "trs_nested_descriptor",
        handlers.tools_id_versions_version_id_type_descriptor_relative_path_get,
    )
    # A Dockstore-style id (#workflow/github.com/org/repo) keeps its slashes once the server
    # has decoded %2F, so it cannot be one path parameter either; this route takes those.
    app.app.add_url_rule(
        f"{TRS_BASE_PATH}/tools/<path:rest>", "trs_path_id", handlers.tools_by_path
    )


def _service(
    settings: Settings, parts: Parts, sandbox: SandboxMode, catalog: Catalog | None
) -> RunService:
    monitor = parts.monitor
    assert parts.runner is not None and parts.registry is not None  # the API role has both
    url_policy = build_url_policy(settings)
    if parts.webhooks is not None and not settings.public_url:
        # Links in events lead where the submitter reached this server.
        parts.webhooks.base_url = lambda: request.url_root.rstrip("/")
    return RunService(
        parts.store,
        parts.runner,
        parts.registry,
        parts.workspace,
        ServiceConfig(
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
            worker_engine_versions=monitor.engine_versions if monitor else None,
            worker_status=monitor.info if monitor else None,
            auth_instructions_url=settings.auth_instructions_url,
            retention_s=settings.retention_s,
            url_policy=url_policy,
            limits=build_submit_limits(settings),
            idempotency_window_s=settings.idempotency_window_s,
            # Half the request threads: waiting requests never starve the others.
            status_waits=max(1, settings.threads // 2),
            extensions={
                "toolchest_wes_sandbox": describe_sandbox(settings, sandbox),
                "toolchest_wes_webhooks": describe_webhooks(settings, parts.webhooks),
                "toolchest_wes_catalog": {
                    "catalog": catalog.label if catalog else None,
                    "catalog_only": settings.catalog_only,
                    "trs": TRS_BASE_PATH,
                    "trs_allow": sorted(settings.trs_allowed_hosts),
                    "trs_registry": settings.trs_registry,
                },
                "toolchest_wes_idempotency": {
                    "header": IDEMPOTENCY_KEY_HEADER,
                    "window_s": settings.idempotency_window_s,
                },
                "toolchest_wes_status_wait": {
                    "parameters": ["wait", "changed_from"],
                    "max_wait_s": MAX_WAIT_S,
                },
                **_oidc_login_extension(settings),
            },
            tools=build_tool_resolver(settings, catalog, url_policy),
            resources=settings.resource_policy,
            webhooks=parts.webhooks,
        ),
        files=parts.files,
    )


def _oidc_login_extension(settings: Settings) -> dict[str, Any]:
    login = oidc_login(settings)
    return {OIDC_LOGIN_EXTENSION: login} if login else {}


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
