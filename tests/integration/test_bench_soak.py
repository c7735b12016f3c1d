"""bench/bench_soak.py at a small scale: half a minute of the mix of runs, with the history kept
at 20 runs, ends with no run lost or stuck and no answer 5xx, and writes its samples and plot
(the full run, an hour at 20 runs/s, is a benchmark)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.processes import run_bench
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_short_soak_loses_nothing_and_writes_its_results(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # redis_server: only for its skip-or-fail rule; the script starts a redis-server of its own.
    results, plot = tmp_path / "soak.json", tmp_path / "soak.svg"
    result = run_bench(
        "bench_soak.py",
        *("--minutes", "0.5", "--rate", "4", "--sample-seconds", "10", "--settle", "0"),
        *("--drain", "120", "--history", "20", "--json", str(results), "--plot", str(plot)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every goal met" in result.stdout
    report = json.loads(results.read_text())
    assert report["accepted"] == report["submitted"] > 0
    assert (report["lost"], report["stuck"], report["errors_5xx"]) == (0, 0, 0)
    assert set(report["endings"]) == {"hello", "fail", "cancel"}
    assert report["samples"] and report["growth"]
    assert plot.read_text().lstrip().startswith("<?xml")
    # --history 20: about 120 runs went in and about 20 stay (more on a slow machine, where
    # runs queue); each deleted one had ended as its kind should.
    assert report["deleted"] >= report["accepted"] // 2
    assert not report["wrong_endings"]
    assert report["samples"][-1]["series"]["redis_runs"] < report["accepted"]
