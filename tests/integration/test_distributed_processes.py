"""The docker-compose topology as processes: redis-server, the API under gunicorn with two
workers, and two Celery workers, all started with the commands the README gives."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CWL, EXAMPLES
from tests.processes import TERMINAL, Topology, sleeping, wait
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def topology(tmp_path: Path, redis_server: RedisServer) -> Iterator[Topology]:
    topo = Topology(tmp_path, redis_server.url)
    try:
        topo.start()
        yield topo
    finally:
        topo.stop()


def test_runs_complete_across_api_and_worker_processes(topology: Topology) -> None:
    run_ids = [
        topology.submit(EXAMPLES / "hello" / "hello.cwl", {"message": f"n{i}"}) for i in range(8)
    ]
    for i, run_id in enumerate(run_ids):
        assert wait(topology.url, run_id, TERMINAL) == "COMPLETE"
        location = topology.log(run_id)["outputs"]["greeting"]["location"]  # type: ignore[index]
        assert httpx.get(location).content == f"n{i}\n".encode()
    listing = httpx.get(f"{topology.url}{API}/runs?page_size=100").json()["runs"]
    assert {r["run_id"] for r in listing} == set(run_ids)
    counts = httpx.get(f"{topology.url}{API}/service-info").json()["system_state_counts"]
    assert counts["COMPLETE"] == 8


def test_cancel_reaches_a_run_on_another_machine(topology: Topology) -> None:
    seconds = 700 + os.getpid() % 1000
    run_id = topology.submit(CWL / "sleep.cwl", {"seconds": seconds})
    wait(topology.url, run_id, {"RUNNING"})
    deadline = time.monotonic() + 30
    while not sleeping(seconds):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    assert httpx.post(f"{topology.url}{API}/runs/{run_id}/cancel").status_code == 200
    assert wait(topology.url, run_id, TERMINAL, timeout=10) == "CANCELED"
    assert time.monotonic() - started < 2.5
    assert not sleeping(seconds)


def test_sigkilled_worker_run_ends_system_error_within_60s(topology: Topology) -> None:
    """A worker SIGKILLed mid-run: its run ends SYSTEM_ERROR (lease expired), not requeued,
    within 60 s, and the run's tool dies with it."""
    seconds = 800 + os.getpid() % 1000
    run_id = topology.submit(CWL / "sleep.cwl", {"seconds": seconds})
    wait(topology.url, run_id, {"RUNNING"})
    while not sleeping(seconds):
        time.sleep(0.05)
    for worker in topology.workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)  # the one running it dies mid-run
    started = time.monotonic()
    assert wait(topology.url, run_id, TERMINAL, timeout=60) == "SYSTEM_ERROR"
    assert time.monotonic() - started < 60
    system_logs = topology.log(run_id)["run_log"]["system_logs"]  # type: ignore[index]
    assert any("lease" in line for line in system_logs)
    deadline = time.monotonic() + 10
    while sleeping(seconds):
        assert time.monotonic() < deadline, "the run's tool outlived its worker"
        time.sleep(0.1)
