"""How ``list_runs(page_size=10)`` on the embedded store scales with the number of stored runs.

Keyset pagination should make a page cost the same whether 100 or 10,000 runs are stored, for
the first page and for one deep in the listing, with or without a state or tag filter. This
fills two databases, times each listing on both, and prints the medians side by side with
their ratio (large / small; about 1.0 means the page cost does not grow with the table).

    python bench/bench_store.py [--small 100] [--large 10000] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from _common import middle_token

from toolchest_wes.models import FAILED_STATES, RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore

PAGE_SIZE = 10
#: One run in ten is RUNNING, the rest COMPLETE; one in five has project=p0.
FILTERS: dict[str, dict[str, Any]] = {
    "no filter": {},
    "state=RUNNING": {"states": frozenset({State.RUNNING})},
    "state=RUNNING,COMPLETE": {"states": frozenset({State.RUNNING, State.COMPLETE})},
    "state=failed (none stored)": {"states": FAILED_STATES},
    "tag project=p0": {"tag": ("project", "p0")},
}


def fill(path: Path, count: int) -> EmbeddedStateStore:
    """A store at ``path`` holding ``count`` runs."""
    store = EmbeddedStateStore(path)
    for i in range(count):
        request = RunRequest(
            workflow_url="https://example.org/workflows/hello.cwl",
            workflow_type="CWL",
            workflow_type_version="v1.2",
            workflow_params={"message": f"hello {i}", "threads": 4},
            tags={"project": f"p{i % 5}", "user": f"u{i % 7}"},
        )
        store.create_run(
            RunRecord(
                run_id=f"run-{i:08d}",
                state=State.RUNNING if i % 10 == 0 else State.COMPLETE,
                request=request,
                created_at=time.time(),
                start_time="2024-01-01T00:00:00Z",
                end_time=None if i % 10 == 0 else "2024-01-01T00:01:00Z",
                cmd=["cwltool", "hello.cwl", "job.json"],
                system_logs=["started"],
            )
        )
    return store


def median_us(call: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``call`` in microseconds, after a short warm-up."""
    for _ in range(min(50, repeat)):
        call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def measure(store: EmbeddedStateStore, repeat: int) -> dict[str, float | None]:
    """Median microseconds of each listing on ``store``; ``None`` where there is no such page."""
    results: dict[str, float | None] = {}
    for name, filters in FILTERS.items():
        first = partial(store.list_runs, page_size=PAGE_SIZE, **filters)
        results[f"{name}, first page"] = median_us(first, repeat)
        token = middle_token(store, PAGE_SIZE, **filters)
        middle = partial(store.list_runs, page_size=PAGE_SIZE, page_token=token, **filters)
        results[f"{name}, middle page"] = None if token is None else median_us(middle, repeat)
    results["get_state (reference)"] = median_us(partial(store.get_state, "run-00000042"), repeat)
    return results


def main() -> None:
    """Fill both databases, time the listings and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        stores = [fill(Path(tmp) / f"{n}.db", n) for n in (args.small, args.large)]
        try:
            small, large = (measure(store, args.repeat) for store in stores)
        finally:
            for store in stores:
                store.close()

    width = max(len(name) for name in small)
    small_col, large_col = f"{args.small:,} runs", f"{args.large:,} runs"
    print(f"list_runs(page_size={PAGE_SIZE}), median of {args.repeat} calls, microseconds")
    print(f"{'':{width}}  {small_col:>12}  {large_col:>12}  {'ratio':>6}")
    for name, small_us in small.items():
        large_us = large[name]
        if small_us is None or large_us is None:
            # The small table has a single page of these, so there is no middle page to time.
            print(f"{name:{width}}  {_us(small_us)}  {_us(large_us)}  {'-':>6}")
        else:
            print(f"{name:{width}}  {_us(small_us)}  {_us(large_us)}  {large_us / small_us:6.2f}")


def _us(value: float | None) -> str:
    return f"{'-':>12}" if value is None else f"{value:12.1f}"


if __name__ == "__main__":
    main()
