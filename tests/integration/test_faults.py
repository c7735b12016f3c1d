"""Faults, with real processes: the API restarted, Redis restarted, frozen or gone, and the
work directory's disk full. (A worker SIGKILLed mid-run is in test_distributed_processes.py.)

Every test starts its own redis-server, API and workers on free loopback ports and kills
their process groups at the end. The deadlines (a 503 within 5 s) are the behaviour under
test, so they are bounded waits that fail when exceeded.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CWL, EXAMPLES, assert_error
from tests.processes import (
    TERMINAL,
    Server,
    Topology,
    list_all,
    run_log,
    sleeping,
    submit,
    wait,
)
from tests.redis_server import AOF_ALWAYS, RedisServer, start_redis_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HELLO = EXAMPLES / "hello" / "hello.cwl"
# The default lease, not the topology's short one: these tests are not about lost workers,
# and a 4 s lease can lapse while a restarting API keeps the shared machine busy.
LEASE = {"TOOLCHEST_WES_LEASE_TTL_S": "30"}


@pytest.fixture
def aof_redis(tmp_path: Path, redis_server: RedisServer) -> Iterator[RedisServer]:
    """A redis-server of this test's own, writing every command to its AOF before answering."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(redis_server.executable, directory, AOF_ALWAYS)
    try:
        start_redis_server(server)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running(topology: Topology) -> Iterator[Topology]:
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


def wait_all(url: str, run_ids: list[str], timeout: float = 90) -> dict[str, str]:
    """Each run's terminal state; fails if any is not terminal within ``timeout``."""
    deadline = time.monotonic() + timeout
    return {r: wait(url, r, TERMINAL, max(1.0, deadline - time.monotonic())) for r in run_ids}


def assert_all_complete(url: str, run_ids: list[str]) -> None:
    """Every run ends COMPLETE; the message shows the system_logs of any that did not."""
    states = wait_all(url, run_ids)
    failed = {
        r: run_log(url, r)["run_log"]["system_logs"]  # type: ignore[index]
        for r, state in states.items()
        if state != "COMPLETE"
    }
    assert not failed, failed


def test_embedded_restart_requeues_queued_runs_and_ends_executing_ones(tmp_path: Path) -> None:
    """A restarted `toolchest-wes serve` loses no run: queued runs run, executing ones end."""
    server = Server(tmp_path / "data", "--max-concurrent-runs", "1")
    try:
        server.start()
        seconds = 900 + int(time.time()) % 1000
        executing = submit(server.url, CWL / "sleep.cwl", {"seconds": seconds})
        wait(server.url, executing, {"RUNNING"})
        queued = [submit(server.url, HELLO, {"message": f"q{i}"}) for i in range(3)]
        server.kill(signal.SIGTERM)
        assert not sleeping(seconds)
        server.start()

        assert {r["run_id"] for r in list_all(server.url)} == {executing, *queued}
        states = wait_all(server.url, [executing, *queued])
        assert states == {executing: "SYSTEM_ERROR", **dict.fromkeys(queued, "COMPLETE")}
        system_logs = run_log(server.url, executing)["run_log"]["system_logs"]  # type: ignore[index]
        # Either the stopping server recorded the engine it killed, or the starting server
        # found the run still RUNNING; both say why the run ended.
        reasons = ("server restarted", "killed by signal")
        assert any(r in line for line in system_logs for r in reasons), system_logs
    finally:
        if server.proc is not None:
            server.kill(signal.SIGTERM)


def test_distributed_api_restart_loses_no_run(tmp_path: Path, redis_server: RedisServer) -> None:
    """The API is killed (SIGKILL, the harshest stop; the embedded test above stops with
    SIGTERM) and restarted while workers execute: every run accepted before it completes."""
    with running(Topology(tmp_path, redis_server.url, env=LEASE)) as topo:
        run_ids = [topo.submit(CWL / "sleep.cwl", {"seconds": 2}) for _ in range(4)]
        run_ids += [topo.submit(HELLO, {"message": f"m{i}"}) for i in range(4)]
        topo.stop_api(signal.SIGKILL)
        topo.start_api()
        assert {r["run_id"] for r in list_all(topo.url)} == set(run_ids)
        assert_all_complete(topo.url, run_ids)


def test_redis_restart_with_aof_loses_no_run(tmp_path: Path, aof_redis: RedisServer) -> None:
    """Redis is killed (SIGKILL: with appendfsync always, nothing acknowledged may be lost) and
    restarted with runs queued and running: none is lost, the running ones finish, and the
    workers reconnect by themselves."""
    # The outage is shorter than the lease, so runs in flight are not taken for lost.
    topology = Topology(tmp_path, aof_redis.url, env=LEASE)
    with running(topology) as topo:
        executing = [topo.submit(CWL / "sleep.cwl", {"seconds": 3}) for _ in range(4)]
        for run_id in executing:
            wait(topo.url, run_id, {"RUNNING"})
        queued = [topo.submit(HELLO, {"message": f"m{i}"}) for i in range(4)]
        aof_redis.stop(signal.SIGKILL)
        time.sleep(1)
        aof_redis.start()

        accepted = [*executing, *queued]
        wait_healthy_api(topo.url)
        assert {r["run_id"] for r in list_all(topo.url)} == set(accepted)
        assert_all_complete(topo.url, accepted)
        # The same worker processes take new runs: they reconnected to the broker.
        assert all(worker.poll() is None for worker in topo.workers)
        after = [topo.submit(HELLO, {"message": f"after{i}"}) for i in range(4)]
        assert_all_complete(topo.url, after)


def wait_healthy_api(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        assert time.monotonic() < deadline, "the API did not recover by itself"
        time.sleep(0.2)


def _post_hello(url: str, key: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}{API}/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": HELLO.name,
            "workflow_params": '{"message": "during"}',
        },
        files=[("workflow_attachment", (HELLO.name, HELLO.read_bytes()))],
        headers={} if key is None else {"Idempotency-Key": key},
        timeout=5,
    )


class _Response:
    """An httpx response in the shape ``assert_error`` reads (a Flask test response's)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self._response = response

    def get_data(self, as_text: bool = False) -> str:
        return self._response.text

    def get_json(self) -> object:
        return self._response.json()


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_unreachable_redis_is_503_within_5s_and_recovers(
    tmp_path: Path, aof_redis: RedisServer, fault: str
) -> None:
    """Redis refusing connections (killed) or hanging them (SIGSTOP): every endpoint that
    needs the store answers a 503 ErrorResponse within 5 s, and 200 again once Redis is back,
    without a restart."""
    topology = Topology(
        tmp_path, aof_redis.url, env={**LEASE, "TOOLCHEST_WES_QUEUE_LOST_AFTER_S": "3"}
    )
    with running(topology) as topo:
        done = topo.submit(HELLO, {"message": "before"})
        assert wait(topo.url, done, TERMINAL) == "COMPLETE"
        unknown = "0" * 32  # never stored, so no process has its state in memory
        # Endpoints that must reach Redis, and those a cached state may answer (a run's
        # state is kept in each API process, fed by Redis; a frozen Redis leaves it live).
        must = [
            ("GET", "/health"),
            ("GET", f"{API}/runs"),
            ("GET", f"{API}/runs/{done}"),
            ("GET", f"{API}/runs/{unknown}"),
            ("GET", f"{API}/runs/{unknown}/status"),
            ("POST", f"{API}/runs/{unknown}/cancel"),
            ("GET", f"{API}/service-info"),
        ]
        may_cache = [
            ("GET", f"{API}/runs/{done}/status"),
            ("POST", f"{API}/runs/{done}/cancel"),
            ("GET", f"{API}/runs/{done}/tasks"),
        ]
        if fault == "killed":
            aof_redis.stop(signal.SIGKILL)
        else:
            aof_redis.send_signal(signal.SIGSTOP)
        try:
            # httpx's timeout is the deadline: a request that takes longer fails the test.
            for method, path in must:
                response = httpx.request(method, f"{topo.url}{path}", timeout=5)
                assert_error(_Response(response), 503, "not answering")
                assert response.headers["Retry-After"].isdigit()
            for method, path in may_cache:
                response = httpx.request(method, f"{topo.url}{path}", timeout=5)
                if response.status_code != 200:
                    assert_error(_Response(response), 503)
            assert_error(_Response(_post_hello(topo.url)), 503, "not answering")
            keyed = _post_hello(topo.url, key="during-the-outage")
            assert_error(_Response(keyed), 503, "not answering", "same Idempotency-Key")
        finally:
            if fault == "killed":
                aof_redis.start()
            else:
                aof_redis.send_signal(signal.SIGCONT)

        wait_healthy_api(topo.url)
        for method, path in [*must, *may_cache]:
            if unknown not in path and path != "/health":
                response = httpx.request(method, f"{topo.url}{path}", timeout=5)
                assert response.status_code == 200, (path, response.text)
        # A new run completes on the same workers, and the refused submission left no run
        # behind, or, if a frozen Redis applied its timed-out write on waking, a run whose
        # message was never sent, which the reconcile loop queues and which then ends, since
        # its files went with the refusal: never one stuck QUEUED, never one that runs.
        after = topo.submit(HELLO, {"message": "after"})
        assert wait(topo.url, after, TERMINAL) == "COMPLETE"
        # A foreign client resends the refused request with its key: one run, and it runs.
        resent = [_post_hello(topo.url, key="during-the-outage") for _ in range(2)]
        assert [r.status_code for r in resent] == [200, 200], resent[0].text
        keyed_run = resent[0].json()["run_id"]
        assert resent[1].json()["run_id"] == keyed_run
        assert wait(topo.url, keyed_run, TERMINAL) == "COMPLETE"
        orphans = {r["run_id"] for r in list_all(topo.url)} - {done, after, keyed_run}
        assert len(orphans) <= (1 if fault == "frozen" else 0)
        for run_id in orphans:
            # Its submission was answered 503 and its files removed: it ends, and says why.
            assert wait(topo.url, run_id, TERMINAL, timeout=30) == "SYSTEM_ERROR"
            system_logs = topo.log(run_id)["run_log"]["system_logs"]  # type: ignore[index]
            assert any("queued again" in line for line in system_logs)
            assert any("files are missing" in line for line in system_logs)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real file system that fills up, so every writer sees a real ENOSPC
    (the engine, its tools and the API alike), which no injected fault would reproduce."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_work_disk_ends_the_run_system_error_and_server_keeps_serving(
    tmp_path: Path, redis_server: RedisServer, small_disk: Path
) -> None:
    """A workflow that writes more than the work directory holds ends SYSTEM_ERROR with the
    reason; while the disk is full a submission is a 507, and nothing else stops working."""
    topology = Topology(tmp_path, redis_server.url, data_dir=small_disk, env=LEASE)
    with running(topology) as topo:
        filler = topo.submit(CWL / "fill.cwl", {"bytes": 4_000_000})
        assert wait(topo.url, filler, TERMINAL) == "SYSTEM_ERROR"
        system_logs = topo.log(filler)["run_log"]["system_logs"]  # type: ignore[index]
        assert any("no space left on device" in line for line in system_logs), system_logs
        assert any(str(small_disk) in line for line in system_logs), system_logs

        # Fill what is left, then submit: the attachments cannot be stored.
        hog = small_disk / "hog"
        with open(hog, "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        body = assert_error(_Response(_post_hello(topo.url)), 507, "no space left")
        assert "Traceback" not in body["msg"]
        assert {r["run_id"] for r in list_all(topo.url)} == {filler}
        assert sorted(p.name for p in (small_disk / "runs").iterdir()) == [filler]
        assert httpx.get(f"{topo.url}{API}/runs/{filler}", timeout=5).status_code == 200
        assert httpx.get(f"{topo.url}/health", timeout=5).status_code == 200

        # The operator frees space (the failed run's files too): submissions run again.
        hog.unlink()
        shutil.rmtree(small_disk / "runs" / filler)
        after = topo.submit(HELLO, {"message": "room again"})
        assert wait(topo.url, after, TERMINAL) == "COMPLETE"
