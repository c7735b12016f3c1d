"""The real `toolchest-wes serve` process, spoken to over HTTP as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CWL, EXAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
        # Metrics files go under the test's folder: a SIGKILLed server cannot clean up.
        metrics = self.data_dir.parent / f"metrics-{self.port}"
        metrics.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "toolchest_wes.cli.main",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, "server exited during startup"
            assert time.monotonic() < deadline, "server did not answer /health in 60 s"
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole server (gunicorn arbiter and worker) and wait for it."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        self.proc.wait(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    srv.start()
    yield srv
    srv.kill(signal.SIGTERM)


def submit(url: str, workflow: Path, params: dict[str, object]) -> str:
    response = httpx.post(
        f"{url}{API}/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": workflow.name,
            "workflow_params": json.dumps(params),
        },
        files=[("workflow_attachment", (workflow.name, workflow.read_bytes()))],
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def wait(url: str, run_id: str, states: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = httpx.get(f"{url}{API}/runs/{run_id}/status", timeout=10).json()["state"]
        if state in states:
            return str(state)
        assert time.monotonic() < deadline, f"{run_id} still {state}"
        time.sleep(0.05)


def test_serve_runs_hello_world_over_http(server: Server) -> None:
    run_id = submit(server.url, EXAMPLES / "hello" / "hello.cwl", {"message": "over http"})
    assert wait(server.url, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == "COMPLETE"
    log = httpx.get(f"{server.url}{API}/runs/{run_id}").json()
    location = log["outputs"]["greeting"]["location"]
    assert location.startswith(server.url)
    assert httpx.get(location).content == b"over http\n"
    info = httpx.get(f"{server.url}{API}/service-info").json()
    assert info["system_state_counts"]["COMPLETE"] == 1
    missing = httpx.get(f"{server.url}{API}/runs/nope")
    assert missing.status_code == 404
    assert missing.json() == {"msg": "run 'nope' not found", "status_code": 404}


def sleeping(seconds: int) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == f"sleep\0{seconds}\0".encode():
                return True
        except OSError:
            continue
    return False


def test_killed_server_leaves_no_run_active_and_no_process(server: Server) -> None:
    seconds = 300 + os.getpid() % 1000
    run_id = submit(server.url, CWL / "sleep.cwl", {"seconds": seconds})
    wait(server.url, run_id, {"RUNNING"})
    deadline = time.monotonic() + 30
    while not sleeping(seconds):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while sleeping(seconds):
        assert time.monotonic() < deadline, "the run's tool outlived the killed server"
        time.sleep(0.05)
    server.start()
    log = httpx.get(f"{server.url}{API}/runs/{run_id}").json()
    assert log["state"] == "SYSTEM_ERROR"
    assert any("server restarted" in line for line in log["run_log"]["system_logs"])
