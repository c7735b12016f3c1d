"""bench/bench_load.py at a small scale: its invariant check passes against the real
distributed topology (the full run, 1,000 submissions from 32 clients, is a benchmark)."""

from __future__ import annotations

import pytest

from tests.processes import run_bench
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_accepted_submission_is_one_run_that_ends(redis_server: RedisServer) -> None:
    # redis_server: only for its skip-or-fail rule; the script starts a redis-server of its own.
    result = run_bench("bench_load.py", "--submissions", "20", "--clients", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "20 answered 200" in result.stdout
    assert "every check passed" in result.stdout
