"""The embedded server's own retention loop over a long history: status p99 while it sweeps.

``bench_history.py`` times ``toolchest-wes sweep``, a process of its own. A server with
retention on runs the same sweep in its own process instead, on a thread of the gunicorn worker
that holds the run pool, where it competes with that worker's requests for the GIL as well as
for the cores. This script fills a SQLite store with ``--runs`` finished runs (all ended two
days ago, as in ``bench_history.py``) and a second one with ``--small``, starts ``toolchest-wes
serve`` on each, the large one with ``--retention-days 1`` so that its retention loop sweeps
the whole history from the moment it starts, and polls the status of an old run on both
servers, calls interleaved, until no run of the large store keeps its outputs. Then it takes
``--repeat`` more calls to each with the sweep over.

Since the sweep starts with the server, the reference is p99 just after the sweep rather than
before it (goal: during / after under 2; the small server, which does not sweep, shows what
the machine alone does). With ``--baseline DIR`` it does the same for the code of another
checkout, on a copy of the same stores, right after, so that the two compare side by side.

    python bench/bench_sweep_server.py [--runs 1000000] [--small 100] [--repeat 1000]
        [--baseline DIR] [--sweep-seconds 900]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _common import API, ROOT, embedded_server, interleaved, stop_on_signals
from bench_history import OLD_RUN, p99, records

from toolchest_wes.store.bulk_load import load_embedded

DB = "runs.sqlite"


def outputs_kept(db: Path) -> bool:
    """Whether any run of the store still keeps its outputs (one probe of the sweep's index)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (kept,) = conn.execute(
            "SELECT EXISTS(SELECT 1 FROM runs WHERE outputs_removed_at IS NULL "
            "AND end_time IS NOT NULL)"
        ).fetchone()
    return bool(kept)


def fill(path: Path, count: int) -> Path:
    """A data directory whose store holds ``count`` finished runs."""
    path.mkdir()
    start = time.perf_counter()
    load_embedded(path / DB, records(count))
    print(f"loaded {count:,} runs in {time.perf_counter() - start:.1f} s")
    return path


def measure(label: str, code: Path, small: Path, large: Path, args: argparse.Namespace) -> None:
    """Start both servers from ``code``, poll while the large one sweeps, and print p99s."""
    status = f"{API}/runs/{OLD_RUN}/status"
    with (
        embedded_server(small, code=code) as small_url,
        embedded_server(large, code=code, serve_args=["--retention-days", "1"]) as large_url,
        httpx.Client(timeout=60) as client,
    ):

        def call(url: str) -> None:
            client.get(f"{url}{status}").raise_for_status()

        calls = (lambda: call(small_url), lambda: call(large_url))
        during_small: list[float] = []
        during_large: list[float] = []
        start = time.monotonic()
        finished = False
        while time.monotonic() - start < args.sweep_seconds:
            if not outputs_kept(large / DB):
                finished = True
                break
            a, b = interleaved(calls, 20, warmup=0)
            during_small += a
            during_large += b
        elapsed = time.monotonic() - start
        after_small, after_large = interleaved(calls, args.repeat)
    print(f"\n== {label} ({code})")
    if not during_large:
        print(f"in-server sweep of {args.runs:,} runs: over before the first poll")
        return
    how = "finished" if finished else "not finished"
    ratio_large = p99(during_large) / p99(after_large)
    ratio_small = p99(during_small) / p99(after_small)
    print(f"in-server sweep of {args.runs:,} runs: {how} {elapsed:.1f} s after the server answered")
    print(
        f"status p99 on {args.runs:,} runs: during the sweep {p99(during_large):.2f} ms "
        f"({len(during_large)} calls), after {p99(after_large):.2f} ms, ratio {ratio_large:.2f}"
    )
    print(
        f"status p99 on {args.small:,} runs (no sweep): during {p99(during_small):.2f} ms, "
        f"after {p99(after_small):.2f} ms, ratio {ratio_small:.2f}"
    )
    print(
        f"status median on {args.runs:,} runs: during {statistics.median(during_large):.2f} ms, "
        f"after {statistics.median(after_large):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1000, help="calls each after the sweep")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured after this")
    parser.add_argument("--sweep-seconds", type=float, default=900)
    parser.add_argument("--tmp", help="where to put the stores (default: the system's temp)")
    args = parser.parse_args()
    stop_on_signals()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    trees = [("this checkout", ROOT)]
    if args.baseline is not None:
        trees.append(("baseline", args.baseline.resolve()))
    with tempfile.TemporaryDirectory(prefix="bench-sweep-server-", dir=args.tmp) as tmp:
        small = fill(Path(tmp) / "small", args.small)
        large = fill(Path(tmp) / "large", args.runs)
        for i, (label, code) in enumerate(trees):
            # A fresh copy of both stores, so that each code tree sweeps the same history.
            copies = [shutil.copytree(d, Path(tmp) / f"{d.name}-{i}") for d in (small, large)]
            measure(label, code, copies[0], copies[1], args)
            for copy in copies:
                shutil.rmtree(copy)


if __name__ == "__main__":
    main()
