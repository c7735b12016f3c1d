"""Cancel: kills the whole process tree, never starts a queued run, and is idempotent."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API, CWL, EXAMPLES, Wes
from toolchest_wes.models import TERMINAL_STATES, State

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def test_cancel_kills_the_process_tree_within_two_seconds(wes: Wes) -> None:
    seconds = 600 + os.getpid() % 1000  # a number no other test's sleep uses
    run_id = wes.submit(CWL / "sleep.cwl", {"seconds": seconds})
    wes.wait(run_id, until=lambda s: s is State.RUNNING)
    deadline = time.monotonic() + 30
    while not processes_with(f"sleep {seconds}"):
        assert time.monotonic() < deadline, "sleep never started"
        time.sleep(0.05)
    started = time.monotonic()
    response = wes.client.post(f"{API}/runs/{run_id}/cancel")
    assert response.status_code == 200
    assert response.get_json() == {"run_id": run_id}
    assert wes.wait(run_id, timeout=10) is State.CANCELED
    assert time.monotonic() - started < 2.0
    assert processes_with(f"sleep {seconds}") == []
    log = wes.log(run_id)
    assert log["run_log"]["end_time"]
    assert log["outputs"] == {}


def test_cancelled_queued_run_never_starts(make_app: Any, make_settings: Any) -> None:
    wes = Wes(make_app(make_settings(max_concurrent_runs=1)).app.test_client())
    blocker = wes.submit(CWL / "sleep.cwl", {"seconds": 30})
    wes.wait(blocker, until=lambda s: s is State.RUNNING)
    queued = wes.submit(HELLO, {})
    assert wes.state(queued) is State.QUEUED
    assert wes.client.post(f"{API}/runs/{queued}/cancel").status_code == 200
    assert wes.state(queued) is State.CANCELED
    wes.client.post(f"{API}/runs/{blocker}/cancel")
    assert wes.wait(blocker) is State.CANCELED
    time.sleep(0.3)
    log = wes.log(queued)
    assert log["state"] == "CANCELED"
    assert log["run_log"].get("start_time") is None
    assert log["run_log"].get("cmd") is None
    assert "cancelled before it started" in log["run_log"]["system_logs"]


def test_cancel_is_idempotent_on_finished_runs(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {})
    assert wes.wait(run_id) is State.COMPLETE
    for _ in range(2):
        response = wes.client.post(f"{API}/runs/{run_id}/cancel")
        assert response.status_code == 200
        assert response.get_json() == {"run_id": run_id}
    assert wes.state(run_id) is State.COMPLETE
    assert wes.log(run_id)["outputs"]["greeting"]["basename"] == "hello.txt"


def test_cancel_racing_completion_ends_in_exactly_one_state(wes: Wes) -> None:
    """Cancel arrives at every moment of short runs; each ends once, consistently."""
    run_ids = [wes.submit(HELLO, {}) for _ in range(12)]
    for i, run_id in enumerate(run_ids):
        time.sleep(0.01 * (i % 4))
        wes.client.post(f"{API}/runs/{run_id}/cancel")
    for run_id in run_ids:
        final = wes.wait(run_id)
        assert final in {State.CANCELED, State.COMPLETE}
        time.sleep(0.05)
        log = wes.log(run_id)
        assert log["state"] == final, "a terminal state never changes"
        if final is State.COMPLETE:
            assert log["outputs"]["greeting"]["size"] > 0
        else:
            assert log["outputs"] == {}
    assert all(wes.state(r) in TERMINAL_STATES for r in run_ids)
