"""Many long runs at once: latency, memory per run and cancel, in either mode.

Starts the server (embedded: ``toolchest-wes serve --max-concurrent-runs N``; distributed: a
redis-server, the API and one Celery worker with ``--concurrency N``), submits N runs of a
``sleep`` workflow (``bench/sleep.cwl``) and waits until all are RUNNING. Then, while they run:

1. latency   GET /runs/{id}/status of a random run and GET /runs (first page of 10), one
             request at a time, alternating; median and p99 of each (goal: p99 < 50 ms)
2. memory    PSS (``/proc/PID/smaps_rollup``) of every process the benchmark started and all
             their descendants (API, pool or worker, zygote, engines, tools), with the runs
             active against the same servers idle before the submissions; the difference per
             run (goal: < 30 MB). Redis's own memory is reported apart.
3. cancel    POST /runs/{id}/cancel for every run (8 clients); for each, the time from its
             cancel request to CANCELED (goal: each within 10 s), and the processes left
             below the servers afterwards (goal: none beyond those there before the runs)

Every step has a deadline; the servers and anything left below them are killed at the end.

``--kill-worker`` (embedded mode) then SIGKILLs the gunicorn worker that holds the run pool,
as the kernel's out-of-memory killer would, before the cancels: the server's other worker
takes the pool over and adopts every run whose engine still runs, while the arbiter starts a
new worker in place of the killed one. It reports how long until another worker holds the
pool and the server answers, the runs no longer RUNNING then (goal: none), the tools still
running, and the latency of status and ``GET /runs`` with the adopted runs; the cancels that
follow then stop adopted runs.

``--lease-ttl S`` gives the servers a lease of S seconds instead of their default (30): with
a lease shorter than the wait for the zygote's forks, a run whose lease were not renewed
while it waited would be ended by the reconcile loop.

Usage: python bench/bench_concurrent.py [--mode embedded,distributed] [--runs 1000]
       [--sleep 120] [--lease-ttl 30] [--kill-worker]
Needs redis-server on PATH for the distributed mode.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import API, ROOT, free_port, stop_on_signals
from bench_distributed import Cluster, wait_http

from toolchest_wes.engines.proctree import children, descendants, tree_memory_bytes
from toolchest_wes.runner.shared_pool import PoolLock

SLEEP_CWL = Path(__file__).resolve().parent / "sleep.cwl"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
MB = 1024 * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.1f}, p99 {percentile(values, 0.99):.1f}, "
        f"max {max(values):.1f}"
    )


def submit_sleep(client: httpx.Client, seconds: int) -> str:
    response = client.post(
        f"{API}/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": SLEEP_CWL.name,
            "workflow_params": json.dumps({"seconds": seconds}),
        },
        files=[("workflow_attachment", (SLEEP_CWL.name, SLEEP_CWL.read_bytes()))],
    )
    response.raise_for_status()
    return str(response.json()["run_id"])


def states(client: httpx.Client) -> dict[str, str]:
    """Every run's state, from GET /runs (the whole listing)."""
    found: dict[str, str] = {}
    token = ""
    while True:
        response = client.get(f"{API}/runs", params={"page_size": 1000, "page_token": token})
        response.raise_for_status()
        page = response.json()
        found.update((run["run_id"], run["state"]) for run in page["runs"])
        token = page["next_page_token"]
        if not token:
            return found


def parallel(fn: Callable[[httpx.Client, int], str], count: int, url: str) -> list[str]:
    """``fn(client, i)`` for i < count from 8 clients, each with its own connection."""
    local = threading.local()

    def one(i: int) -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=60)
        return fn(local.client, i)

    pool = ThreadPoolExecutor(8)
    try:
        return list(pool.map(one, range(count)))
    finally:
        # On Ctrl-C, the requests not sent yet are dropped rather than waited for.
        pool.shutdown(wait=True, cancel_futures=True)


def tree_pss(roots: list[int]) -> tuple[int, int]:
    """(PSS in bytes, process count) of ``roots`` and every process below them."""
    pids: set[int] = set()
    for root in roots:
        pids |= set(descendants(root))
    return sum(tree_memory_bytes(root) for root in roots), len(pids)


def below(roots: list[int]) -> set[int]:
    pids: set[int] = set()
    for root in roots:
        pids |= set(descendants(root))
    return pids


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def left_below(roots: list[int], idle_pids: set[int]) -> tuple[list[str], int]:
    """What is below ``roots`` and was not there idle: ``pid command`` of each process that
    is not a spare, and the number of spares.

    A spare is a child of the zygote (which was there idle) with no child of its own: the
    zygote forks up to two ahead of the next runs whenever the CPUs are idle, so after the
    runs end new ones replace those the runs took. An engine that outlived its cancelled run
    would still have its tool (``sleep``) below it, and is counted as left.
    """
    left: list[str] = []
    spares = 0
    for pid in sorted(below(roots) - idle_pids):
        command = _command(pid)
        parent = _parent(pid)
        if (
            "toolchest_wes.engines.zygote" in command
            and parent in idle_pids
            and len(descendants(pid)) <= 1
        ):
            spares += 1
        else:
            left.append(f"{pid} {command[:80]}")
    return left, spares


def tools_running(roots: list[int]) -> int:
    """How many ``sleep`` processes (the runs' tools) are below ``roots``."""
    count = 0
    for pid in below(roots):
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                count += f.read().strip() == b"sleep"
        except OSError:
            pass
    return count


def _zygotes_of(pid: int) -> list[int]:
    """The engine zygotes among ``pid``'s children."""
    return [child for child in children(pid) if "toolchest_wes.engines.zygote" in _command(child)]


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def largest(roots: list[int], count: int = 3) -> str:
    """The ``count`` processes below ``roots`` with the largest PSS, in MB (one /proc scan)."""
    sizes = sorted(((pss(pid), pid) for pid in below(roots)), reverse=True)
    return ", ".join(f"{pid}: {size / MB:.0f}" for size, pid in sizes[:count])


def pss(pid: int) -> int:
    """One process's PSS in bytes; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def redis_used_memory(port: int) -> int:
    import redis

    return int(redis.Redis(port=port).info("memory")["used_memory"])


class Servers:
    """The processes of one mode, started as the README starts them."""

    def __init__(self, tmp: Path, mode: str, runs: int, lease_ttl: float | None = None) -> None:
        cluster_args = argparse.Namespace(api_workers=2, workers=1, concurrency=runs)
        self.cluster = Cluster(tmp, cluster_args)
        self.cluster.env["PYTHONPATH"] = str(ROOT)
        if lease_ttl is not None:
            self.cluster.env["TOOLCHEST_WES_LEASE_TTL_S"] = str(lease_ttl)
        self.mode = mode
        self.runs = runs
        self.url = ""
        self.orphans: list[int] = []

    def start(self) -> None:
        if self.mode == "distributed":
            self.cluster.start_redis()
            prefix = f"conc-{uuid.uuid4().hex[:6]}"
            self.url = self.cluster.start_api(prefix)
            self.cluster.start_workers(prefix)
            wait_http(f"{self.url}/health", self.cluster.procs[-1], "worker")
            return
        env = {k: v for k, v in self.cluster.env.items() if k != "TOOLCHEST_WES_REDIS_URL"}
        env["TOOLCHEST_WES_DATA_DIR"] = str(self.cluster.tmp / "embedded")
        port = free_port()
        proc = self.cluster.spawn(
            [
                sys.executable,
                "-m",
                "toolchest_wes.cli.main",
                "serve",
                "--port",
                str(port),
                "--max-concurrent-runs",
                str(self.runs),
            ],
            env,
        )
        self.url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.url}/health", proc, "server")

    def roots(self) -> list[int]:
        """The WES processes (not redis-server), and the zygotes a killed worker left."""
        procs = self.cluster.procs[1:] if self.mode == "distributed" else self.cluster.procs
        return [p.pid for p in procs] + self.orphans

    def pool_worker(self) -> int:
        """The embedded server's gunicorn worker that executes the runs (the pid it wrote
        into the pool lock), 0 while none holds it."""
        pid = PoolLock(self.cluster.tmp / "embedded" / "pool.lock").holder() or 0
        return pid if pid in children(self.cluster.procs[0].pid) else 0

    def kill_worker(self) -> int:
        """SIGKILL the embedded server's gunicorn worker that executes the runs; its pid.

        Its zygote outlives it to keep its runs, re-parented away from the server, so it is
        counted among the roots from now on.
        """
        worker = self.pool_worker()
        self.orphans += _zygotes_of(worker)
        os.kill(worker, signal.SIGKILL)
        return worker

    def stop(self) -> None:
        leftover = below(self.roots())
        self.cluster.stop()
        # Engines run in sessions of their own: kill whatever outlived its server, and any
        # tool started meanwhile that its killed engine left to init (it runs in a run folder).
        for entry in os.scandir("/proc"):
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and os.readlink(f"/proc/{entry.name}/cwd").startswith(
                    str(self.cluster.tmp)
                ):
                    leftover.add(int(entry.name))
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def servers(mode: str, runs: int, lease_ttl: float | None) -> Iterator[Servers]:
    with tempfile.TemporaryDirectory(prefix="bench-concurrent-") as tmp:
        s = Servers(Path(tmp), mode, runs, lease_ttl)
        try:
            s.start()
            yield s
        finally:
            s.stop()
            logs = Path(tempfile.gettempdir()) / "bench-concurrent-logs"
            logs.mkdir(exist_ok=True)
            for log in Path(tmp).glob("*.log"):
                shutil.copy(log, logs / f"{mode}-{log.name}")


def sample_latency(client: httpx.Client, run_ids: list[str], seconds: float) -> None:
    """Status of a random run, then the listing's first page, one request at a time."""
    status_ms: list[float] = []
    list_ms: list[float] = []
    sample_end = time.monotonic() + seconds
    while time.monotonic() < sample_end:
        run_id = random.choice(run_ids)
        t0 = time.perf_counter()
        client.get(f"{API}/runs/{run_id}/status").raise_for_status()
        t1 = time.perf_counter()
        client.get(f"{API}/runs", params={"page_size": 10}).raise_for_status()
        t2 = time.perf_counter()
        status_ms.append((t1 - t0) * 1000)
        list_ms.append((t2 - t1) * 1000)
    print(f"status ms over {len(status_ms)}: {summary(status_ms)}")
    print(f"GET /runs ms over {len(list_ms)}: {summary(list_ms)}", flush=True)


def adopt_after_worker_kill(s: Servers, client: httpx.Client, run_ids: list[str]) -> set[int]:
    """Kill the worker that holds the runs, time until another worker holds the pool and the
    server answers (the pool's new holder adopts the runs as it takes it), and count what did
    not survive. Returns the workers and zygotes the server has idle from now on."""
    tools = tools_running(s.roots())
    kill = time.monotonic()
    worker = s.kill_worker()
    print(f"killed the gunicorn worker {worker} with {len(run_ids)} runs active", flush=True)
    deadline = kill + 600
    while True:
        if s.pool_worker() not in {0, worker}:
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/health", timeout=5).status_code == 200:
                    break
        if time.monotonic() > deadline:
            raise SystemExit("no other worker took the run pool over within 600 s")
        time.sleep(0.05)
    print(
        f"worker {s.pool_worker()} took the run pool over and answered after "
        f"{time.monotonic() - kill:.1f} s",
        flush=True,
    )
    # The arbiter's replacement for the killed worker, which is idle too.
    while len(children(s.cluster.procs[0].pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    current = states(client)
    running = sum(1 for r in run_ids if current.get(r) == "RUNNING")
    ended: dict[str, int] = {}
    for run_id in run_ids:
        state = current.get(run_id, "missing")
        if state != "RUNNING":
            ended[state] = ended.get(state, 0) + 1
    print(
        f"after the kill: {running} of {len(run_ids)} RUNNING, other states {ended or 'none'}; "
        f"tools running {tools_running(s.roots())} (before the kill {tools})",
        flush=True,
    )
    workers = set(children(s.cluster.procs[0].pid))
    return workers | {pid for new in workers for pid in _zygotes_of(new)}


def bench_mode(mode: str, args: argparse.Namespace) -> None:
    print(f"== {mode}: {args.runs} runs of sleep {args.sleep} s, on {os.cpu_count()} CPUs")
    with (
        servers(mode, args.runs, args.lease_ttl) as s,
        httpx.Client(base_url=s.url, timeout=60) as client,
    ):
        time.sleep(2)
        idle_pss, idle_count = tree_pss(s.roots())
        idle_pids = below(s.roots())
        print(f"idle: {idle_count} processes, PSS {idle_pss / MB:.0f} MB", flush=True)
        start = time.monotonic()
        run_ids = parallel(lambda c, i: submit_sleep(c, args.sleep), args.runs, s.url)
        print(f"submitted {len(run_ids)} in {time.monotonic() - start:.1f} s", flush=True)
        deadline = time.monotonic() + args.start_timeout
        while True:
            current = states(client)
            running = sum(1 for r in run_ids if current.get(r) == "RUNNING")
            if running == len(run_ids) or time.monotonic() > deadline:
                break
            if any(current.get(r) in TERMINAL for r in run_ids):
                ended = {current[r] for r in run_ids if current.get(r) in TERMINAL}
                print(f"some runs ended before all ran: {ended}", flush=True)
                break
            time.sleep(1)
        print(
            f"RUNNING: {running} of {len(run_ids)} after {time.monotonic() - start:.1f} s",
            flush=True,
        )
        # RUNNING is recorded as the engine starts: wait until each run's `sleep` has started
        # too, for at most five minutes. The tools are counted by name: the engines are not
        # always new processes, as a run may take a spare the zygote forked while idle.
        settle = time.monotonic() + 300
        while tools_running(s.roots()) < running and time.monotonic() < settle:
            time.sleep(3)
        print(f"tools started after {time.monotonic() - start:.1f} s", flush=True)
        active_pss, active_count = tree_pss(s.roots())
        print(f"largest: {largest(s.roots())}", flush=True)
        per_run = (active_pss - idle_pss) / max(1, running)
        print(
            f"memory: {active_count} processes, PSS {active_pss / MB:.0f} MB with {running} "
            f"running (idle {idle_pss / MB:.0f} MB): {per_run / MB:.1f} MB per run",
            flush=True,
        )
        if mode == "distributed":
            print(f"redis used_memory {redis_used_memory(s.cluster.redis_port) / MB:.1f} MB")
        sample_latency(client, run_ids, args.sample_seconds)
        if args.kill_worker and mode == "embedded":
            idle_pids |= adopt_after_worker_kill(s, client, run_ids)
            sample_latency(client, run_ids, args.sample_seconds)
        current = states(client)
        gone = [r for r in run_ids if current.get(r) != "RUNNING"]
        if gone:
            print(f"{len(gone)} runs no longer RUNNING before the cancels: use a longer --sleep")
        run_ids = [r for r in run_ids if current.get(r) == "RUNNING"]
        cancel_sent: dict[str, float] = {}

        def cancel(c: httpx.Client, i: int) -> str:
            cancel_sent[run_ids[i]] = time.monotonic()
            c.post(f"{API}/runs/{run_ids[i]}/cancel").raise_for_status()
            return run_ids[i]

        cancel_start = time.monotonic()
        parallel(cancel, len(run_ids), s.url)
        print(f"cancel requests answered in {time.monotonic() - cancel_start:.1f} s", flush=True)
        canceled_after: dict[str, float] = {}
        deadline = time.monotonic() + args.cancel_timeout
        while len(canceled_after) < len(run_ids) and time.monotonic() < deadline:
            current = states(client)
            now = time.monotonic()
            for run_id in run_ids:
                if run_id not in canceled_after and current.get(run_id) == "CANCELED":
                    canceled_after[run_id] = now - cancel_sent[run_id]
            time.sleep(0.2)
        times = list(canceled_after.values())
        late = sum(1 for t in times if t > 10)
        print(
            f"cancel -> CANCELED for {len(times)} of {len(run_ids)} runs, seconds: "
            f"{summary(times) if times else '-'}; {late} over 10 s; all done "
            f"{time.monotonic() - cancel_start:.1f} s after the first cancel",
            flush=True,
        )
        time.sleep(2)
        left, spares = left_below(s.roots(), idle_pids)
        print(
            f"processes left below the servers after the cancels: {len(left)}"
            f"{': ' + ', '.join(left) if left else ''} (and {spares} new spare engine "
            "children of the zygote, which keeps up to two ready while the CPUs are idle)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", default="embedded,distributed")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--sleep", type=int, default=120)
    parser.add_argument("--sample-seconds", type=float, default=20.0)
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--cancel-timeout", type=float, default=120.0)
    parser.add_argument("--lease-ttl", type=float, default=None)
    parser.add_argument(
        "--kill-worker",
        action="store_true",
        help="embedded: SIGKILL the worker holding the runs, then time their adoption",
    )
    args = parser.parse_args()
    stop_on_signals()
    for mode in args.mode.split(","):
        bench_mode(mode, args)


if __name__ == "__main__":
    main()
