"""Distributed-mode benchmarks: redis-server, the API under gunicorn and Celery workers, all
started as real processes on this machine, as the README starts them.

1. latency     hello-world submit -> COMPLETE, polling status every 10 ms (target: median
               <= 400 ms)
2. throughput  hello-world runs submitted at a steady rate for 30 s; completed runs per second
               from first submit to last completion, and none lost (target: >= 15/s)
3. status      GET /runs/{id}/status at 16 connections with wrk, against a bare Flask handler
               returning a constant dict under the identical gunicorn setup, alternating
               (target: >= 85% of the bare handler's requests/s)
4. submit      POST /runs from 8 concurrent clients; every 200 must become a listed run that
               reaches a terminal state (target: >= 100 submissions/s)
5. listing     GET /runs?page_size=10 with 100,000 runs in Redis against 100 runs
               (target: ratio <= 1.5)

Usage: python bench/bench_distributed.py [--only latency,status,...] [--api-workers 2]
       [--workers 2] [--concurrency 4]
Needs redis-server and wrk on PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import (
    API,
    ROOT,
    free_port,
    list_all_runs,
    spawn_session,
    stop_on_signals,
    stop_sessions,
    submit_hello,
    wrk,
)

TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


class Cluster:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
        self.env.update(
            {
                "TOOLCHEST_WES_REDIS_URL": self.redis_url,
                "TOOLCHEST_WES_DATA_DIR": str(tmp / "shared"),
                "TOOLCHEST_WES_LOG_LEVEL": "WARNING",
                "TOOLCHEST_WES_CONTAINER_RUNTIME": "none",
                # The benchmark submits far faster than one user may by default.
                "TOOLCHEST_WES_SUBMIT_RATE": "0",
                "TOOLCHEST_WES_MAX_ACTIVE_RUNS_PER_USER": "0",
            }
        )

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"proc-{len(self.procs)}.log", "wb") as log:
            proc = spawn_session(argv, env=env or self.env, stderr=log)
        self.procs.append(proc)
        return proc

    def start_redis(self) -> None:
        proc = self.spawn(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ]
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5),
            ):
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def start_api(self, prefix: str) -> str:
        port = free_port()
        env = dict(self.env, TOOLCHEST_WES_REDIS_PREFIX=prefix)
        proc = self.spawn(
            [
                sys.executable,
                "-m",
                "toolchest_wes.cli.main",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(self.args.api_workers),
            ],
            env,
        )
        url = f"http://127.0.0.1:{port}"
        # Not /health: it answers 503 until a worker is live, and workers may start later.
        wait_http(f"{url}{API}/service-info", proc, "API")
        return url

    def start_workers(self, prefix: str) -> None:
        env = dict(self.env, TOOLCHEST_WES_REDIS_PREFIX=prefix)
        for i in range(self.args.workers):
            self.spawn(
                [
                    sys.executable,
                    "-m",
                    "toolchest_wes.cli.main",
                    "worker",
                    "--concurrency",
                    str(self.args.concurrency),
                    "-n",
                    f"bench{i}-{prefix}@%h",
                ],
                env,
            )

    def stop(self) -> None:
        """Stop every process group started, the last started first (redis-server last).

        A Celery worker's warm shutdown waits for the runs it executes, which a benchmark
        stopped in their middle does not need: what is still there after 5 s is SIGKILLed.
        """
        stop_sessions(list(reversed(self.procs)), grace_s=5)


def wait_all(client: httpx.Client, run_ids: list[str], timeout: float = 600) -> dict[str, str]:
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    pending = list(run_ids)
    while pending and time.monotonic() < deadline:
        still = []
        for run_id in pending:
            state = client.get(f"{API}/runs/{run_id}/status").json()["state"]
            if state in TERMINAL:
                states[run_id] = state
            else:
                still.append(run_id)
        pending = still
        if pending:
            time.sleep(0.2)
    for run_id in pending:
        states[run_id] = "NOT FINISHED"
    return states


def bench_latency(url: str, runs: int = 30) -> str:
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(runs + 5):
            start = time.perf_counter()
            run_id = submit_hello(client)
            while True:
                state = client.get(f"{API}/runs/{run_id}/status").json()["state"]
                if state in TERMINAL:
                    break
                time.sleep(0.01)
            if state != "COMPLETE":
                raise RuntimeError(f"{run_id} ended {state}")
            if i >= 5:
                times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return (
        f"latency: submit->COMPLETE over {len(times)} runs: median {statistics.median(times):.0f}"
        f" ms, min {times[0]:.0f}, p90 {times[int(len(times) * 0.9) - 1]:.0f}, max {times[-1]:.0f}"
    )


def bench_throughput(url: str, rate: float = 20.0, seconds: float = 30.0) -> str:
    run_ids: list[str] = []
    lock = threading.Lock()
    with httpx.Client(base_url=url, timeout=30) as client:
        start = time.perf_counter()

        def one(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                run_id = submit_hello(c, f"t{i}")
            with lock:
                run_ids.append(run_id)

        with ThreadPoolExecutor(8) as pool:
            i = 0
            while (now := time.perf_counter() - start) < seconds:
                target = int(now * rate)
                while i < target:
                    pool.submit(one, i)
                    i += 1
                time.sleep(0.01)
        states = wait_all(client, run_ids)
        # The last completion is bounded by the polling above; read the runs' end times.
        ends = []
        for run_id in run_ids:
            log = client.get(f"{API}/runs/{run_id}").json()
            ends.append(log["run_log"]["end_time"])
        elapsed = time.perf_counter() - start
    complete = sum(1 for s in states.values() if s == "COMPLETE")
    lost = len(run_ids) - complete
    return (
        f"throughput: {len(run_ids)} runs submitted at {rate:.0f}/s for {seconds:.0f} s; "
        f"{complete} COMPLETE, {lost} not; {complete / elapsed:.1f} completed runs/s from first "
        f"submit to the last one seen complete ({elapsed:.1f} s)"
    )


def bench_status(cluster: Cluster, url: str, rounds: int = 5) -> str:
    with httpx.Client(base_url=url, timeout=30) as client:
        run_id = submit_hello(client)
        wait_all(client, [run_id])
    port = free_port()
    bare = cluster.spawn(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:toolchest_wes.server.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
            "bench.bare_app:app",
        ],
        dict(
            cluster.env, PYTHONPATH=str(ROOT), TOOLCHEST_WES_WORKERS=str(cluster.args.api_workers)
        ),
    )
    bare_url = f"http://127.0.0.1:{port}"
    wait_http(f"{bare_url}/status", bare, "bare Flask")
    ours, theirs = [], []
    for _ in range(rounds):
        theirs.append(wrk(f"{bare_url}/status"))
        ours.append(wrk(f"{url}{API}/runs/{run_id}/status"))
    o, t = statistics.median(ours), statistics.median(theirs)
    return (
        f"status: GET /runs/{{id}}/status {o:.0f} req/s vs bare Flask {t:.0f} req/s "
        f"(medians of {rounds} alternating 10 s wrk runs, 16 connections): {o / t:.0%}"
    )


def bench_submit(url: str, clients: int = 8, seconds: float = 10.0) -> str:
    run_ids: list[str] = []
    failures = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def loop() -> None:
        nonlocal failures
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.perf_counter() < stop:
                try:
                    run_id = submit_hello(client)
                except httpx.HTTPError:
                    with lock:
                        failures += 1
                    continue
                with lock:
                    run_ids.append(run_id)

    start = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    with httpx.Client(base_url=url, timeout=60) as client:
        listed = {r["run_id"] for r in list_all_runs(client)}
        states = wait_all(client, run_ids, timeout=900)
    missing = len(set(run_ids) - listed)
    unfinished = sum(1 for s in states.values() if s not in TERMINAL)
    return (
        f"submit: {len(run_ids)} POST /runs answered 200 in {elapsed:.1f} s from {clients} "
        f"clients = {len(run_ids) / elapsed:.0f}/s ({failures} failed); {missing} not listed, "
        f"{unfinished} not terminal"
    )


def bench_listing(cluster: Cluster, requests: int = 400) -> str:
    from toolchest_wes.models import RunRequest, State
    from toolchest_wes.store.base import RunRecord
    from toolchest_wes.store.redis_store import RedisStateStore

    urls = {}
    for count in (100, 100_000):
        prefix = f"list{count}-{uuid.uuid4().hex[:6]}"
        store = RedisStateStore(cluster.redis_url, prefix=prefix)
        request = RunRequest(
            workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x.cwl"
        )
        now = time.time()
        for i in range(count):
            store.create_run(
                RunRecord(f"run-{i:07d}", State.COMPLETE, request, created_at=now + i, exit_code=0)
            )
        store.close()
        urls[count] = cluster.start_api(prefix)
    times: dict[int, list[float]] = {100: [], 100_000: []}
    with httpx.Client(timeout=30) as client:
        for i in range(requests * 2 + 40):
            count = 100 if i % 2 == 0 else 100_000
            start = time.perf_counter()
            response = client.get(f"{urls[count]}{API}/runs", params={"page_size": 10})
            elapsed = time.perf_counter() - start
            assert response.status_code == 200 and len(response.json()["runs"]) == 10
            if i >= 40:
                times[count].append(elapsed * 1000)
    small, large = statistics.median(times[100]), statistics.median(times[100_000])
    return (
        f"listing: GET /runs?page_size=10 median 100 runs {small:.2f} ms, 100,000 runs "
        f"{large:.2f} ms, ratio {large / small:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="latency,throughput,status,submit,listing")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    stop_on_signals()
    for tool in ("redis-server", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not on PATH")
    wanted = args.only.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), args)
        try:
            cluster.start_redis()
            prefix = f"bench-{uuid.uuid4().hex[:6]}"
            url = cluster.start_api(prefix)
            cluster.start_workers(prefix)
            print(
                f"setup: API gunicorn x{args.api_workers} (gthread), {args.workers} Celery "
                f"workers x{args.concurrency} threads, redis-server, on {os.cpu_count()} CPUs",
                flush=True,
            )
            if "latency" in wanted:
                print(bench_latency(url), flush=True)
            if "throughput" in wanted:
                print(bench_throughput(url), flush=True)
            if "status" in wanted:
                print(bench_status(cluster, url), flush=True)
            if "pause" in wanted:
                time.sleep(30)
            if "submit" in wanted:
                print(bench_submit(url), flush=True)
            if "listing" in wanted:
                print(bench_listing(cluster), flush=True)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
