"""A benchmark stopped by hand, with SIGTERM or Ctrl-C, stops every process it started: its
servers (redis-server, the API's gunicorn, the Celery worker), their zygote, engines and
tools."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.processes import BENCH, bench_env
from tests.redis_server import RedisServer
from toolchest_wes.engines.proctree import descendants

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_benchmark_stopped_by_a_signal_leaves_no_process(
    redis_server: RedisServer, sig: signal.Signals
) -> None:
    # redis_server: only for its skip-or-fail rule; the script starts a redis-server of its own.
    argv = ["bench_concurrent.py", "--mode", "distributed", "--runs", "2", "--sleep", "300"]
    bench = subprocess.Popen(
        [sys.executable, *argv, "--sample-seconds", "120"],
        cwd=BENCH,
        env=bench_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own group, as a script in a terminal's foreground: a Ctrl-C goes to the group.
        start_new_session=True,
    )
    started: set[int] = set()
    try:
        assert bench.stdout is not None
        output = []
        for line in bench.stdout:
            output.append(line)
            if line.startswith("redis used_memory"):  # the runs are running, sampling begins
                break
        else:
            pytest.fail("".join(output))
        started = set(descendants(bench.pid))
        assert len(started) >= 7, started  # redis, gunicorn x3, worker x2, zygote, ...
        os.killpg(bench.pid, sig)
        rest, _ = bench.communicate(timeout=120)
        output.append(rest)
        assert "stopping what the benchmark started" in "".join(output), "".join(output)
        deadline = time.monotonic() + 10
        while left := {pid for pid in started if _alive(pid)}:
            assert time.monotonic() < deadline, f"left running: {left}\n{''.join(output)}"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bench.pid, signal.SIGKILL)
        # The servers live in sessions of their own: what a failed benchmark left running
        # must not stay behind for the rest of the suite.
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
