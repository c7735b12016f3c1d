"""Distributed mode under load survives a worker SIGKILL and a Redis SIGKILL, again and again.

The processes are real: a redis-server of its own that writes every command to its
append-only file before answering (``appendfsync always``), the API as ``toolchest-wes serve
--workers 2`` and two ``toolchest-wes worker`` processes with concurrency 2. In each round 16
clients submit hello runs at about 30 a second for ``LOAD_S`` seconds; meanwhile one worker
is SIGKILLed (its whole process group) and a replacement started, and Redis is SIGKILLed
and started again from its append-only file a second later. The same processes go through
every round, so a worker that stopped consuming after an earlier restart fails a later round.

A quarter of the clients are foreign clients that follow the Idempotency-Key draft with plain
httpx: they drop a connection after 1.5 s (the first try of every fourth submission after
50 ms, while the server is still making the run) and resend every submission that got a 5xx
or no answer, with the same key, until it is answered.

After each round: every run a client got a 200 for is listed and terminal within two minutes
of the end of the load (none lost), no two runs carry one client's tag (none made twice),
every run of the round is terminal (including one stored while Redis died, whose client got
no 200), every keyed submission got a 200 and no run beside the one it names, a run whose
POST was answered 503 ended SYSTEM_ERROR saying why, and the workers are alive and consuming.

``TOOLCHEST_WES_TEST_LOAD_S`` sets the load of each round (default 8 s; the report this test
comes from used 30 s), and ``TOOLCHEST_WES_TEST_ROUNDS`` the number of rounds (default 3: a
later round already catches a worker that stopped consuming after an earlier restart; 5 in a
row were run before a change to the restart handling).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, EXAMPLES
from tests.load import TAG_BATCH, TAG_CLIENT, Load, batch_runs
from tests.processes import TERMINAL, Topology, kill_group, run_log
from tests.redis_server import AOF_ALWAYS, RedisServer, start_redis_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HELLO = EXAMPLES / "hello" / "hello.cwl"
# Read at import: the autouse _clean_env fixture removes TOOLCHEST_WES_* variables later.
LOAD_S = float(os.environ.get("TOOLCHEST_WES_TEST_LOAD_S", "8"))
ROUNDS = int(os.environ.get("TOOLCHEST_WES_TEST_ROUNDS", "3"))
#: The light load that follows, with one more Redis restart.
LIGHT_S = 6.0
#: How long after the load every accepted run must be terminal.
SETTLE_S = 120.0
SETTINGS = {
    # A run on the killed worker ends within lease + one reconcile interval.
    "TOOLCHEST_WES_LEASE_TTL_S": "10",
    "TOOLCHEST_WES_RECONCILE_INTERVAL_S": "1",
    # A message delivered to the killed worker is sent again this long after delivery.
    "TOOLCHEST_WES_QUEUE_LOST_AFTER_S": "5",
    "TOOLCHEST_WES_WORKER_HEARTBEAT_TIMEOUT_S": "10",
}


@pytest.fixture(scope="module")
def aof_redis_module(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[RedisServer]:
    """A redis-server for this module, with ``appendfsync always``."""
    server = RedisServer(redis_server.executable, tmp_path_factory.mktemp("aof"), AOF_ALWAYS)
    try:
        start_redis_server(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, aof_redis_module: RedisServer
) -> Iterator[Topology]:
    """The API and two workers, shared by the rounds."""
    topo = Topology(tmp_path_factory.mktemp("topology"), aof_redis_module.url, env=SETTINGS)
    try:
        topo.start()
        yield topo
    finally:
        topo.stop()


@pytest.mark.parametrize("round_", range(1, ROUNDS + 1))
def test_a_worker_and_redis_killed_under_load_lose_and_stall_nothing(
    topology: Topology, aof_redis_module: RedisServer, round_: int
) -> None:
    # The load of the report: more than the workers can take, so the queue grows.
    load = Load(topology.url, HELLO, clients=12, rate=22)
    keyed = Load(topology.url, HELLO, clients=4, rate=8, keyed=True, timeout=1.5)
    started = time.monotonic()
    load.start()
    keyed.start()
    try:
        _sleep_until(started + 0.25 * LOAD_S)
        victim = topology.workers.pop(round_ % len(topology.workers))
        kill_group(victim, signal.SIGKILL)
        topology.add_worker()
        _sleep_until(started + 0.5 * LOAD_S)
        _restart(aof_redis_module)
        _sleep_until(started + LOAD_S)
    finally:
        load.stop()
        keyed.stop()
    _check(topology, load, time.monotonic() + SETTLE_S)
    _check(topology, keyed, time.monotonic() + SETTLE_S)

    # Then a light load that the workers keep up with, so that each waits on the queue
    # with a run in hand when Redis dies: the moment that ended workers (see
    # toolchest_wes/worker/kombu_transport.py).
    light = Load(topology.url, HELLO, clients=4, rate=4)
    started = time.monotonic()
    light.start()
    try:
        _sleep_until(started + LIGHT_S / 2)
        _restart(aof_redis_module)
        _sleep_until(started + LIGHT_S)
    finally:
        light.stop()
    _check(topology, light, time.monotonic() + SETTLE_S)


def test_redis_restart_keeps_300_queued_runs_and_the_workers_run_them(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """With no worker, 300 runs wait QUEUED (the API says so); Redis is SIGKILLed and
    restarted from its append-only file; then workers start and run every one, once."""
    directory = tmp_path / "redis"
    directory.mkdir()
    redis = RedisServer(redis_server.executable, directory, AOF_ALWAYS)
    topology = Topology(tmp_path, redis.url, env=SETTINGS)
    try:
        start_redis_server(redis)
        topology.start(workers=0)
        health = httpx.get(f"{topology.url}/health", timeout=10)
        assert health.status_code == 503 and "no worker" in health.json()["msg"]

        load = Load(topology.url, HELLO)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: load.post_once(f"queued-{i}"), range(300)))
        assert [a.status for a in answers] == ["200"] * 300
        assert all(a.headers.get("x-toolchest-wes-live-workers") == "0" for a in answers)
        assert all(a.headers.get("warning", "").startswith("199 ") for a in answers)
        assert _queue_length(topology.url) == 300

        redis.stop(signal.SIGKILL)
        time.sleep(1)
        redis.start()

        assert _queue_length(topology.url) == 300  # the queue came back from the AOF
        runs = batch_runs(topology.url, load.batch)
        assert len(runs) == 300 and {run["state"] for run in runs} == {"QUEUED"}
        for _ in range(2):
            topology.add_worker()
        accepted = {str(a.run_id) for a in answers}
        runs = _settled(topology.url, load.batch, accepted, time.monotonic() + 240)
        assert {str(run["run_id"]) for run in runs} == accepted
        assert {run["state"] for run in runs} == {"COMPLETE"}
        _wait_live_workers(topology.url, 2)
        assert httpx.get(f"{topology.url}/health", timeout=10).status_code == 200
    finally:
        topology.stop()
        redis.stop()


def _restart(redis: RedisServer) -> None:
    """SIGKILL Redis and start it again from its append-only file a second later."""
    redis.stop(signal.SIGKILL)
    time.sleep(1)
    redis.start()


def _check(topology: Topology, load: Load, deadline: float) -> None:
    """Every accepted run listed and terminal by ``deadline``, each submission one run, and
    every worker alive and consuming, none restarted."""
    accepted = load.accepted()
    assert accepted, f"no submission was accepted: {load.statuses()}"
    runs = _settled(topology.url, load.batch, set(accepted.values()), deadline)
    listed = {str(run["run_id"]) for run in runs}
    assert len(set(accepted.values())) == len(accepted), "one run id answered twice"
    assert not set(accepted.values()) - listed, "accepted runs are missing"
    tags = collections.Counter(str(run["tags"][TAG_CLIENT]) for run in runs)  # type: ignore[index]
    assert not [tag for tag, n in tags.items() if n > 1], "a submission made two runs"
    by_tag = {str(run["tags"][TAG_CLIENT]): str(run["run_id"]) for run in runs}  # type: ignore[index]
    assert all(by_tag.get(tag) == run_id for tag, run_id in accepted.items())
    assert all(str(run["tags"][TAG_BATCH]) == load.batch for run in runs)  # type: ignore[index]
    if load.keyed:
        # Resent with its key until answered: one run per submission, the one answered.
        assert len(accepted) == len(load.answers), load.statuses()
        assert listed == set(accepted.values()), "a run that no answer named"
    # A run whose POST was answered 503 never executes: its files went with the refusal.
    refused = {a.client_tag for a in load.answers if a.status == "503"}
    for tag in refused & set(by_tag):
        log = run_log(topology.url, by_tag[tag])
        assert log["state"] == "SYSTEM_ERROR", (tag, log["state"])
        assert log["run_log"]["system_logs"], log  # type: ignore[index]
    assert all(worker.poll() is None for worker in topology.workers), "a worker exited"
    # `toolchest-wes worker` starts a Celery worker that died again; none should have to.
    restarts = [
        line
        for log in sorted(topology.tmp_path.glob("worker*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "exited unasked" in line or "Unrecoverable error" in line
    ]
    assert not restarts, restarts
    _wait_live_workers(topology.url, len(topology.workers))


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def _settled(url: str, batch: str, accepted: set[str], deadline: float) -> list[dict[str, object]]:
    """The batch's runs once all are terminal and include every accepted run."""
    while True:
        runs: list[dict[str, object]] = []
        with contextlib.suppress(httpx.TransportError, AssertionError):
            runs = batch_runs(url, batch)
        listed = {str(run["run_id"]) for run in runs}
        states = collections.Counter(str(run["state"]) for run in runs)
        if runs and accepted <= listed and set(states) <= TERMINAL:
            return runs
        assert time.monotonic() < deadline, (
            f"not settled: {states}, {len(accepted - listed)} accepted runs not listed"
        )
        time.sleep(1)


def _queue_length(url: str) -> float:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            response = httpx.get(f"{url}/metrics", timeout=10)
            for line in response.text.splitlines():
                if line.startswith("toolchest_wes_queue_length "):
                    return float(line.split()[1])
        assert time.monotonic() < deadline, "no queue length in /metrics"
        time.sleep(0.5)


def _wait_live_workers(url: str, count: int) -> None:
    """Wait until service-info reports ``count`` live workers (consumers taking runs)."""
    deadline = time.monotonic() + 60
    while True:
        live = None
        with contextlib.suppress(httpx.TransportError, KeyError, ValueError):
            live = httpx.get(f"{url}{API}/service-info", timeout=10).json()["workers"]["live"]
        if live == count:
            return
        assert time.monotonic() < deadline, f"{live} live workers, not {count}"
        time.sleep(0.5)
