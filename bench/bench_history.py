"""A long history: the API with a million finished runs stored, against the same API with 100.

For each mode (embedded: ``toolchest-wes serve`` on its SQLite file; distributed: the API on a
``redis-server`` of its own, on a free loopback port), this fills two stores, one with
``--small`` and one with ``--runs`` finished runs, with the bulk loader
(``toolchest_wes.store.bulk_load``), starts a server on each, and measures over HTTP, calls to
the two servers interleaved so that both see the same machine load:

- ``GET /runs?page_size=10``: the first page and a page halfway down (its ``page_token``),
  without a filter, by state and by tag (goal: large / small within 1.5);
- ``GET /service-info`` (``system_state_counts``), and the status and RunLog of the oldest
  runs (goal: flat);
- the store's size per run (SQLite file and WAL, or Redis ``used_memory``) and the RSS of the
  server's processes (goal: RSS flat);
- ``toolchest-wes sweep`` over the whole history (every run ended 2 days ago; the sweep runs
  with ``--retention-days 1``, the servers with the default 7): p99 of status on the large
  server while the sweep runs against p99 just before it (goal: under 2; the small server,
  which is not swept, shows what the machine's load alone does to it), and how long the
  sweep took. The sweep is stopped after ``--sweep-seconds`` if it has not finished.

Every figure is a median (p99 where said) over ``--repeat`` calls to each server.

    python bench/bench_history.py [--runs 1000000] [--small 100] [--repeat 200]
        [--modes embedded,distributed] [--sweep-seconds 900]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import (
    API,
    ROOT,
    embedded_server,
    interleaved,
    spawn_session,
    stop_on_signals,
    stop_session,
)
from bench_distributed import Cluster
from bench_redis_store import redis_server

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord, StateStore, iso_time
from toolchest_wes.store.bulk_load import load_embedded, load_redis
from toolchest_wes.store.embedded_store import EmbeddedStateStore
from toolchest_wes.store.redis_store import RedisStateStore

PAGE_SIZE = 10
#: The run whose status and RunLog are read: among the first stored.
OLD_RUN = "run-00000002"
ENDED_AGO_S = 2 * 86400


def state_of(i: int) -> State:
    """Run ``i``'s state: one in twenty FAILED (EXECUTOR_ERROR), one in twenty CANCELED."""
    if i % 20 == 0:
        return State.EXECUTOR_ERROR
    if i % 20 == 1:
        return State.CANCELED
    return State.COMPLETE


#: The listings timed: query parameters, and which run numbers match them.
FILTERS: dict[str, tuple[dict[str, str], Callable[[int], bool]]] = {
    "no filter": ({}, lambda i: True),
    "state=COMPLETE": ({"state": "COMPLETE"}, lambda i: state_of(i) is State.COMPLETE),
    "state=EXECUTOR_ERROR": (
        {"state": "EXECUTOR_ERROR"},
        lambda i: state_of(i) is State.EXECUTOR_ERROR,
    ),
    "tag project=p0": ({"tag": "project:p0"}, lambda i: i % 5 == 0),
    "state=COMPLETE + tag user=u0": (
        {"state": "COMPLETE", "tag": "user:u0"},
        lambda i: state_of(i) is State.COMPLETE and i % 7 == 0,
    ),
}


def records(count: int) -> Iterator[RunRecord]:
    """``count`` finished runs, oldest first, all ended ``ENDED_AGO_S`` ago."""
    now = time.time()
    ended = iso_time(now - ENDED_AGO_S)
    started = iso_time(now - ENDED_AGO_S - 60)
    for i in range(count):
        state = state_of(i)
        yield RunRecord(
            run_id=f"run-{i:08d}",
            state=state,
            request=RunRequest(
                workflow_url="https://example.org/workflows/hello.cwl",
                workflow_type="CWL",
                workflow_type_version="v1.2",
                workflow_params={"message": f"hello {i}"},
                tags={"project": f"p{i % 5}", "user": f"u{i % 7}"},
            ),
            created_at=now - ENDED_AGO_S - 60,
            start_time=started,
            end_time=ended,
            exit_code=0 if state is State.COMPLETE else 1,
            cmd=["cwltool", "hello.cwl", "job.json"],
            system_logs=["started"],
            outputs={"greeting": {"class": "File", "path": "greeting.txt", "size": 12}},
        )


def store_filters(query: dict[str, str]) -> dict[str, Any]:
    """The ``list_runs`` arguments of a ``GET /runs`` query."""
    out: dict[str, Any] = {}
    if "state" in query:
        out["states"] = frozenset({State(query["state"])})
    if "tag" in query:
        out["tag"] = tuple(query["tag"].split(":", 1))
    return out


def deep_tokens(store: StateStore, count: int) -> dict[str, str | None]:
    """Per filter, the page token halfway down its matches (``None``: fewer than two)."""
    tokens: dict[str, str | None] = {}
    for name, (query, matches) in FILTERS.items():
        half = sum(1 for i in range(count) if matches(i)) // 2
        tokens[name] = None
        if half:
            page = store.list_runs(page_size=half, **store_filters(query))
            tokens[name] = page.next_page_token
    return tokens


@dataclass
class Server:
    """One server under test: its URL, processes, store and what the bench knows of it."""

    runs: int
    url: str
    pids: Callable[[], list[int]]
    store: StateStore
    store_bytes: Callable[[], int]
    sweep_argv: list[str]
    sweep_env: dict[str, str]
    kept: Callable[[], int]
    tokens: dict[str, str | None] = field(default_factory=dict)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def rss(self) -> int:
        """Bytes resident in the server's processes and their children."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                for p in [proc, *proc.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
        return total

    def get(self, path: str, **params: str) -> None:
        response = self.client.get(f"{self.url}{API}{path}", params=params)
        response.raise_for_status()


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else samples[0]


def measure(small: Server, large: Server, repeat: int) -> list[tuple[str, float, float]]:
    """Median milliseconds of each request on both servers."""
    rows: list[tuple[str, float, float]] = []
    pair = (small, large)

    def timed(name: str, path: str, params: tuple[dict[str, str], dict[str, str]]) -> None:
        calls = tuple(
            (lambda s=s, p=p: s.get(path, **p)) for s, p in zip(pair, params, strict=True)
        )
        a, b = interleaved(calls, repeat)  # type: ignore[arg-type]
        rows.append((name, statistics.median(a), statistics.median(b)))

    for name, (query, _) in FILTERS.items():
        first = dict(query, page_size=str(PAGE_SIZE))
        timed(f"GET /runs {name}, first page", "/runs", (first, first))
        small_token, large_token = small.tokens[name], large.tokens[name]
        if small_token and large_token:
            timed(
                f"GET /runs {name}, middle page",
                "/runs",
                (dict(first, page_token=small_token), dict(first, page_token=large_token)),
            )
    timed("GET /service-info", "/service-info", ({}, {}))
    timed(f"GET /runs/{OLD_RUN}/status", f"/runs/{OLD_RUN}/status", ({}, {}))
    timed(f"GET /runs/{OLD_RUN} (RunLog)", f"/runs/{OLD_RUN}", ({}, {}))
    return rows


def sweep(small: Server, large: Server, repeat: int, limit_s: float) -> list[str]:
    """Status p99 on the large server before and during a sweep of its whole history."""
    status = f"/runs/{OLD_RUN}/status"
    calls = (lambda: small.get(status), lambda: large.get(status))
    # p99 needs many samples: at least 1,000 calls to each server before the sweep.
    before_small, before_large = interleaved(calls, max(repeat, 1000))
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed once the sweep has ended)
    proc = spawn_session(large.sweep_argv, env=large.sweep_env, stderr=log)
    start = time.monotonic()
    during_small: list[float] = []
    during_large: list[float] = []
    try:
        while proc.poll() is None and time.monotonic() - start < limit_s:
            a, b = interleaved(calls, 20)
            during_small += a
            during_large += b
    finally:
        elapsed = time.monotonic() - start
        finished = proc.poll() is not None
        if not finished:
            stop_session(proc, grace_s=60)
        proc.wait(60)
    swept = large.runs - large.kept()
    how = "finished" if finished and proc.returncode == 0 else f"stopped (rc {proc.returncode})"
    if proc.returncode:
        log.seek(0)
        print(log.read().decode(errors="replace")[-2000:])
    log.close()
    lines = [
        f"sweep of {large.runs:,} runs: {how} after {elapsed:.1f} s, {swept:,} runs swept "
        f"({swept / elapsed:,.0f}/s)",
        f"status p99 on {large.runs:,} runs: before {p99(before_large):.2f} ms, during "
        f"{p99(during_large):.2f} ms, ratio {p99(during_large) / p99(before_large):.2f} "
        f"({len(during_large)} calls during)",
        f"status p99 on {small.runs:,} runs (no sweep): before {p99(before_small):.2f} ms, "
        f"during {p99(during_small):.2f} ms, ratio {p99(during_small) / p99(before_small):.2f}",
        f"status p99 during the sweep, {large.runs:,} runs / {small.runs:,} runs: "
        f"{p99(during_large) / p99(during_small):.2f}",
        f"status median on {large.runs:,} runs: before {statistics.median(before_large):.2f} "
        f"ms, during {statistics.median(during_large):.2f} ms",
    ]
    return lines


def report(mode: str, small: Server, large: Server, args: argparse.Namespace) -> None:
    """Measure both servers and print the tables."""
    rss_before = (small.rss(), large.rss())
    rows = measure(small, large, args.repeat)
    rss_after = (small.rss(), large.rss())
    width = max(len(r[0]) for r in rows)
    a, b = f"{small.runs:,} runs", f"{large.runs:,} runs"
    print(f"\n== {mode}: median of {args.repeat} calls each, ms, calls interleaved")
    print(f"{'':{width}}  {a:>12}  {b:>14}  {'ratio':>6}")
    for name, small_ms, large_ms in rows:
        print(f"{name:{width}}  {small_ms:12.2f}  {large_ms:14.2f}  {large_ms / small_ms:6.2f}")
    mib = 1024 * 1024
    for label, (s, lg) in (("RSS before", rss_before), ("RSS after", rss_after)):
        print(f"{label:{width}}  {s / mib:9.1f} MiB  {lg / mib:11.1f} MiB  {lg / s:6.2f}")
    size_s, size_l = small.store_bytes(), large.store_bytes()
    print(
        f"{'store bytes per run':{width}}  {size_s / small.runs:12.0f}  "
        f"{size_l / large.runs:14.0f}  (total {size_l / mib:.0f} MiB)"
    )
    if not args.no_sweep:
        for line in sweep(small, large, args.repeat, args.sweep_seconds):
            print(line)
    sys.stdout.flush()


def _serve_pids(port: int) -> list[int]:
    """This process's children listening on ``port`` (the server's gunicorn master)."""
    pids = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any(c.laddr.port == port for c in child.net_connections(kind="tcp")):
                pids.append(child.pid)
    return pids


def _sqlite_kept(path: Path) -> int:
    """Runs whose outputs are still kept (not swept)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE outputs_removed_at IS NULL"
        ).fetchone()
    return int(count)


def _sqlite_bytes(path: Path) -> Callable[[], int]:
    def size() -> int:
        return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*"))

    return size


@contextmanager
def embedded_pair(tmp: Path, sizes: tuple[int, int]) -> Iterator[tuple[Server, Server]]:
    """Two embedded servers, on stores filled with ``sizes`` runs."""
    servers: list[Server] = []
    with contextlib.ExitStack() as stack:
        for count in sizes:
            data_dir = tmp / f"embedded-{count}"
            data_dir.mkdir()
            db = data_dir / "runs.sqlite"
            start = time.perf_counter()
            load_embedded(db, records(count))
            print(f"embedded: loaded {count:,} runs in {time.perf_counter() - start:.1f} s")
            url = stack.enter_context(embedded_server(data_dir, code=ROOT))
            port = int(url.rsplit(":", 1)[1])
            store = EmbeddedStateStore(db)
            stack.callback(store.close)
            env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
            env["PYTHONPATH"] = str(ROOT)
            argv = [sys.executable, "-m", "toolchest_wes.cli.main", "sweep"]
            argv += ["--data-dir", str(data_dir), "--retention-days", "1"]
            server = Server(
                count,
                url,
                lambda port=port: _serve_pids(port),
                store,
                _sqlite_bytes(db),
                argv,
                env,
                lambda db=db: _sqlite_kept(db),
            )
            server.tokens = deep_tokens(store, count)
            stack.callback(server.client.close)
            servers.append(server)
        yield servers[0], servers[1]


@contextmanager
def distributed_pair(tmp: Path, sizes: tuple[int, int]) -> Iterator[tuple[Server, Server]]:
    """Two distributed APIs on one redis-server, each on a prefix filled with ``sizes`` runs."""
    cluster = Cluster(tmp, argparse.Namespace(api_workers=2, workers=0, concurrency=1))
    cluster.env["PYTHONPATH"] = str(ROOT)
    servers: list[Server] = []
    with redis_server() as redis_url, contextlib.ExitStack() as stack:
        cluster.redis_url = redis_url
        cluster.env["TOOLCHEST_WES_REDIS_URL"] = redis_url
        stack.callback(cluster.stop)
        for count in sizes:
            prefix = f"history-{count}"
            # A long timeout: the bench's own deep_tokens() reads half the history in one call.
            store = RedisStateStore(redis_url, prefix=prefix, socket_timeout_s=600)
            stack.callback(store.close)
            used_before = int(store._client.info("memory")["used_memory"])
            start = time.perf_counter()
            load_redis(store, records(count))
            took = time.perf_counter() - start
            used = int(store._client.info("memory")["used_memory"]) - used_before
            print(f"distributed: loaded {count:,} runs in {took:.1f} s")
            url = cluster.start_api(prefix)
            proc = cluster.procs[-1]
            env = dict(cluster.env, TOOLCHEST_WES_REDIS_PREFIX=prefix)
            argv = [
                sys.executable,
                "-m",
                "toolchest_wes.cli.main",
                "sweep",
                "--retention-days",
                "1",
            ]
            server = Server(
                count,
                url,
                lambda proc=proc: [proc.pid],
                store,
                lambda used=used: used,
                argv,
                env,
                lambda store=store: int(store._client.zcard(store._key("outputs-kept"))),
            )
            server.tokens = deep_tokens(store, count)
            stack.callback(server.client.close)
            servers.append(server)
        yield servers[0], servers[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--sweep-seconds", type=float, default=900)
    parser.add_argument("--no-sweep", action="store_true", help="skip the retention sweep")
    parser.add_argument("--tmp", help="where to put the stores (default: the system's temp)")
    args = parser.parse_args()
    stop_on_signals()
    if "distributed" in args.modes and shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    pairs = {"embedded": embedded_pair, "distributed": distributed_pair}
    for mode in args.modes.split(","):
        with (
            tempfile.TemporaryDirectory(dir=args.tmp) as tmp,
            pairs[mode](Path(tmp), (args.small, args.runs)) as (small, large),
        ):
            report(mode, small, large, args)


if __name__ == "__main__":
    main()
