"""The worker supervisor restarts a worker that dies unasked, with backoff, and stops on a
forwarded signal; the workers here are real child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.worker.supervisor import Supervisor

# A worker that dies the first ``fail`` times it starts (as told by argv), then exits 0.
FLAKY = """
import os, pathlib, signal, sys
count = pathlib.Path(sys.argv[1])
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
if n < int(sys.argv[2]):
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(1)
"""
# A worker that runs until SIGTERM, then records the signal and exits 0.
WAITING = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: (out.write_text("TERM"), sys.exit(0)))
out.write_text("ready")
time.sleep(60)
"""


class FakeTime:
    """A clock that only moves when slept on, so backoff waits cost nothing; it records the
    wait before each start of the worker."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self._started_at: float | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        if self._started_at is not None:
            self.waits.append(round(self.now - self._started_at, 6))
        self._started_at = self.now
        return subprocess.Popen(*args, **kwargs)


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_crashed_worker_is_restarted_with_growing_backoff(tmp_path: Path, how: str) -> None:
    fake = FakeTime()
    supervisor = Supervisor(
        [sys.executable, "-c", FLAKY, str(tmp_path / "count"), "3", how],
        {},
        min_backoff_s=1,
        max_backoff_s=3,
        popen=fake.popen,
        clock=fake.clock,
        sleep=fake.sleep,
    )

    assert supervisor.run() == 0
    assert supervisor.restarts == 3
    assert (tmp_path / "count").read_text() == "4"
    assert fake.waits == [1, 2, 3]  # doubling, capped


def test_a_worker_that_ran_long_enough_restarts_after_the_shortest_wait(tmp_path: Path) -> None:
    fake = FakeTime()
    supervisor = Supervisor(
        [sys.executable, "-c", FLAKY, str(tmp_path / "count"), "3", "exit"],
        {},
        min_backoff_s=1,
        stable_after_s=0,  # every run counts as stable
        popen=fake.popen,
        clock=fake.clock,
        sleep=fake.sleep,
    )

    assert supervisor.run() == 0
    assert fake.waits == [1, 1, 1]


def test_a_stop_signal_is_forwarded_and_ends_supervision(tmp_path: Path) -> None:
    out = tmp_path / "out"
    supervisor = Supervisor([sys.executable, "-c", WAITING, str(out)], {})

    def stop_when_ready() -> None:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text() == "ready"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        supervisor.stop(signal.SIGINT)  # a terminal's Ctrl-C: Celery's warm shutdown

    stopper = threading.Thread(target=stop_when_ready)
    stopper.start()
    code = supervisor.run()
    stopper.join()

    assert code == 0
    assert out.read_text() == "TERM"
    assert supervisor.restarts == 0
