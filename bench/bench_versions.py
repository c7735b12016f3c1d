"""This checkout against an earlier one, side by side: is the new code slower?

Starts one embedded ``toolchest-wes serve`` from this checkout and one from ``--baseline``
(another checkout, for example ``git worktree add /tmp/base <commit>``), each importing its own
code (``PYTHONPATH``) with this virtualenv's libraries. Then, taking turns between the two
servers so that both see the same machine load, it measures:

1. hello-world submit -> COMPLETE, polling the status every 10 ms (after 3 warm-up runs each),
   and, as a separate figure, the same polling every 1 ms: the 10 ms poll adds 5 ms on
   average to a run's measured time whatever the server does, and the finer poll shows more
   of the server's own latency (at the price of more requests while the run runs); and, for
   a server whose status requests take ``?wait=`` (service-info's
   ``toolchest_wes_status_wait``), the same with one held status request per run, which
   answers the moment the run ends (a baseline without it is polled every 10 ms in that row);
2. ``GET /runs?page_size=10``;
3. ``GET /runs/{id}/status``;
4. with ``--throughput N``: hello-world runs per second, several ways. Closed loop:
   ``--submitters`` threads (default 4) each submit a run and poll its status every 10 ms until
   it ends, then submit the next, until ``N`` runs are COMPLETE. Open loop: the same threads
   submit ``N`` runs as fast as the server answers, without waiting for them, while one more
   thread reads ``system_state_counts`` from ``GET /service-info`` every 100 ms until ``N``
   more runs are COMPLETE; with ``--lean``, the open loop again with submitters that send a
   body built once over ``http.client`` (a tenth of httpx's CPU per POST, so that the client
   takes less of the cores the server needs). Where this server holds status requests, one
   more loop is the closed one with a held status request per run instead of polls (what the
   SDK's ``wait`` does; a baseline without them polls). Each way, runs/s = ``N`` / the wall
   time from the first submit to the last COMPLETE. The closed loop's status polls (hundreds
   a second) cost the server and the client as much CPU as the runs themselves on two cores,
   so the open loop is the figure for what the server can run. The two servers take turns,
   ``--rounds`` rounds each (default 3), and the median round is quoted. Both servers start
   with ``--max-concurrent-runs`` equal to the number of submitters. With each rate it prints
   the CPU time per run of the server's whole process tree (API, executor threads, zygote,
   engine processes and their tools) and of this script's threads, which unlike the rates
   hardly move with the load of a shared machine: two cores divided by their sum bound the
   rate.

It prints the medians and the ratio this/baseline of each; a ratio near 1.0 means no change.

Usage: python bench/bench_versions.py --baseline DIR [--runs 30] [--requests 400]
       [--throughput 120 [--submitters 8] [--rounds 3] [--lean]] [--skip-latency]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _common import (
    API,
    HELLO,
    ROOT,
    embedded_server,
    process_tree_cpu_ms,
    server_pid,
    stop_on_signals,
    submit_hello,
)

from toolchest_wes.client._core import STATUS_WAIT_EXTENSION
from toolchest_wes.models import State


def hello(client: httpx.Client, poll_s: float = 0.01, *, held: bool = False) -> str:
    """Submit hello-world and poll its status every ``poll_s`` until it ends, or, ``held``,
    ask for the status with ``?wait=30`` (the server answers once the run has ended); its
    run id."""
    run_id = submit_hello(client)
    params = {"wait": "30"} if held else None
    while True:
        answer = client.get(f"{API}/runs/{run_id}/status", params=params, timeout=60)
        state = State(answer.json()["state"])
        if state.is_terminal:
            if state is not State.COMPLETE:
                raise RuntimeError(f"run {run_id} ended {state}")
            return run_id
        if not held:
            time.sleep(poll_s)


class LeanSubmitter:
    """POSTs hello-world over one kept-alive connection, with the request body built once.

    A load generator competes with the server for the machine's two cores; httpx spends
    about 4 ms of CPU on building and sending each multipart POST, this about a tenth of it.
    """

    def __init__(self, url: str) -> None:
        request = httpx.Request(
            "POST",
            f"{url}{API}/runs",
            data={
                "workflow_type": "CWL",
                "workflow_type_version": "v1.2",
                "workflow_url": HELLO.name,
                "workflow_params": json.dumps({"message": "bench"}),
            },
            files=[("workflow_attachment", (HELLO.name, HELLO.read_bytes()))],
        )
        self.body = request.read()
        self.headers = {"Content-Type": request.headers["Content-Type"]}
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)

    def submit(self) -> None:
        """One POST /runs; raises unless it answers 200."""
        self.connection.request("POST", f"{API}/runs", self.body, self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /runs answered {response.status}: {body[:200]!r}")

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def holds_status(client: httpx.Client) -> bool:
    """Whether the server's status requests take ``wait`` (service-info says so)."""
    return STATUS_WAIT_EXTENSION in client.get(f"{API}/service-info").json()


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


def throughput(
    url: str,
    runs: int,
    submitters: int,
    *,
    wait_each: bool,
    held: bool = False,
    lean: bool = False,
) -> float:
    """Hello-world runs per second: ``submitters`` threads, each with its own connection,
    submit runs one after another until ``runs`` are COMPLETE, each waiting for its run to
    end (``wait_each``: with 10 ms polls, or with held status requests where ``held``) or
    not (open loop, watched through ``GET /service-info``; with ``LeanSubmitter``s where
    ``lean``)."""
    left = [runs]
    lock = threading.Lock()

    def completed(client: httpx.Client) -> int:
        counts = client.get(f"{API}/service-info").json()["system_state_counts"]
        failed = sum(counts.get(s, 0) for s in ("EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"))
        if failed:
            raise RuntimeError(f"runs ended badly: {counts}")
        return int(counts.get("COMPLETE", 0))

    def take() -> bool:
        with lock:
            if left[0] == 0:
                return False
            left[0] -= 1
            return True

    def submitter() -> int:
        done = 0
        if lean:
            lean_submitter = LeanSubmitter(url)
            while take():
                lean_submitter.submit()
                done += 1
            lean_submitter.close()
            return done
        with httpx.Client(base_url=url, timeout=60) as client:
            while take():
                if wait_each:
                    hello(client, held=held)
                else:
                    submit_hello(client)
                done += 1
        return done

    with httpx.Client(base_url=url, timeout=60) as watcher:
        before = completed(watcher)
        start = time.perf_counter()
        with ThreadPoolExecutor(submitters) as pool:
            submitted = sum(pool.map(lambda _: submitter(), range(submitters)))
            while not wait_each and completed(watcher) < before + runs:
                time.sleep(0.1)
        return submitted / (time.perf_counter() - start)


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
    parser.add_argument("--throughput", type=int, default=0, metavar="N")
    parser.add_argument("--submitters", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-latency", action="store_true", help="only the throughput")
    parser.add_argument(
        "--lean", action="store_true", help="also the open loop with LeanSubmitter clients"
    )
    args = parser.parse_args()
    stop_on_signals()
    serve_args = ["--max-concurrent-runs", str(max(args.submitters, 2))]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        urls = {
            "this": stack.enter_context(embedded_server(Path(tmp) / "this", ROOT, serve_args)),
            "baseline": stack.enter_context(
                embedded_server(Path(tmp) / "base", args.baseline.resolve(), serve_args)
            ),
        }
        pids = {"this": server_pid(ROOT), "baseline": server_pid(args.baseline.resolve())}
        clients = {
            name: stack.enter_context(httpx.Client(base_url=url, timeout=30))
            for name, url in urls.items()
        }
        holds = {name: holds_status(client) for name, client in clients.items()}
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.throughput:
            for client in clients.values():
                for _ in range(3):
                    hello(client)
            loops = [(False, False, "open"), (True, False, "closed")]
            if args.lean:
                loops.insert(1, (False, False, "open, lean client"))
            if holds["this"]:
                loops.append((True, True, "closed, held status where taken"))
            for wait_each, held_loop, loop in loops:
                rates: dict[str, list[float]] = {name: [] for name in urls}
                server_cpu: dict[str, list[float]] = {name: [] for name in urls}
                client_cpu: dict[str, list[float]] = {name: [] for name in urls}
                for _ in range(args.rounds):
                    for name, url in urls.items():
                        before, mine = process_tree_cpu_ms(pids[name]), time.process_time()
                        rate = throughput(
                            url,
                            args.throughput,
                            args.submitters,
                            wait_each=wait_each,
                            held=held_loop and holds[name],
                            lean="lean" in loop,
                        )
                        rates[name].append(rate)
                        spent = process_tree_cpu_ms(pids[name]) - before
                        server_cpu[name].append(spent / args.throughput)
                        client_cpu[name].append(
                            (time.process_time() - mine) * 1000 / args.throughput
                        )
                this, base = (statistics.median(rates[n]) for n in ("this", "baseline"))
                spread = {n: sorted(round(r, 1) for r in rates[n]) for n in rates}
                print(
                    f"hello runs/s, {loop} loop ({args.throughput} runs, {args.submitters} "
                    f"submitters, {args.rounds} rounds): this {this:.1f} {spread['this']}, "
                    f"baseline {base:.1f} {spread['baseline']}, ratio {this / base:.2f}"
                )
                print(
                    "  CPU ms per run, server tree + client: "
                    + ", ".join(
                        f"{n} {statistics.median(server_cpu[n]):.1f} + "
                        f"{statistics.median(client_cpu[n]):.1f}"
                        for n in ("this", "baseline")
                    )
                )
        if args.skip_latency:
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            return
        report(
            f"hello submit->COMPLETE ({args.runs} runs)",
            alternate(clients, args.runs, lambda _, c: hello(c)),
        )
        report(
            f"hello submit->COMPLETE, 1 ms polls ({args.runs} runs)",
            alternate(clients, args.runs, lambda _, c: hello(c, 0.001)),
        )
        if any(holds.values()):
            # Three ways in turn, so that the held figure and the polled ones of both servers
            # see the same moments of the machine.
            ways = {
                **{f"{name}, held": (name, True) for name in clients if holds[name]},
                "this, 10 ms polls": ("this", False),
                "baseline, 10 ms polls": ("baseline", False),
            }
            medians = alternate(
                {way: clients[name] for way, (name, _) in ways.items()},
                args.runs,
                lambda way, c: hello(c, held=ways[way][1]),
            )
            print(
                f"hello submit->COMPLETE, held status (?wait=30) against 10 ms polls, taking "
                f"turns ({args.runs} runs): "
                + ", ".join(f"{way} {ms * 1000:.2f} ms" for way, ms in medians.items())
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
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
