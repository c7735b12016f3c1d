"""This checkout against an earlier one, side by side: is the new code slower?

Starts one embedded ``toolchest-wes serve`` from this checkout and one from ``--baseline``
(another checkout, for example ``git worktree add /tmp/base <commit>``), each importing its own
code (``PYTHONPATH``) with this virtualenv's libraries. Then, taking turns between the two
servers so that both see the same machine load, it measures:

1. hello-world submit -> COMPLETE, polling the status every 10 ms (after 3 warm-up runs each);
2. ``GET /runs?page_size=10``;
3. ``GET /runs/{id}/status``.

It prints the medians and the ratio this/baseline of each; a ratio near 1.0 means no change.

Usage: python bench/bench_versions.py --baseline DIR [--runs 30] [--requests 400]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
from _common import API, ROOT, embedded_server, stop_on_signals, submit_hello

from toolchest_wes.models import State


def hello(client: httpx.Client) -> str:
    """Submit hello-world and poll until it ends; its run id."""
    run_id = submit_hello(client)
    while True:
        state = State(client.get(f"{API}/runs/{run_id}/status").json()["state"])
        if state.is_terminal:
            if state is not State.COMPLETE:
                raise RuntimeError(f"run {run_id} ended {state}")
            return run_id
        time.sleep(0.01)


def alternate(
    clients: dict[str, httpx.Client], count: int, call: Callable[[str, httpx.Client], object]
) -> dict[str, float]:
    """Median seconds of ``call(name, client)`` per client, taking turns, after 3 warm-up
    calls each."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(count + 3):
        for name, client in clients.items():
            start = time.perf_counter()
            call(name, client)
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(label: str, medians: dict[str, float]) -> None:
    this, base = medians["this"], medians["baseline"]
    print(
        f"{label}: this {this * 1000:.2f} ms, baseline {base * 1000:.2f} ms, "
        f"ratio {this / base:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    stop_on_signals()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        urls = {
            "this": stack.enter_context(embedded_server(Path(tmp) / "this", ROOT)),
            "baseline": stack.enter_context(
                embedded_server(Path(tmp) / "base", args.baseline.resolve())
            ),
        }
        clients = {
            name: stack.enter_context(httpx.Client(base_url=url, timeout=30))
            for name, url in urls.items()
        }
        report(
            f"hello submit->COMPLETE ({args.runs} runs)",
            alternate(clients, args.runs, lambda _, c: hello(c)),
        )
        last = {name: hello(client) for name, client in clients.items()}
        report(
            f"GET /runs?page_size=10 ({args.requests} requests)",
            alternate(
                clients,
                args.requests,
                lambda _, c: c.get(f"{API}/runs", params={"page_size": 10}).raise_for_status(),
            ),
        )
        report(
            f"GET /runs/{{id}}/status ({args.requests} requests)",
            alternate(
                clients,
                args.requests,
                lambda name, c: c.get(f"{API}/runs/{last[name]}/status").raise_for_status(),
            ),
        )


if __name__ == "__main__":
    main()
