"""The docker-compose topology as processes: redis-server, the API under gunicorn with two
workers, and two Celery workers, all started with the commands the README gives."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CWL, EXAMPLES
from tests.integration.test_server_process import free_port, sleeping, submit, wait
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Topology:
    """API and workers as subprocesses; each in its own session so a test can kill one."""

    def __init__(self, tmp_path: Path, redis_url: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
        self.env.update(
            {
                "TOOLCHEST_WES_REDIS_URL": redis_url,
                "TOOLCHEST_WES_REDIS_PREFIX": f"topo-{uuid.uuid4().hex[:8]}",
                "TOOLCHEST_WES_DATA_DIR": str(tmp_path / "shared"),
                "TOOLCHEST_WES_CONTAINER_RUNTIME": "none",
                # Short enough that a killed worker's run is reconciled quickly here.
                "TOOLCHEST_WES_LEASE_TTL_S": "4",
                "TOOLCHEST_WES_RECONCILE_INTERVAL_S": "1",
                # Under the test's folder: a SIGKILLed API cannot clean its metrics files.
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            }
        )
        (tmp_path / "metrics").mkdir()
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.tmp_path / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "toolchest_wes.cli.main", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        self.api = self._spawn("api", "serve", "--port", str(self.port), "--workers", "2")
        for i in range(2):
            self.workers.append(
                self._spawn(f"worker{i}", "worker", "--concurrency", "2", "-n", f"w{i}@%h")
            )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            assert self.api.poll() is None, (self.tmp_path / "api.log").read_text()
            assert time.monotonic() < deadline, "API did not answer /health"
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def submit(self, workflow: Path, params: dict[str, object]) -> str:
        return submit(self.url, workflow, params)

    def log(self, run_id: str) -> dict[str, object]:
        return httpx.get(f"{self.url}{API}/runs/{run_id}", timeout=10).json()  # type: ignore[no-any-return]


@pytest.fixture
def topology(tmp_path: Path, redis_server: RedisServer) -> Iterator[Topology]:
    topo = Topology(tmp_path, redis_server.url)
    topo.start()
    yield topo
    topo.stop()


TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


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


def test_killed_worker_run_ends_system_error(topology: Topology) -> None:
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
