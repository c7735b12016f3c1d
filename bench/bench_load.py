"""Load: 1,000 POST /runs from 32 concurrent clients against the distributed mode, then
checks that nothing was lost or invented.

Starts redis-server, the API (`toolchest-wes serve --redis … --workers 2`) and two workers
(`toolchest-wes worker`) on free loopback ports, as bench_distributed.py does. Each
submission of the hello-world example carries a tag with a unique client id. Once every
run is terminal (bounded wait), it checks:

1. every 200 answer names a different run_id;
2. GET /runs, paged to the end, lists exactly as many runs as there were 200 answers, and
   each 200's run_id among them;
3. every listed run carries the client id of a submission that got a 200 with that run_id
   (no run exists without a 200);
4. every run is in a terminal state.

It prints the runs by state, the non-200 answers by status, submit latency (median, p95)
and times, and exits 1 if any check fails.

Usage: python bench/bench_load.py [--submissions 1000] [--clients 32] [--workers 2]
       [--concurrency 4] [--timeout 900]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import list_all_runs, post_hello, stop_on_signals
from bench_distributed import TERMINAL, Cluster

TAG_BATCH = "load-batch"
TAG_CLIENT = "client-id"


@dataclass
class Answer:
    client_id: str
    status: str  # the HTTP status, or the transport error's name
    run_id: str | None
    seconds: float


def submit_all(url: str, batch: str, submissions: int, clients: int) -> list[Answer]:
    """POST /runs ``submissions`` times from ``clients`` threads, each with its own client."""
    local = threading.local()
    opened: list[httpx.Client] = []

    def one(i: int) -> Answer:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=60)
            opened.append(local.client)
        client_id = f"{batch}-{i}"
        start = time.perf_counter()
        try:
            response = post_hello(local.client, f"m{i}", {TAG_BATCH: batch, TAG_CLIENT: client_id})
        except httpx.HTTPError as exc:
            return Answer(client_id, type(exc).__name__, None, time.perf_counter() - start)
        elapsed = time.perf_counter() - start
        run_id = response.json().get("run_id") if response.status_code == 200 else None
        return Answer(client_id, str(response.status_code), run_id, elapsed)

    try:
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(one, range(submissions)))
    finally:
        for client in opened:
            client.close()


def wait_terminal(client: httpx.Client, timeout: float) -> list[dict[str, object]]:
    """The full listing once every run is terminal, or as it is when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        runs = list_all_runs(client)
        if all(r["state"] in TERMINAL for r in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def check(answers: list[Answer], runs: list[dict[str, object]]) -> list[str]:
    """The invariants of the module docstring; returns what failed, empty if nothing."""
    failures: list[str] = []
    accepted = {a.run_id: a for a in answers if a.status == "200"}
    ok = [a for a in answers if a.status == "200"]
    if len(accepted) != len(ok):
        failures.append(f"{len(ok) - len(accepted)} run_ids were answered twice")
    listed = {str(r["run_id"]): r for r in runs}
    if len(runs) != len(ok):
        failures.append(f"{len(runs)} runs listed for {len(ok)} answers 200")
    missing = [run_id for run_id in accepted if run_id not in listed]
    if missing:
        failures.append(f"{len(missing)} runs answered 200 are not listed, e.g. {missing[0]}")
    unmatched = [
        run_id
        for run_id, run in listed.items()
        if run_id not in accepted
        or (run.get("tags") or {}).get(TAG_CLIENT) != accepted[run_id].client_id  # type: ignore[union-attr]
    ]
    if unmatched:
        failures.append(f"{len(unmatched)} runs match no answer 200, e.g. {unmatched[0]}")
    unfinished = [r for r in runs if r["state"] not in TERMINAL]
    if unfinished:
        failures.append(f"{len(unfinished)} runs are not terminal, e.g. {unfinished[0]}")
    return failures


def run_load(url: str, args: argparse.Namespace) -> bool:
    """Submit, wait, check and print the report; whether every check passed."""
    batch = uuid.uuid4().hex[:12]
    start = time.perf_counter()
    answers = submit_all(url, batch, args.submissions, args.clients)
    submitted = time.perf_counter() - start
    with httpx.Client(base_url=url, timeout=60) as client:
        runs = wait_terminal(client, args.timeout)
    total = time.perf_counter() - start
    failures = check(answers, runs)

    latencies = sorted(a.seconds * 1000 for a in answers)
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    statuses = collections.Counter(a.status for a in answers if a.status != "200")
    states = collections.Counter(str(r["state"]) for r in runs)
    ok = sum(1 for a in answers if a.status == "200")
    print(
        f"load: {args.submissions} POST /runs from {args.clients} clients in {submitted:.1f} s "
        f"({args.submissions / submitted:.0f}/s): {ok} answered 200, other answers "
        f"{dict(statuses) or 'none'}; submit latency median {statistics.median(latencies):.0f} "
        f"ms, p95 {p95:.0f} ms"
    )
    print(
        f"load: {len(runs)} runs listed, by state {dict(sorted(states.items()))}; all terminal "
        f"{total:.1f} s after the first submission"
    )
    for failure in failures:
        print(f"load: FAILED: {failure}")
    print("load: every check passed" if not failures else "load: checks FAILED")
    return not failures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait for every run to end"
    )
    args = parser.parse_args()
    stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        cluster = Cluster(Path(tmp), args)
        try:
            cluster.start_redis()
            prefix = f"load-{uuid.uuid4().hex[:8]}"
            cluster.start_workers(prefix)
            passed = run_load(cluster.start_api(prefix), args)
        finally:
            cluster.stop()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
