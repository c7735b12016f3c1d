"""The many-runs benchmark's worker kill, at a small scale: the embedded server's gunicorn
worker that executes the runs is SIGKILLed while runs are active, another worker takes the
pool over and adopts them all, and the cancels that follow stop the adopted runs and leave
no process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import BENCH, bench_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_runs_survive_a_killed_worker_and_are_cancelled_after_their_adoption() -> None:
    argv = ["bench_concurrent.py", "--mode", "embedded", "--runs", "3", "--sleep", "120"]
    done = subprocess.run(
        [sys.executable, *argv, "--sample-seconds", "1", "--kill-worker"],
        cwd=BENCH,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "took the run pool over and answered after" in output, output
    assert "after the kill: 3 of 3 RUNNING, other states none; tools running 3" in output, output
    assert "cancel -> CANCELED for 3 of 3 runs" in output, output
    assert "0 over 10 s" in output, output
    assert "processes left below the servers after the cancels: 0 " in output, output
