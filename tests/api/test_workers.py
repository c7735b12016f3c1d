"""Distributed mode reports its workers: /health, service-info, /metrics and POST /runs say
when no worker is live, so a queue nobody consumes never goes unnoticed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from tests.api.test_metrics import scrape, value
from tests.conftest import API, EXAMPLES, Wes, assert_error
from toolchest_wes.config import Settings
from toolchest_wes.engines.warm_launcher import WarmLauncher
from toolchest_wes.models import State
from toolchest_wes.server.app import create_app, get_state
from toolchest_wes.server.workers import LIVE_WORKERS_HEADER
from toolchest_wes.worker.app import make_celery

HELLO = EXAMPLES / "hello" / "hello.cwl"

pytestmark = pytest.mark.parametrize("mode", ["distributed"], indirect=True)


@pytest.fixture
def unattended(make_settings: Callable[..., Settings]) -> Iterator[Wes]:
    """A distributed API with no worker at all."""
    app = create_app(make_settings(), validate_responses=True)
    try:
        yield Wes(app.app.test_client())
    finally:
        get_state(app).close()


def _post(wes: Wes) -> Any:
    response = wes.client.post(
        f"{API}/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": HELLO.name,
            "workflow_params": '{"message": "hi"}',
            "workflow_attachment": [(HELLO.open("rb"), HELLO.name)],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_without_a_worker_runs_are_accepted_with_a_warning_and_health_fails(
    unattended: Wes,
) -> None:
    wes = unattended
    response = _post(wes)

    assert response.headers[LIVE_WORKERS_HEADER] == "0"
    assert response.headers["Warning"].startswith('199 toolchest-wes "no worker')
    assert wes.state(response.get_json()["run_id"]) is State.QUEUED
    health = wes.client.get("/health")
    assert_error(health, 503, "no worker has sent a heartbeat", "QUEUED")
    assert health.headers["Retry-After"].isdigit()
    info = wes.client.get(f"{API}/service-info").get_json()
    assert info["workers"] == {"live": 0, "heartbeat_timeout_s": 30.0, "workers": []}
    _, samples = scrape(wes)
    assert value(samples, "toolchest_wes_live_workers") == 0


def test_a_live_worker_is_reported_everywhere(make_app: Callable[..., Any]) -> None:
    wes = Wes(make_app().app.test_client())
    response = _post(wes)

    assert LIVE_WORKERS_HEADER not in response.headers and "Warning" not in response.headers
    assert wes.client.get("/health").status_code == 200
    info = wes.client.get(f"{API}/service-info").get_json()["workers"]
    assert info["live"] == 1
    (worker,) = info["workers"]
    assert worker["consuming"] is True and worker["seconds_since_heartbeat"] >= 0
    assert worker["last_heartbeat"].endswith("Z") and "cwltool" in worker["engines"]
    _, samples = scrape(wes)
    assert value(samples, "toolchest_wes_live_workers") == 1
    seen = value(samples, "toolchest_wes_worker_last_heartbeat_seconds", worker=worker["name"])
    assert seen is not None and seen > 0
    assert value(samples, "toolchest_wes_worker_consuming", worker=worker["name"]) == 1


def test_a_worker_whose_consumer_stops_is_not_live(
    make_settings: Callable[..., Settings], warm_launcher: WarmLauncher
) -> None:
    """A worker process that runs on while its consumer does not consume counts as gone."""
    settings = make_settings()
    celery_app = make_celery(settings, launcher=warm_launcher)
    context = celery_app.conf.toolchest_wes_context
    app = create_app(settings, validate_responses=True)
    wes = Wes(app.app.test_client())
    try:
        with start_worker(celery_app, pool="threads", concurrency=1, perform_ping_check=False):
            assert wes.client.get("/health").status_code == 200

            context.liveness.stop()  # as Celery's consumer does when it loses the broker

            deadline = time.monotonic() + 30
            while (health := wes.client.get("/health")).status_code == 200:
                assert time.monotonic() < deadline, "the stopped consumer still counts as live"
                time.sleep(0.1)
            assert_error(health, 503, "no worker")
            info = wes.client.get(f"{API}/service-info").get_json()["workers"]
            assert info["live"] == 0 and [w["consuming"] for w in info["workers"]] == [False]
    finally:
        context.close()
        get_state(app).close()
