"""How ``list_runs(page_size=10)`` on the Redis store scales with the number of stored runs.

The listing walks a sorted set from the token's position, so a page should cost the same with
100 or 100,000 runs stored (target: ratio <= 1.5), for the first page and one deep in the
listing, with or without a state or tag filter. The script starts its own ``redis-server`` on a
free loopback port, fills two prefixes on it (pipelined calls of the store's create script),
times the listings on both with calls interleaved so that both see the same machine load, and
prints the medians side by side with their ratio (large / small).

It then times ``transition`` (one run moved between INITIALIZING and RUNNING), for a run
without webhooks and for one with webhooks (whose event the script records in the same
step). With ``--baseline FILE``, another version of ``_redis_scripts.py`` (say main's, from
``git show main:toolchest_wes/store/_redis_scripts.py``), its transition script is timed
side by side with this checkout's, calls interleaved, with the ratio (this / baseline).

    python bench/bench_redis_store.py [--small 100] [--large 100000] [--repeat 2000]
        [--baseline FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from _common import interleaved, middle_token, spawn_session, stop_on_signals, stop_session

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.bulk_load import load_redis
from toolchest_wes.store.outbox import RunHooks
from toolchest_wes.store.redis_outbox import RedisOutbox
from toolchest_wes.store.redis_store import RedisStateStore

PAGE_SIZE = 10
FILL_BATCH = 2000
#: One run in ten is RUNNING, the rest COMPLETE; one in five has project=p0, one in seven u0.
FILTERS: dict[str, dict[str, Any]] = {
    "no filter": {},
    "state=RUNNING": {"states": frozenset({State.RUNNING})},
    "state=COMPLETE": {"states": frozenset({State.COMPLETE})},
    "tag project=p0": {"tag": ("project", "p0")},
    "state=RUNNING + tag user=u0": {"states": frozenset({State.RUNNING}), "tag": ("user", "u0")},
}


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port; yields its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not on PATH")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", tmp, "--daemonize", "no"]
        proc = spawn_session(argv, stderr=None)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_session(proc, grace_s=30)


def fill(url: str, count: int) -> RedisStateStore:
    """A store under a fresh prefix holding ``count`` runs, written by the store's bulk
    loader: exactly the keys and indexes that ``create_run`` writes, in fewer round trips."""
    store = RedisStateStore(url, prefix=f"bench-{count}")
    now = time.time()

    def records() -> Iterator[RunRecord]:
        for i in range(count):
            state = State.RUNNING if i % 10 == 0 else State.COMPLETE
            yield RunRecord(
                run_id=f"run-{i:08d}",
                state=state,
                request=RunRequest(
                    workflow_url="https://example.org/workflows/hello.cwl",
                    workflow_type="CWL",
                    workflow_type_version="v1.2",
                    workflow_params={"message": f"hello {i}", "threads": 4},
                    tags={"project": f"p{i % 5}", "user": f"u{i % 7}"},
                ),
                created_at=now + i,
                start_time="2024-01-01T00:00:00Z",
                end_time=None if state is State.RUNNING else "2024-01-01T00:01:00Z",
                cmd=["cwltool", "hello.cwl", "job.json"],
                system_logs=["started"],
            )

    load_redis(store, records(), batch=FILL_BATCH)
    assert sum(store.count_by_state().values()) == count
    return store


def interleaved_medians(calls: Sequence[Callable[[], object]], repeat: int) -> tuple[float, float]:
    """Median microseconds of each call, alternating between the two after a warm-up."""
    samples = interleaved(calls, repeat, warmup=50)
    small, large = (statistics.median(times) * 1000 for times in samples)
    return small, large


def measure(
    stores: tuple[RedisStateStore, RedisStateStore], repeat: int
) -> dict[str, tuple[float, float] | None]:
    """Median microseconds of each listing on both stores; ``None`` where a page is missing."""
    results: dict[str, tuple[float, float] | None] = {}
    for name, filters in FILTERS.items():
        first = tuple(partial(s.list_runs, page_size=PAGE_SIZE, **filters) for s in stores)
        results[f"{name}, first page"] = interleaved_medians(first, repeat)
        tokens = [middle_token(s, PAGE_SIZE, **filters) for s in stores]
        if None in tokens:
            # The small store has a single page of these, so there is no middle page to time.
            results[f"{name}, middle page"] = None
            continue
        middle = tuple(
            partial(s.list_runs, page_size=PAGE_SIZE, page_token=t, **filters)
            for s, t in zip(stores, tokens, strict=True)
        )
        results[f"{name}, middle page"] = interleaved_medians(middle, repeat)
    gets = tuple(partial(s.get_state, "run-00000042") for s in stores)
    results["get_state (reference)"] = interleaved_medians(gets, repeat)
    return results


def _toggling(store: RedisStateStore, run_id: str) -> Callable[[], object]:
    """A call that moves the run between INITIALIZING and RUNNING, one way each time."""
    moves = [(State.INITIALIZING, State.RUNNING), (State.RUNNING, State.INITIALIZING)]
    count = [0]

    def move() -> object:
        before, after = moves[count[0] % 2]
        count[0] += 1
        assert store.transition(run_id, after, allowed_from=frozenset({before}))
        return None

    return move


def transition_stores(
    url: str, baseline: str | None
) -> list[tuple[str, RedisStateStore, Callable[[], object], Callable[[], object]]]:
    """Per kind of run, a store and two calls to time side by side.

    Without a baseline, the two are a run without webhooks and one with; with one, the same
    run on a store running the baseline's transition script and on one running this one's.
    """
    old = None
    if baseline is not None:
        spec = importlib.util.spec_from_file_location("baseline_scripts", baseline)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        old = module.TRANSITION
    stores = []
    for name in ("baseline", "this") if old is not None else ("this",):
        store = RedisStateStore(url, prefix=f"bench-transition-{name}")
        if name == "baseline":
            # The baseline script takes the first KEYS the current one does and ignores the rest.
            store._transition = store._client.register_script(old)
        outbox = RedisOutbox(url, prefix=store.prefix)
        outbox.register(RunHooks("hooked", None, "http://wes", "http://example.org/hook", "all"))
        outbox.close()
        for run_id in ("plain", "hooked"):
            request = RunRequest(
                workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x"
            )
            store.create_run(RunRecord(run_id, State.INITIALIZING, request, created_at=1.0))
        stores.append(store)
    rows = []
    for run_id, label in (("plain", "run without webhooks"), ("hooked", "run with webhooks")):
        calls = [_toggling(s, run_id) for s in stores]
        if old is None:
            calls = [_toggling(stores[0], "plain"), _toggling(stores[0], "hooked")]
            label = "without / with webhooks"
        rows.append((label, stores[-1], calls[0], calls[1]))
        if old is None:
            break
    return rows


def main() -> None:
    """Start Redis, fill both prefixes, time the listings and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--baseline", help="another _redis_scripts.py to time transitions against")
    args = parser.parse_args()
    stop_on_signals()

    with redis_server() as url:
        start = time.perf_counter()
        stores = (fill(url, args.small), fill(url, args.large))
        print(f"filled {args.small:,} + {args.large:,} runs in {time.perf_counter() - start:.1f} s")
        try:
            results = measure(stores, args.repeat)
        finally:
            for store in stores:
                store.close()
        transitions = []
        for label, store, first, second in transition_stores(url, args.baseline):
            transitions.append((label, interleaved_medians((first, second), args.repeat)))
            store.close()

    width = max(len(name) for name in results)
    small_col, large_col = f"{args.small:,} runs", f"{args.large:,} runs"
    print(f"list_runs(page_size={PAGE_SIZE}), median of {args.repeat} calls, microseconds")
    print(f"{'':{width}}  {small_col:>12}  {large_col:>14}  {'ratio':>6}")
    for name, pair in results.items():
        if pair is None:
            print(f"{name:{width}}  {'-':>12}  {'-':>14}  {'-':>6}")
        else:
            small_us, large_us = pair
            print(f"{name:{width}}  {small_us:12.1f}  {large_us:14.1f}  {large_us / small_us:6.2f}")

    first_col, second_col = ("baseline", "this") if args.baseline else ("without", "with")
    print(f"\ntransition, median of {args.repeat} calls, microseconds")
    print(f"{'':{width}}  {first_col:>12}  {second_col:>14}  {'ratio':>6}")
    for label, (first_us, second_us) in transitions:
        print(f"{label:{width}}  {first_us:12.1f}  {second_us:14.1f}  {second_us / first_us:6.2f}")


if __name__ == "__main__":
    main()
