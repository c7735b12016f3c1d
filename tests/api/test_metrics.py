"""GET /metrics: runs by state, the queue, and requests counted and timed per operation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import API, CWL, EXAMPLES, Wes
from toolchest_wes.models import TERMINAL_STATES, State
from toolchest_wes.server.metrics import CONTENT_TYPE

HELLO = EXAMPLES / "hello" / "hello.cwl"
REQUESTS = "toolchest_wes_http_requests_total"
DURATION = "toolchest_wes_http_request_duration_seconds"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(wes: Wes) -> tuple[str, Samples]:
    """The /metrics text and its samples, keyed by name and labels."""
    response = wes.client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type == CONTENT_TYPE
    text = response.get_data(as_text=True)
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.mark.integration
def test_metrics_count_runs_requests_and_latency(wes: Wes) -> None:
    runs = [wes.submit(HELLO, {"message": "hi"}) for _ in range(2)]
    for run_id in runs:
        assert wes.wait(run_id) is State.COMPLETE
    assert wes.get("/runs/no-such-run/status").status_code == 404
    assert wes.client.get("/no-such-page").status_code == 404

    text, samples = scrape(wes)

    assert 'toolchest_wes_runs{state="COMPLETE"} 2.0' in text.splitlines()
    for state in State:
        assert value(samples, "toolchest_wes_runs", state=state) == (
            2 if state is State.COMPLETE else 0
        )
    assert value(samples, "toolchest_wes_queue_length") == 0
    assert value(samples, REQUESTS, operation="RunWorkflow", method="POST", status="200") == 2
    assert value(samples, REQUESTS, operation="GetRunStatus", method="GET", status="404") == 1
    polls = value(samples, REQUESTS, operation="GetRunStatus", method="GET", status="200")
    assert polls is not None and polls >= 2
    assert value(samples, REQUESTS, operation="other", method="GET", status="404") == 1
    # Every request is timed once, under the same operation it is counted under.
    assert value(samples, f"{DURATION}_count", operation="GetRunStatus") == polls + 1
    assert value(samples, f"{DURATION}_bucket", operation="GetRunStatus", le="+Inf") == polls + 1
    assert (value(samples, f"{DURATION}_sum", operation="GetRunStatus") or 0) > 0
    assert value(samples, f"{DURATION}_count", operation="RunWorkflow") == 2


@pytest.mark.integration
@pytest.mark.slow
def test_queue_length_counts_runs_waiting_to_start(
    make_app: Callable[..., Any], make_settings: Callable[..., Any]
) -> None:
    wes = Wes(make_app(make_settings(max_concurrent_runs=1)).app.test_client())
    first = wes.submit(CWL / "sleep.cwl", {"seconds": 300})
    wes.wait(first, until=lambda s: s is State.RUNNING)
    waiting = wes.submit(CWL / "sleep.cwl", {"seconds": 300})
    try:
        deadline = time.monotonic() + 10
        while value(scrape(wes)[1], "toolchest_wes_queue_length") != 1:
            assert time.monotonic() < deadline, scrape(wes)[0]
            time.sleep(0.05)
        _, samples = scrape(wes)
        assert value(samples, "toolchest_wes_runs", state="RUNNING") == 1
        assert value(samples, "toolchest_wes_runs", state="QUEUED") == 1
    finally:
        for run_id in (waiting, first):
            wes.client.post(f"{API}/runs/{run_id}/cancel")
        for run_id in (waiting, first):
            assert wes.wait(run_id, until=lambda s: s in TERMINAL_STATES) is State.CANCELED


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_requests_rejected_by_the_form_check_are_timed_too(wes: Wes) -> None:
    response = wes.client.post(f"{API}/runs", json={"workflow_url": "x.cwl"})
    assert 400 <= response.status_code < 500

    _, samples = scrape(wes)

    status = str(response.status_code)
    assert value(samples, REQUESTS, operation="RunWorkflow", method="POST", status=status) == 1
    assert value(samples, f"{DURATION}_count", operation="RunWorkflow") == 1


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_unknown_methods_share_one_label(wes: Wes) -> None:
    wes.client.open(f"{API}/runs", method="BREW")

    _, samples = scrape(wes)

    assert value(samples, REQUESTS, operation="other", method="other", status="405") == 1
