"""The product as real processes, spoken to over HTTP as a user would.

``Server`` is the embedded server (``toolchest-wes serve``); ``Topology`` is the distributed
mode of the README and docker-compose: the API under gunicorn with two processes and two
Celery workers, on a Redis the caller gives. Every process leads its own session, so a test
can signal one (SIGKILL a worker, SIGTERM the API) and ``stop()`` kills whole groups.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import API

__all__ = [
    "TERMINAL",
    "Server",
    "Topology",
    "clean_env",
    "free_port",
    "kill_group",
    "list_all",
    "run_log",
    "sleeping",
    "spawn",
    "submit",
    "wait",
    "wait_healthy",
]

TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This process's environment without any ``TOOLCHEST_WES_*`` variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}


def bench_env() -> dict[str, str]:
    """``clean_env`` without coverage's variables, for a benchmark script and what it starts.

    A benchmark runs its servers as users run them: under coverage's tracing, every process
    of theirs would run Python two to three times slower (the interpreter leaves its
    specialised paths while a trace function is set), which made the benchmark tests some of
    the longest of the suite. The code they reach is covered by tests of its own.
    """
    return {k: v for k, v in clean_env().items() if not k.startswith("COVERAGE_")}


def bearer_token(data_dir: Path, user: str) -> dict[str, str]:
    """An ``Authorization`` header with a new API token of ``user``, from the real command."""
    command = [sys.executable, "-m", "toolchest_wes.cli.main", "token", "create", user]
    done = subprocess.run(
        [*command, "--data-dir", str(data_dir)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {"Authorization": f"Bearer {done.stdout.splitlines()[-1]}"}


def spawn(
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    program: list[str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``program args`` in a new session, output appended to a log.

    ``program`` defaults to ``python -m toolchest_wes.cli.main`` of this interpreter; an
    installed ``toolchest-wes`` script can stand in for it.
    """
    command = program or [sys.executable, "-m", "toolchest_wes.cli.main"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [*command, *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


#: The benchmark scripts, which some tests run at a small scale.
BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` with ``args`` in ``bench_env()``; its output as text."""
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=BENCH,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process's whole session and wait for it (SIGKILL if SIGTERM takes > 30 s)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, path: str = "/health"
) -> None:
    """Wait until ``url + path`` answers 200; fail with the log if the process exits."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        assert proc.poll() is None, f"exited during startup:\n{log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{url}{path} did not answer 200"
        time.sleep(0.1)


def submit(
    url: str, workflow: Path, params: dict[str, object], tags: dict[str, str] | None = None
) -> str:
    """POST /runs with ``workflow`` attached; asserts a 200 and returns the run id."""
    data = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": workflow.name,
        "workflow_params": json.dumps(params),
    }
    if tags:
        data["tags"] = json.dumps(tags)
    response = httpx.post(
        f"{url}{API}/runs",
        data=data,
        files=[("workflow_attachment", (workflow.name, workflow.read_bytes()))],
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def wait(url: str, run_id: str, states: set[str], timeout: float = 60) -> str:
    """Poll the run's status until it is one of ``states``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state = httpx.get(f"{url}{API}/runs/{run_id}/status", timeout=10).json()["state"]
        if state in states:
            return str(state)
        assert time.monotonic() < deadline, f"{run_id} still {state}"
        time.sleep(0.05)


def run_log(url: str, run_id: str) -> dict[str, object]:
    """GET /runs/{run_id}, asserting a 200."""
    response = httpx.get(f"{url}{API}/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def list_all(url: str, tag: str | None = None) -> list[dict[str, object]]:
    """Every run of GET /runs (with ``tag=key:value``, those runs), to the last page."""
    runs: list[dict[str, object]] = []
    token = ""
    while True:
        params = {"page_size": 1000, "page_token": token, **({"tag": tag} if tag else {})}
        response = httpx.get(f"{url}{API}/runs", params=params, timeout=30)
        assert response.status_code == 200, response.text
        page = response.json()
        runs += page["runs"]
        token = page["next_page_token"]
        if not token:
            return runs


def sleeping(seconds: int) -> bool:
    """Whether a ``sleep <seconds>`` process exists (the tool of tests/cwl/sleep.cwl)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == f"sleep\0{seconds}\0".encode():
                return True
        except OSError:
            continue
    return False


#: API processes of a test's embedded server unless the test asks for another number: one.
#: Each process imports the whole server under coverage, about two seconds of CPU, and only
#: tests about several processes (the shared run pool, a worker's restart, the commands of the
#: README) need the default of two.
TEST_WORKERS = 1


class Server:
    """The embedded server, ``toolchest-wes serve``, on a free port; restartable.

    ``workers`` is its number of API processes; None leaves the server's own default.
    """

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        workers: int | None = TEST_WORKERS,
    ) -> None:
        self.data_dir = data_dir
        self.args = args
        self.env = env or {}
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    def start(self) -> None:
        """Start the server and wait until /health answers."""
        env = {**clean_env(), **self.env}
        if self.workers is not None:
            env["TOOLCHEST_WES_WORKERS"] = str(self.workers)
        # Metrics files go under the test's folder: a SIGKILLed server cannot clean up.
        metrics = self.data_dir.parent / f"metrics-{self.port}"
        metrics.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        args = ["serve", "--port", str(self.port), "--data-dir", str(self.data_dir), *self.args]
        self.proc = spawn(args, env, self.log_path)
        wait_healthy(self.url, self.proc, self.log_path)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole server (gunicorn arbiter and worker) and wait for it."""
        assert self.proc is not None
        kill_group(self.proc, sig)


class Topology:
    """The distributed mode as processes: the API (2 gunicorn processes) and two workers.

    Args:
        tmp_path: Logs, the shared work directory and the metrics folder go here.
        redis_url: The Redis both sides use; each topology gets its own key prefix.
        data_dir: The shared work directory, if not ``tmp_path / "shared"``.
        env: ``TOOLCHEST_WES_*`` settings over the defaults below.
        own_data_dirs: Give every worker a data folder of its own (``tmp_path /
            "worker<n>"``), as on separate machines; the API keeps ``data_dir``.
    """

    def __init__(
        self,
        tmp_path: Path,
        redis_url: str,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        *,
        own_data_dirs: bool = False,
    ) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env()
        self.env.update(
            {
                "TOOLCHEST_WES_REDIS_URL": redis_url,
                "TOOLCHEST_WES_REDIS_PREFIX": f"topo-{uuid.uuid4().hex[:8]}",
                "TOOLCHEST_WES_DATA_DIR": str(data_dir or tmp_path / "shared"),
                "TOOLCHEST_WES_CONTAINER_RUNTIME": "none",
                # Short enough that a killed worker's run is reconciled quickly here.
                "TOOLCHEST_WES_LEASE_TTL_S": "4",
                "TOOLCHEST_WES_RECONCILE_INTERVAL_S": "1",
                # Workers report at once when their consumer connects or disconnects; the
                # interval only refreshes the heartbeat.
                "TOOLCHEST_WES_WORKER_HEARTBEAT_INTERVAL_S": "1",
                # Under the test's folder: a SIGKILLed API cannot clean its metrics files.
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            }
        )
        self.env.update(env or {})
        (tmp_path / "metrics").mkdir(exist_ok=True)
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._started_workers = 0
        self.own_data_dirs = own_data_dirs

    def start(self, workers: int = 2) -> None:
        """Start the workers and the API; return when the API answers /health (with no
        worker, when it answers at all: /health is 503 while no worker is live)."""
        for _ in range(workers):
            self.add_worker()
        self.start_api(healthy=workers > 0)

    def add_worker(self) -> subprocess.Popen[bytes]:
        """Start one more ``toolchest-wes worker`` (concurrency 2) with a name of its own."""
        n = self._started_workers
        self._started_workers += 1
        env = self.env
        if self.own_data_dirs:
            env = {**env, "TOOLCHEST_WES_DATA_DIR": str(self.tmp_path / f"worker{n}")}
        worker = spawn(
            ["worker", "--concurrency", "2", "-n", f"w{n}@%h"],
            env,
            self.tmp_path / f"worker{n}.log",
        )
        self.workers.append(worker)
        return worker

    def start_api(self, *, healthy: bool = True) -> None:
        """Start the API (again, after ``stop_api``) and wait until it answers /health, or
        with ``healthy=False`` until it answers service-info."""
        log_path = self.tmp_path / "api.log"
        self.api = spawn(["serve", "--port", str(self.port), "--workers", "2"], self.env, log_path)
        if healthy:
            wait_healthy(self.url, self.api, log_path)
        else:
            wait_healthy(self.url, self.api, log_path, path=f"{API}/service-info")

    def stop_api(self, sig: int = signal.SIGTERM) -> None:
        """Signal the API's gunicorn (arbiter and its processes) and wait for it to exit."""
        if self.api is not None:
            kill_group(self.api, sig)
            self.api = None

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL for any that does not exit)."""
        procs = [*self.workers, *([self.api] if self.api else [])]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            kill_group(proc, signal.SIGTERM)

    def submit(
        self, workflow: Path, params: dict[str, object], tags: dict[str, str] | None = None
    ) -> str:
        """POST /runs to the API; returns the run id."""
        return submit(self.url, workflow, params, tags)

    def log(self, run_id: str) -> dict[str, object]:
        """GET /runs/{run_id}."""
        return run_log(self.url, run_id)
