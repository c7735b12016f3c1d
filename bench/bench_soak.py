"""Soak: a steady mix of runs against the distributed mode for an hour, sampling every minute
what could drift (memory, file descriptors, Redis, the data directory, latency).

Starts redis-server, the API (`toolchest-wes serve --redis … --workers 2`) and two workers
(`toolchest-wes worker`) on free loopback ports, as bench_distributed.py does, with a short
``--retention-days`` so that outputs are swept while the soak runs. Then it submits ``--rate``
runs per second on an open-loop schedule (submission i is due at i / rate seconds, whatever
the answers before it took, so a slow server shows as latency and schedule lag, not as a lower
rate), from a small thread pool:

- 80% hello-world (examples/hello), which end COMPLETE;
- 10% bench/fail.cwl, a tool that exits 3, which end EXECUTOR_ERROR;
- 10% bench/sleep.cwl (120 s), cancelled ``--cancel-after`` seconds after the POST.

Every POST carries an Idempotency-Key, as the SDK sends one; each answered run is then read
with GET /runs/{id}/status, and each submission also reads GET /runs?page_size=10. Every
answer 5xx and every connection error is counted.

The history grows by some 70,000 runs an hour at 20 runs/s. With ``--history N`` it stays
at about N runs instead: once a second, the oldest runs past the newest N that have ended
are read (GET /runs/{id}/status, to check how each ended) and deleted (DELETE /runs/{id}),
so that what drifts with the history can be told apart from what drifts with time.

Each ``--sample-seconds`` (60) it samples:
- RSS and PSS (smaps_rollup) and open descriptors (/proc/PID/fd) of the long-lived processes
  of the API (gunicorn master and workers), of the Celery workers (main process, zygote) and
  of redis-server; the processes of a worker younger than half an interval (the engine and
  tool children of runs) are reported apart, as a count and their RSS;
- Redis ``used_memory`` (INFO memory), the number of keys, the stored runs and the
  idempotency keys, and the memory per stored run (the history grows by design; a leak shows
  as growth of the memory per run);
- the data directory's size and file count, and every SQLite file (database, -wal, -shm) in
  it, and the size per stored run;
- median and p99 latency of POST /runs, GET /runs/{id}/status and GET /runs?page_size=10
  over the interval, and the p99 lag of submissions behind their schedule.

After ``--minutes`` it stops submitting, waits up to ``--drain`` seconds for every run to end,
and checks the goals of issue 18:
1. 0 lost runs: every run whose POST answered 200 is listed by GET /runs, paged to the end
   (or, with ``--history``, was deleted once it had ended);
2. 0 stuck runs: every one of them is terminal once the drain ends;
3. 0 answers 5xx and 0 connection errors.
It also reports runs that ended otherwise than their kind should (hello not COMPLETE, ...).

Growth: for each series, a least-squares line over the samples from minute ``--settle`` (5) to
the end gives the slope per hour relative to the value at minute 5, and the ratio of the last
sample to that one. A table is printed; ``--json`` writes every sample and the analysis, and
``--plot`` draws every series against minutes in one figure (matplotlib, the ``bench`` extra).
Runs of 10 minutes or more write both by default (bench/results/soak-<date>.json and
bench/soak.svg).

A full run lasts ``--minutes`` plus the drain (at most ``--drain``) plus about a minute to
start and stop; it prints a line every sample. Ctrl-C or SIGTERM stops it early, and every
process it started is killed (by process group) on the way out.

Usage: python bench/bench_soak.py [--minutes 60] [--rate 20] [--api-workers 2] [--workers 2]
       [--concurrency 4] [--retention-days 0.002] [--sample-seconds 60] [--settle 5]
       [--drain 300] [--history N] [--json PATH] [--plot PATH]
Needs redis-server on PATH; exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import heapq
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from _common import API, HELLO, list_all_runs, stop_on_signals
from bench_distributed import TERMINAL, Cluster

BENCH = Path(__file__).resolve().parent
FAIL = BENCH / "fail.cwl"
SLEEP = BENCH / "sleep.cwl"
#: Kind -> (workflow, its inputs, the state a run of that kind should end in).
KINDS: dict[str, tuple[Path, dict[str, Any], str]] = {
    "hello": (HELLO, {"message": "soak"}, "COMPLETE"),
    "fail": (FAIL, {}, "EXECUTOR_ERROR"),
    "cancel": (SLEEP, {"seconds": 120}, "CANCELED"),
}
#: Submission i's kind is MIX[i % 10]: 80% hello, 10% fail, 10% cancelled.
MIX = ["hello"] * 4 + ["fail"] + ["hello"] * 4 + ["cancel"]
ENDPOINTS = ("POST /runs", "GET /runs/{id}/status", "GET /runs?page_size=10")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ---------------------------------------------------------------------------------------
# Load


@dataclass
class Load:
    """What the clients saw: runs accepted, answers by endpoint and status, latencies."""

    accepted: dict[str, str] = field(default_factory=dict)  # run_id -> kind
    answers: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)  # the first few 5xx and connection errors
    # Latency samples (ms) and schedule lags (ms) of the current interval; swapped by take().
    latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    lag: list[float] = field(default_factory=list)
    submitted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, start: float, outcome: str) -> None:
        """One answer (``outcome`` is its status or the connection error's name)."""
        ms = (time.perf_counter() - start) * 1000
        with self.lock:
            self.answers[endpoint, outcome] += 1
            self.latency[endpoint].append(ms)
            if (not outcome.isdigit() or outcome >= "500") and len(self.errors) < 20:
                self.errors.append(f"{endpoint}: {outcome}")

    def take(self) -> tuple[dict[str, list[float]], list[float]]:
        """The latencies and lags since the last call."""
        with self.lock:
            latency, lag = self.latency, self.lag
            self.latency, self.lag = collections.defaultdict(list), []
        return latency, lag

    def failures(self) -> int:
        """Answers 5xx and connection errors so far."""
        with self.lock:
            return sum(n for (_, o), n in self.answers.items() if not o.isdigit() or o >= "500")


def request(
    load: Load, client: httpx.Client, endpoint: str, call: Callable[[], httpx.Response]
) -> httpx.Response | None:
    """``call()``, with its answer recorded under ``endpoint``; None on a connection error."""
    start = time.perf_counter()
    try:
        response = call()
    except httpx.HTTPError as exc:
        load.record(endpoint, start, type(exc).__name__)
        return None
    load.record(endpoint, start, str(response.status_code))
    return response


def post_run(client: httpx.Client, kind: str) -> httpx.Response:
    """POST a run of ``kind`` with an Idempotency-Key, as the SDK sends one."""
    workflow, params, _ = KINDS[kind]
    return client.post(
        f"{API}/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": workflow.name,
            "workflow_params": json.dumps(params),
            "tags": json.dumps({"soak": kind}),
        },
        files=[("workflow_attachment", (workflow.name, workflow.read_bytes()))],
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )


class Driver:
    """Submits on the open-loop schedule and cancels the sleep runs when they are due."""

    def __init__(self, url: str, load: Load, rate: float, cancel_after: float) -> None:
        self.url = url
        self.load = load
        self.rate = rate
        self.cancel_after = cancel_after
        self.local = threading.local()
        self.clients: list[httpx.Client] = []
        self.cancels: list[tuple[float, str]] = []  # heap of (due, run_id)
        self.lock = threading.Lock()

    def client(self) -> httpx.Client:
        """This thread's client (one connection pool per thread)."""
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(base_url=self.url, timeout=30)
            with self.lock:
                self.clients.append(self.local.client)
        client: httpx.Client = self.local.client
        return client

    def submit(self, i: int, due: float) -> None:
        """Submission ``i``: POST, then its status and the first page of the listing."""
        load, client, kind = self.load, self.client(), MIX[i % len(MIX)]
        with load.lock:
            load.lag.append((time.perf_counter() - due) * 1000)
            load.submitted += 1
        response = request(load, client, ENDPOINTS[0], lambda: post_run(client, kind))
        if response is not None and response.status_code == 200:
            run_id = str(response.json()["run_id"])
            with load.lock:
                load.accepted[run_id] = kind
            if kind == "cancel":
                with self.lock:
                    heapq.heappush(self.cancels, (time.perf_counter() + self.cancel_after, run_id))
            request(load, client, ENDPOINTS[1], lambda: client.get(f"{API}/runs/{run_id}/status"))
        request(
            load, client, ENDPOINTS[2], lambda: client.get(f"{API}/runs", params={"page_size": 10})
        )

    def cancel(self, run_id: str) -> None:
        """POST /runs/{id}/cancel (counted, but not one of the sampled latencies)."""
        client = self.client()
        cancel = f"{API}/runs/{run_id}/cancel"
        request(self.load, client, "POST /runs/{id}/cancel", lambda: client.post(cancel))

    def run(self, seconds: float, stop: threading.Event) -> float:
        """Submit for ``seconds`` (or until ``stop``); the seconds it took."""
        start = time.perf_counter()
        pool = ThreadPoolExecutor(max(8, int(self.rate)), thread_name_prefix="soak")
        try:
            i = 0
            while not stop.is_set():
                now = time.perf_counter()
                if now - start >= seconds:
                    break
                while i < (now - start) * self.rate:
                    pool.submit(self.submit, i, start + i / self.rate)
                    i += 1
                with self.lock:
                    due = []
                    while self.cancels and self.cancels[0][0] <= now:
                        due.append(heapq.heappop(self.cancels)[1])
                for run_id in due:
                    pool.submit(self.cancel, run_id)
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
            # The submissions still in flight end (each request has a 30 s timeout) ...
            pool.shutdown(wait=True)
        finally:
            # ... unless interrupted: then nothing queued is sent.
            pool.shutdown(wait=False, cancel_futures=True)
        # The sleep runs still waiting for their cancel get it now: none should run 120 s.
        with self.lock:
            rest = [run_id for _, run_id in sorted(self.cancels)]
            self.cancels.clear()
        for run_id in rest:
            if stop.is_set():
                break
            self.cancel(run_id)
        for client in self.clients:
            client.close()
        return elapsed


class Pruner:
    """Keeps about ``keep`` runs stored: deletes the oldest accepted runs past the newest
    ``keep`` once they have ended, remembering how each ended."""

    def __init__(self, url: str, load: Load, keep: int) -> None:
        self.url = url
        self.load = load
        self.keep = keep
        self.ended: dict[str, str] = {}  # run id -> its terminal state, for deleted runs
        self._next = 0  # index in the accepted runs (in their order) of the next to look at
        self._later: list[str] = []  # runs looked at that had not ended yet

    def run(self, stop: threading.Event) -> None:
        """Prune once a second until ``stop``."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not stop.wait(1.0):
                self.prune(client)

    def prune(self, client: httpx.Client) -> None:
        """Delete what is past the newest ``keep`` runs and has ended."""
        with self.load.lock:
            accepted = list(self.load.accepted)
        excess = len(accepted) - len(self.ended) - self.keep
        candidates = self._later
        self._later = []
        while len(candidates) < excess and self._next < len(accepted):
            candidates.append(accepted[self._next])
            self._next += 1
        for run_id in candidates:
            if excess <= 0 or not self._delete(client, run_id):
                self._later.append(run_id)
            else:
                excess -= 1

    def _delete(self, client: httpx.Client, run_id: str) -> bool:
        status = request(
            self.load,
            client,
            "GET /runs/{id}/status (prune)",
            lambda: client.get(f"{API}/runs/{run_id}/status"),
        )
        if status is None or status.status_code != 200:
            return False
        state = str(status.json()["state"])
        if state not in TERMINAL:
            return False
        deleted = request(
            self.load, client, "DELETE /runs/{id}", lambda: client.delete(f"{API}/runs/{run_id}")
        )
        if deleted is None or deleted.status_code != 200:
            return False
        self.ended[run_id] = state
        return True


# ---------------------------------------------------------------------------------------
# Sampling


def process_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, age in seconds, command name) of every process on the machine."""
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    table: dict[int, tuple[int, float, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        table[int(entry.name)] = (int(fields[1]), uptime - int(fields[19]) / CLK_TCK, comm)
    return table


def descendants(roots: list[int], table: dict[int, tuple[int, float, str]]) -> list[int]:
    """``roots`` and every process below them (by parent; the zygote and the run children
    start sessions of their own, so sessions would miss them)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)
    found, todo = [], [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def process_memory(pid: int) -> tuple[float, float, int] | None:
    """(RSS MiB, PSS MiB, open descriptors) of ``pid``; None if it has gone."""
    try:
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        pss_kb = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss_kb = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None
    return rss_pages * PAGE_KB / 1024, pss_kb / 1024, fds


def sample_processes(groups: dict[str, list[int]], young_s: float) -> dict[str, Any]:
    """Per group (the process trees under its roots): the long-lived processes' totals and each
    one, and the processes younger than ``young_s`` (the runs' children) apart."""
    table = process_table()
    out: dict[str, Any] = {}
    for name, roots in groups.items():
        group: dict[str, Any] = {"rss_mb": 0.0, "pss_mb": 0.0, "fds": 0, "procs": {}}
        young = {"count": 0, "rss_mb": 0.0}
        for pid in descendants(roots, table):
            memory = process_memory(pid)
            if memory is None:
                continue
            rss, pss, fds = memory
            _, age, comm = table[pid]
            if age < young_s:
                young["count"] += 1
                young["rss_mb"] += rss
                continue
            group["rss_mb"] += rss
            group["pss_mb"] += pss
            group["fds"] += fds
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                cmd = comm
            group["procs"][str(pid)] = {
                "cmd": cmd.strip()[-90:],
                "rss_mb": round(rss, 1),
                "pss_mb": round(pss, 1),
                "fds": fds,
            }
        out[name] = group
        out[f"{name}_children"] = young
    return out


def sample_redis(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Redis memory, keys, stored runs and idempotency keys (a SCAN: a few ms per 10⁵ keys)."""
    info = client.info("memory")
    idem = sum(1 for _ in client.scan_iter(match=f"{prefix}:idem:*", count=5000))
    runs = int(client.zcard(f"{prefix}:runs"))
    counts = client.hgetall(f"{prefix}:counts")
    return {
        # Runs not yet terminal: a backlog that grows means the workers fall behind the rate.
        "unfinished": sum(int(n) for state, n in counts.items() if state not in TERMINAL),
        "used_memory_mb": int(info["used_memory"]) / 2**20,
        "rss_mb": int(info["used_memory_rss"]) / 2**20,
        "keys": int(client.dbsize()),
        "runs": runs,
        "idempotency_keys": idem,
    }


def sample_data_dir(root: Path) -> dict[str, Any]:
    """Size and file count of the data directory, and each SQLite file in it."""
    size = files = 0
    sqlite: dict[str, int] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            try:
                bytes_ = path.lstat().st_size
            except OSError:
                continue  # swept while we walked
            size += bytes_
            files += 1
            if name.endswith((".db", ".sqlite", ".sqlite3", "-wal", "-shm", "-journal")):
                sqlite[str(path.relative_to(root))] = bytes_
    return {"mb": size / 2**20, "files": files, "sqlite_bytes": sqlite}


def summarize(
    minute: float,
    procs: dict[str, Any],
    redis_info: dict[str, Any],
    data: dict[str, Any],
    latency: dict[str, list[float]],
    lag: list[float],
    failures: int,
) -> dict[str, Any]:
    """One sample: the flat series analysed and plotted, and the details kept in the JSON."""
    runs = max(1, redis_info["runs"])
    series: dict[str, float] = {
        "api_rss_mb": procs["api"]["rss_mb"],
        "api_pss_mb": procs["api"]["pss_mb"],
        "api_fds": procs["api"]["fds"],
        "worker_rss_mb": procs["worker"]["rss_mb"],
        "worker_pss_mb": procs["worker"]["pss_mb"],
        "worker_fds": procs["worker"]["fds"],
        "worker_children": procs["worker_children"]["count"],
        "redis_server_rss_mb": procs["redis"]["rss_mb"],
        "redis_used_memory_mb": redis_info["used_memory_mb"],
        "redis_keys": redis_info["keys"],
        "redis_runs": redis_info["runs"],
        "redis_idempotency_keys": redis_info["idempotency_keys"],
        "unfinished_runs": redis_info["unfinished"],
        "redis_bytes_per_run": redis_info["used_memory_mb"] * 2**20 / runs,
        "data_dir_mb": data["mb"],
        "data_dir_files": data["files"],
        "data_dir_bytes_per_run": data["mb"] * 2**20 / runs,
        "sqlite_bytes": sum(data["sqlite_bytes"].values()),
        "errors_5xx_total": failures,
        "lag_p99_ms": percentile(lag, 0.99),
    }
    for endpoint, short in zip(ENDPOINTS, ("post", "status", "list"), strict=True):
        series[f"{short}_p50_ms"] = percentile(latency.get(endpoint, []), 0.5)
        series[f"{short}_p99_ms"] = percentile(latency.get(endpoint, []), 0.99)
    return {
        "minute": round(minute, 2),
        "series": {k: round(v, 3) for k, v in series.items()},
        "requests": {e: len(v) for e, v in latency.items()},
        "processes": procs,
        "redis": redis_info,
        "data_dir": data,
    }


# ---------------------------------------------------------------------------------------
# Analysis and report


def growth(samples: list[dict[str, Any]], settle: float) -> dict[str, dict[str, float]]:
    """Per series: the value at the first sample from minute ``settle``, the last value, their
    ratio and the least-squares slope over those samples, per hour, relative to the first."""
    late = [s for s in samples if s["minute"] >= settle - 1e-6]
    if len(late) < 2:
        late = samples[len(samples) // 2 :]
    out: dict[str, dict[str, float]] = {}
    if len(late) < 2:
        return out
    for name in late[0]["series"]:
        points = [
            (s["minute"], s["series"][name]) for s in late if s["series"][name] == s["series"][name]
        ]
        if len(points) < 2:
            continue
        xs, ys = zip(*points, strict=True)
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
        first, last = ys[0], ys[-1]
        out[name] = {
            "from_minute": xs[0],
            "first": first,
            "last": last,
            "ratio_last_first": last / first if first else float("nan"),
            "slope_per_hour": slope * 60,
            "slope_per_hour_rel": slope * 60 / first if first else float("nan"),
        }
    return out


def added_per_run(analysis: dict[str, dict[str, float]]) -> dict[str, float]:
    """Bytes of Redis memory and of the data directory per run stored since the start of the
    analysis: what the history costs, without the fixed base that the per-run series carry."""
    runs = analysis.get("redis_runs")
    if not runs or runs["last"] <= runs["first"]:
        return {}
    added = runs["last"] - runs["first"]
    return {
        name: (analysis[name]["last"] - analysis[name]["first"]) * 2**20 / added
        for name in ("redis_used_memory_mb", "data_dir_mb")
        if name in analysis
    }


#: Series that grow with the history by design (or count since the start): their growth is
#: not drift; the per-run series next to them are what to read.
HISTORY = {
    "redis_used_memory_mb",
    "redis_server_rss_mb",
    "redis_keys",
    "redis_runs",
    "redis_idempotency_keys",
    "errors_5xx_total",
}


def print_table(analysis: dict[str, dict[str, float]]) -> None:
    """The growth table, one series a line; slope per hour relative to the starting value."""
    print(f"{'series':<24} {'at start':>12} {'last':>12} {'last/start':>10} {'slope/h':>9}")
    for name, a in analysis.items():
        print(
            f"{name:<24} {a['first']:>12.5g} {a['last']:>12.5g} "
            f"{a['ratio_last_first']:>10.3f} {a['slope_per_hour_rel']:>+9.1%}"
            + ("  (history)" if name in HISTORY else "")
        )


def plot(samples: list[dict[str, Any]], path: Path, title: str, settle: float) -> None:
    """Every series against minutes, one small panel each, into ``path`` (SVG or PNG); a
    dotted line marks minute ``settle``, where the growth analysis starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples[0]["series"])
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.4 * rows), squeeze=False)
    minutes = [s["minute"] for s in samples]
    for ax, name in zip(axes.flat, names, strict=False):
        ax.plot(minutes, [s["series"][name] for s in samples], marker=".", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.axvline(settle, color="grey", linestyle=":", linewidth=1)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("minute", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path)
    plt.close(fig)


def drain(url: str, accepted: list[str], load: Load, seconds: float) -> dict[str, str]:
    """Run id -> state from GET /runs once every accepted run is terminal, or when ``seconds``
    run out; each listing's requests count toward the 5xx total if they fail."""
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as client:
        while True:
            try:
                listed = {str(r["run_id"]): str(r["state"]) for r in list_all_runs(client)}
            except httpx.HTTPStatusError as exc:
                load.record("GET /runs (drain)", time.perf_counter(), str(exc.response.status_code))
                listed = {}
            except httpx.HTTPError as exc:
                load.record("GET /runs (drain)", time.perf_counter(), type(exc).__name__)
                listed = {}
            pending = [r for r in accepted if listed.get(r) not in TERMINAL]
            if (listed and not pending) or time.monotonic() > deadline:
                return listed
            time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=20, help="submissions per second")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--retention-days", type=float, default=0.002, help="the server's (0.002: ~3 minutes)"
    )
    parser.add_argument("--sample-seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=5, help="minutes before growth counts")
    parser.add_argument("--cancel-after", type=float, default=1.5)
    parser.add_argument("--drain", type=float, default=300, help="seconds for runs to end")
    parser.add_argument(
        "--history", type=int, default=0, help="keep about this many runs stored (0: all)"
    )
    parser.add_argument("--json", type=Path, help="write samples and analysis here")
    parser.add_argument("--plot", type=Path, help="draw the series here (.svg or .png)")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not on PATH")
    if args.minutes >= 10:
        today = datetime.date.today().isoformat()
        args.json = args.json or BENCH / "results" / f"soak-{today}.json"
        args.plot = args.plot or BENCH / "soak.svg"

    stop = threading.Event()
    # Out of the load loop and into the finally below, which stops what was started.
    stop_on_signals()
    total = args.minutes + args.drain / 60 + 1
    print(
        f"soak: {args.minutes:g} min at {args.rate:g} runs/s, then a drain of at most "
        f"{args.drain:g} s: about {total:.0f} min in all; one line every "
        f"{args.sample_seconds:g} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        cluster = Cluster(Path(tmp), args)
        cluster.env["TOOLCHEST_WES_RETENTION_DAYS"] = str(args.retention_days)
        # Sweep each minute, so that outputs go about when they expire.
        cluster.env["TOOLCHEST_WES_RETENTION_SWEEP_INTERVAL_S"] = "60"
        try:
            passed = soak(cluster, args, stop)
        except KeyboardInterrupt:
            print("soak: interrupted; stopping everything it started", flush=True)
            passed = False
        finally:
            stop.set()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            cluster.stop()
            # Tens of thousands of run directories take a while to remove on a busy disk.
            print("soak: everything stopped; removing the temporary data directory", flush=True)
    sys.exit(0 if passed else 1)


def soak(cluster: Cluster, args: argparse.Namespace, stop: threading.Event) -> bool:
    """Start the cluster, load it, sample it, drain, check and report; whether goals hold."""
    cluster.start_redis()
    prefix = f"soak-{uuid.uuid4().hex[:8]}"
    cluster.start_workers(prefix)
    url = cluster.start_api(prefix)
    groups = {
        "redis": [cluster.procs[0].pid],
        "worker": [p.pid for p in cluster.procs[1:-1]],
        "api": [cluster.procs[-1].pid],
    }
    print(
        f"soak: API gunicorn x{args.api_workers}, {args.workers} Celery workers "
        f"x{args.concurrency}, redis-server, on {os.cpu_count()} CPUs; load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    load = Load()
    driver = Driver(url, load, args.rate, args.cancel_after)
    samples: list[dict[str, Any]] = []
    rclient = redis.Redis.from_url(cluster.redis_url, decode_responses=True)
    young_s = min(30.0, args.sample_seconds / 2)
    start = time.perf_counter()

    def sampler() -> None:
        tick = 1
        while not stop.wait(max(0.0, start + tick * args.sample_seconds - time.perf_counter())):
            latency, lag = load.take()
            sample = summarize(
                (time.perf_counter() - start) / 60,
                sample_processes(groups, young_s),
                sample_redis(rclient, prefix),
                sample_data_dir(cluster.tmp / "shared"),
                latency,
                lag,
                load.failures(),
            )
            samples.append(sample)
            s = sample["series"]
            print(
                f"[{sample['minute']:5.1f} min] runs {s['redis_runs']:.0f}, API RSS "
                f"{s['api_rss_mb']:.0f} MiB fds {s['api_fds']:.0f}, worker RSS "
                f"{s['worker_rss_mb']:.0f} MiB fds {s['worker_fds']:.0f} "
                f"(+{s['worker_children']:.0f} children), Redis "
                f"{s['redis_used_memory_mb']:.1f} MiB "
                f"({s['redis_bytes_per_run']:.0f} B/run), data dir {s['data_dir_mb']:.1f} MiB; "
                f"p99 POST {s['post_p99_ms']:.0f} status {s['status_p99_ms']:.0f} list "
                f"{s['list_p99_ms']:.0f} ms; {s['unfinished_runs']:.0f} unfinished; 5xx/errors "
                f"{s['errors_5xx_total']:.0f}; load "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
            tick += 1

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    pruner = Pruner(url, load, args.history)
    pruning = threading.Thread(target=pruner.run, args=(stop,), daemon=True)
    if args.history:
        pruning.start()
    elapsed = driver.run(args.minutes * 60, stop)
    if stop.is_set():
        raise KeyboardInterrupt
    stop.set()
    thread.join(60)
    if args.history:
        pruning.join(60)
    achieved = load.submitted / elapsed
    print(
        f"soak: {load.submitted} submissions in {elapsed:.0f} s = {achieved:.2f}/s "
        f"(asked {args.rate:g}/s); draining (at most {args.drain:g} s)",
        flush=True,
    )
    drain_start = time.perf_counter()
    # Runs deleted to keep the history had ended; the drain waits for the others.
    listed = drain(url, [r for r in load.accepted if r not in pruner.ended], load, args.drain)
    drained_s = time.perf_counter() - drain_start
    rclient.close()

    # A deleted run had ended: its state then stands for the listing's.
    listed = {**pruner.ended, **listed}
    lost = [r for r in load.accepted if r not in listed]
    stuck = [r for r in load.accepted if r in listed and listed[r] not in TERMINAL]
    failures = load.failures()
    endings: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for run_id, kind in load.accepted.items():
        endings[kind][listed.get(run_id, "NOT LISTED")] += 1
    wrong = {
        kind: {s: n for s, n in counts.items() if s != KINDS[kind][2]}
        for kind, counts in endings.items()
    }
    wrong = {k: v for k, v in wrong.items() if v}
    analysis = growth(samples, args.settle)
    if analysis:
        print_table(analysis)
    per_added = added_per_run(analysis)
    if per_added:
        print(
            f"soak: per run added since minute {analysis['redis_runs']['from_minute']:g}: "
            + ", ".join(f"{k} {v:.0f} B" for k, v in per_added.items())
        )
    answers = {f"{e} {o}": n for (e, o), n in sorted(load.answers.items())}
    print(f"soak: answers {answers}")
    print(f"soak: endings { ({k: dict(v) for k, v in sorted(endings.items())}) }")
    if wrong:
        print(f"soak: runs that ended otherwise than their kind should: {wrong}")
    if load.errors:
        print(f"soak: first errors {load.errors}")
    print(
        f"soak: {len(load.accepted)} accepted ({len(pruner.ended)} of them deleted once "
        f"ended), {len(lost)} lost, {len(stuck)} stuck after a {drained_s:.0f} s drain, "
        f"{failures} answers 5xx or connection errors"
    )
    passed = not lost and not stuck and not failures
    print("soak: every goal met" if passed else "soak: goals MISSED", flush=True)

    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_end": os.getloadavg(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "submitted": load.submitted,
        "achieved_rate": achieved,
        "accepted": len(load.accepted),
        "lost": len(lost),
        "stuck": len(stuck),
        "errors_5xx": failures,
        "drain_s": drained_s,
        "deleted": len(pruner.ended),
        "answers": answers,
        "endings": {k: dict(v) for k, v in endings.items()},
        "wrong_endings": wrong,
        "growth": analysis,
        "bytes_per_added_run": per_added,
        "samples": samples,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"soak: wrote {args.json}")
    if args.plot and samples:
        title = (
            f"bench_soak.py: {args.minutes:g} min at {args.rate:g} runs/s "
            f"({achieved:.1f} achieved)"
            + (f", history kept at {args.history:,} runs" if args.history else "")
            + f", {result['date']}"
        )
        plot(samples, args.plot, title, args.settle)
        print(f"soak: wrote {args.plot}")
    return passed


if __name__ == "__main__":
    main()
