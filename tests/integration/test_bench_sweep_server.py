"""bench/bench_sweep_server.py at a small scale: the server's own retention loop sweeps every
run while the script polls, for this checkout and a baseline (the full run is a benchmark)."""

from __future__ import annotations

import pytest

from tests.processes import BENCH, run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_server_sweeps_its_history_while_the_script_polls() -> None:
    result = run_bench(
        "bench_sweep_server.py",
        "--runs",
        "2000",
        "--small",
        "20",
        "--repeat",
        "5",
        "--baseline",
        str(BENCH.parent),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded 2,000 runs" in result.stdout
    for label in ("this checkout", "baseline"):
        assert f"== {label}" in result.stdout, result.stdout
    assert result.stdout.count("in-server sweep of 2,000 runs:") == 2, result.stdout
    assert "not finished" not in result.stdout, result.stdout
