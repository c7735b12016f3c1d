"""bench/bench_history.py at a small scale: it loads both stores, measures both servers in both
modes and sweeps the whole history (the full run, a million runs, is a benchmark)."""

from __future__ import annotations

import pytest

from tests.processes import run_bench
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_history_benchmark_runs_and_sweeps_every_run(redis_server: RedisServer) -> None:
    # redis_server: only for its skip-or-fail rule; the script starts a redis-server of its own.
    result = run_bench("bench_history.py", "--runs", "300", "--small", "20", "--repeat", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in ("embedded", "distributed"):
        assert f"{mode}: loaded 300 runs" in result.stdout
    assert result.stdout.count("sweep of 300 runs: finished") == 2, result.stdout
    assert result.stdout.count("300 runs swept") == 2, result.stdout
