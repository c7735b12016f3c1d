"""Fixtures shared by every test: clean environment, settings, apps and an HTTP client."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from connexion.spec import Specification

from toolchest_wes.catalog import catalog as catalog_module
from toolchest_wes.catalog.manifest import load_manifest
from toolchest_wes.config import Settings
from toolchest_wes.engines.cwltool_engine import CHILD_ENTRY
from toolchest_wes.engines.warm_launcher import WarmLauncher
from toolchest_wes.models import TERMINAL_STATES, State
from toolchest_wes.server import spec as spec_documents
from toolchest_wes.server.app import create_app, get_state
from toolchest_wes.worker.app import make_celery

pytest_plugins = [
    "tests.redis_server",
    "tests.moto_server",
    "tests.slurm_cluster",
    "tests.coverage_summary",
]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CWL = Path(__file__).resolve().parent / "cwl"
API = "/ga4gh/wes/v1"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TOOLCHEST_WES_* variable of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("TOOLCHEST_WES_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session", autouse=True)
def _openapi_documents_read_once() -> Iterator[None]:
    """Parse each OpenAPI document and check each spec against the OpenAPI schema once a
    session rather than in every app that a test builds.

    Reading the YAML documents and connexion's validation of the specs were about three
    quarters of ``create_app``, which hundreds of tests call. Both are pure functions of files
    that do not change during a run, so the first app of the session still does all of it;
    every later app gets a deep copy of the parsed document (``load_spec`` and connexion
    change what they are given) and skips validating a spec already found valid.
    """
    read = spec_documents._read
    parsed: dict[str, dict[str, Any]] = {}

    def read_once(name: str) -> dict[str, Any]:
        if name not in parsed:
            parsed[name] = read(name)
        return copy.deepcopy(parsed[name])

    validate = Specification._validate_spec.__func__
    valid: set[str] = set()

    def validate_once(cls: type[Specification], spec: dict[str, Any]) -> None:
        key = cls.__name__ + json.dumps(spec, sort_keys=True, default=repr)
        if key not in valid:
            validate(cls, spec)
            valid.add(key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spec_documents, "_read", read_once)
        patch.setattr(Specification, "_validate_spec", classmethod(validate_once))
        yield


@pytest.fixture(scope="session", autouse=True)
def _starter_catalog_read_once() -> Iterator[None]:
    """Read each manifest of the catalog shipped in the package once a session: every app
    serves that catalog by default, and its files do not change during a run. Manifests of
    any other folder (the catalog tests write their own) are read every time, as always."""
    load = load_manifest
    starter = catalog_module.starter_dir()
    tools: dict[tuple[Path, str], Any] = {}

    def load_once(path: Path, organization: str) -> Any:
        if not path.is_relative_to(starter):
            return load(path, organization)
        if (path, organization) not in tools:
            tools[path, organization] = load(path, organization)
        # A copy each time: a version's default inputs are a dict that a caller could change.
        return copy.deepcopy(tools[path, organization])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalog_module, "load_manifest", load_once)
        yield


@pytest.fixture(scope="session")
def warm_launcher() -> Iterator[WarmLauncher]:
    """One warm cwltool process for the whole session; warming it costs about a second."""
    launcher = WarmLauncher([CHILD_ENTRY])
    launcher.start_background()
    yield launcher
    launcher.close()


MODES = ["embedded", "distributed"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Both modes run the same API tests: SQLite and a local pool, or Redis and Celery.

    A test that is about one mode only narrows this with
    ``@pytest.mark.parametrize("mode", ["embedded"], indirect=True)``.
    """
    return str(request.param)


@pytest.fixture(autouse=True)
def _ctrl_c_reaches_child_processes() -> None:
    """Keep SIGINT handled in the test process: an ignored SIGINT (a suite started in the
    background of a non-interactive shell) would be inherited by every process a test
    starts, and the Ctrl-C tests would wait for it forever."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def make_settings(
    tmp_path: Path, mode: str, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Settings for ``mode`` with a fresh data directory; keyword arguments override fields."""
    distributed: dict[str, Any] = {}
    if mode == "distributed":
        server = request.getfixturevalue("redis_server")
        distributed = {"redis_url": server.url, "redis_prefix": f"test-{uuid.uuid4().hex[:12]}"}

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "container_runtime": "none",
            "cancel_grace_s": 0.5,
            "poll_interval_s": 0.05,
            **distributed,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def make_app(
    make_settings: Callable[..., Settings], warm_launcher: WarmLauncher
) -> Iterator[Callable[..., Any]]:
    """Build apps with responses validated against the spec; closed at teardown.

    In distributed mode each app gets a real Celery worker, running in this process on
    threads, consuming from the real Redis broker.
    """
    apps: list[Any] = []
    with contextlib.ExitStack() as stack:

        def make(settings: Settings | None = None, **kwargs: Any) -> Any:
            settings = settings or make_settings()
            kwargs.setdefault("launcher", warm_launcher)
            if settings.distributed:
                celery_app = make_celery(
                    settings, launcher=kwargs.pop("launcher"), engines=kwargs.get("engines")
                )
                # The worker notices it should stop between two waits on the queue (1 s by
                # default); shorter waits make each test's teardown that much shorter.
                celery_app.conf.broker_transport_options["polling_interval"] = 0.05
                context = celery_app.conf.toolchest_wes_context
                stack.callback(context.close)
                stack.enter_context(
                    start_worker(
                        celery_app,
                        pool="threads",
                        concurrency=settings.max_concurrent_runs,
                        perform_ping_check=False,
                        shutdown_timeout=30,
                    )
                )
            app = create_app(settings, validate_responses=True, **kwargs)
            apps.append(app)
            return app

        yield make
        for app in apps:
            get_state(app).close()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    """An app in the test's mode (embedded or distributed), from ``make_app``."""
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    """A Flask test client of ``app``."""
    return app.app.test_client()


class Wes:
    """Small helpers over a test client, so tests read as what they check."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def submit(
        self,
        workflow: str | Path,
        params: dict[str, Any] | None = None,
        *,
        attach: dict[str, bytes | Path] | None = None,
        workflow_url: str | None = None,
        version: str = "v1.2",
        tags: dict[str, str] | None = None,
        engine_params: dict[str, Any] | None = None,
        expect: int = 200,
    ) -> Any:
        """POST /runs with ``workflow`` (a file to attach) and its other files."""
        files = dict(attach or {})
        if isinstance(workflow, Path):
            files.setdefault(workflow.name, workflow)
            workflow_url = workflow_url or workflow.name
        data: dict[str, Any] = {
            "workflow_type": "CWL",
            "workflow_type_version": version,
            "workflow_url": workflow_url or str(workflow),
            "workflow_params": json.dumps(params or {}),
        }
        if tags is not None:
            data["tags"] = json.dumps(tags)
        if engine_params is not None:
            data["workflow_engine_parameters"] = json.dumps(engine_params)
        data["workflow_attachment"] = [
            (io.BytesIO(v.read_bytes() if isinstance(v, Path) else v), name)
            for name, v in files.items()
        ]
        response = self.client.post(f"{API}/runs", data=data, content_type="multipart/form-data")
        assert response.status_code == expect, response.get_data(as_text=True)
        return response.get_json()["run_id"] if expect == 200 else response.get_json()

    def state(self, run_id: str) -> State:
        response = self.client.get(f"{API}/runs/{run_id}/status")
        assert response.status_code == 200, response.get_data(as_text=True)
        return State(response.get_json()["state"])

    def wait(
        self, run_id: str, timeout: float = 60, until: Callable[[State], bool] | None = None
    ) -> State:
        """Poll the status until ``until`` (default: terminal) holds."""
        until = until or (lambda s: s in TERMINAL_STATES)
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(run_id)
            if until(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {state} after {timeout}s")
            time.sleep(0.02)

    def log(self, run_id: str) -> dict[str, Any]:
        response = self.client.get(f"{API}/runs/{run_id}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET a path under the API (or a full URL), with the body read and the file closed."""
        response = self.client.get(path if path.startswith("http") else f"{API}{path}", **kwargs)
        response.get_data()
        response.close()
        return response


@pytest.fixture
def wes(client: Any) -> Wes:
    """Helpers over the test client of ``app``, in the test's mode."""
    return Wes(client)


def assert_error(response: Any, status: int, *fragments: str) -> dict[str, Any]:
    """The response is an ErrorResponse with this status whose msg names each fragment."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"msg", "status_code"}, body
    assert body["status_code"] == status
    assert isinstance(body["msg"], str) and body["msg"]
    for fragment in fragments:
        assert fragment in body["msg"], body["msg"]
    assert "Traceback" not in body["msg"]
    return body  # type: ignore[no-any-return]
