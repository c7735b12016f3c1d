"""A real `toolchest-wes serve` in embedded mode with its default two gunicorn workers: both
serve the API, one executes every run, and a user's limits count across both."""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import API
from tests.integration.conftest import serving
from tests.processes import TERMINAL, Server, wait
from toolchest_wes.models import State
from toolchest_wes.runner.shared_pool import PoolLock
from toolchest_wes.store.embedded_store import EmbeddedStateStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server_workers() -> int | None:
    """The server's default processes: the tests are about what they share."""
    return None


CWL = Path(__file__).resolve().parents[1] / "cwl"
_ACCEPTED = re.compile(r"\[(\d+)\] toolchest_wes\.core\.service: run accepted run_id=(\S+)")
_STARTED = re.compile(r"\[(\d+)\] toolchest_wes\.core\.executor: run started run_id=(\S+)")


def _post(url: str, workflow: Path, params: dict[str, object]) -> httpx.Response:
    """POST /runs on a connection of its own, so that either worker may accept it."""
    data = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": workflow.name,
        "workflow_params": json.dumps(params),
    }
    files = [("workflow_attachment", (workflow.name, workflow.read_bytes()))]
    return httpx.post(f"{url}{API}/runs", data=data, files=files, timeout=30)


def _ended(url: str, run_id: str) -> str:
    """The run's final state, waited for with the status request's own wait."""
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=url, timeout=40) as client:
        while True:
            response = client.get(f"{API}/runs/{run_id}/status", params={"wait": 20})
            state = str(response.json()["state"])
            if state in TERMINAL:
                return state
            assert time.monotonic() < deadline, f"{run_id} still {state}"


def _pool_worker(server: Server) -> int:
    pid = PoolLock(server.data_dir / "pool.lock").holder()
    assert pid is not None
    return pid


def test_runs_that_either_worker_accepts_execute_in_the_one_that_holds_the_pool(
    server: Server,
) -> None:
    accepted: dict[str, str] = {}
    with ThreadPoolExecutor(4) as pool:
        # Until the log shows that both workers accepted runs (each connection goes to
        # whichever worker takes it first).
        for _ in range(10):
            responses = list(pool.map(lambda _: _post(server.url, CWL / "shout.cwl", {}), range(8)))
            assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
            log = server.log_path.read_text()
            accepted = {run: pid for pid, run in _ACCEPTED.findall(log)}
            if len(set(accepted.values())) == 2:
                break
        assert len(set(accepted.values())) == 2, "one worker accepted every run"
        states = Counter(pool.map(lambda run_id: _ended(server.url, run_id), list(accepted)))

    assert states == Counter({"COMPLETE": len(accepted)})
    started = {run: pid for pid, run in _STARTED.findall(server.log_path.read_text())}
    assert set(started) == set(accepted)
    assert set(started.values()) == {str(_pool_worker(server))}


def test_a_users_active_run_limit_holds_across_the_workers(tmp_path: Path) -> None:
    env = {
        "TOOLCHEST_WES_SANDBOX": "none",
        "TOOLCHEST_WES_MAX_ACTIVE_RUNS_PER_USER": "2",
        "TOOLCHEST_WES_SUBMIT_RATE": "0",
    }
    with serving(tmp_path / "data", env=env, workers=None) as srv, ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda _: _post(srv.url, CWL / "sleep.cwl", {"seconds": 300}), range(12))
        )
        codes = Counter(r.status_code for r in responses)
        assert codes == Counter({200: 2, 429: 10}), [r.text for r in responses]
        log = srv.log_path.read_text()
        for response in responses:
            if response.status_code == 200:
                run_id = response.json()["run_id"]
                cancel = httpx.post(f"{srv.url}{API}/runs/{run_id}/cancel", timeout=10)
                assert cancel.status_code == 200
                assert _ended(srv.url, run_id) == "CANCELED"
        assert "Traceback" not in log


def test_the_rate_limit_holds_across_the_workers(tmp_path: Path) -> None:
    env = {"TOOLCHEST_WES_SUBMIT_RATE": "1", "TOOLCHEST_WES_SUBMIT_BURST": "3"}
    with serving(tmp_path / "data", env=env, workers=None) as srv, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: _post(srv.url, CWL / "shout.cwl", {}), range(12)))
        # One submission a minute after a burst of three: no token comes back meanwhile.
        assert Counter(r.status_code for r in responses) == Counter({200: 3, 429: 9})


def test_a_stopping_server_starts_none_of_the_runs_still_waiting(tmp_path: Path) -> None:
    """The workers stop together: the one that does not hold the pool must not take it over
    from the one that stopped first, only to start the waiting runs and stop them again."""
    env = {"TOOLCHEST_WES_SANDBOX": "none"}
    with serving(tmp_path / "data", "--max-concurrent-runs", "1", env=env, workers=None) as srv:
        responses = [_post(srv.url, CWL / "sleep.cwl", {"seconds": 300}) for _ in range(4)]
        runs = [str(response.json()["run_id"]) for response in responses]
        wait(srv.url, runs[0], {"RUNNING"})
        srv.kill(signal.SIGTERM)
        log = srv.log_path.read_text()
        holders = set(re.findall(r"\[(\d+)\] [\w.]+: this process executes the runs", log))

    store = EmbeddedStateStore(tmp_path / "data" / "runs.sqlite")
    try:
        assert [store.get_state(run_id) for run_id in runs[1:]] == [State.QUEUED] * 3
    finally:
        store.close()
    assert len(holders) == 1
