"""LocalTaskRunner: runs still waiting at shutdown are left for the next start, and a run the
pool holds is not queued twice."""

from __future__ import annotations

import threading
import time

from toolchest_wes.runner.local_runner import LocalTaskRunner


class Blocking:
    """An ``execute`` that records each run and holds it until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = threading.Event()
        self.running = threading.Event()

    def __call__(self, run_id: str) -> None:
        self.started.append(run_id)
        self.running.set()
        self.release.wait(10)


def test_close_starts_no_waiting_run() -> None:
    execute = Blocking()
    runner = LocalTaskRunner(execute, workers=1)
    runner.submit("executing")
    assert execute.running.wait(10)
    for i in range(3):
        runner.submit(f"waiting-{i}")

    runner.close()
    execute.release.set()
    for thread in runner._threads:
        thread.join(10)
        assert not thread.is_alive()

    # The waiting runs are still QUEUED in the store; the next start queues them again.
    assert execute.started == ["executing"]
    assert runner.queue_length() == 0


def _until_started(execute: Blocking, expected: list[str]) -> None:
    deadline = time.monotonic() + 10
    while execute.started != expected:
        assert time.monotonic() < deadline, execute.started
        time.sleep(0.01)


def test_a_run_the_pool_holds_is_not_queued_twice() -> None:
    execute = Blocking()
    runner = LocalTaskRunner(execute, workers=1)
    try:
        runner.submit("a")
        assert execute.running.wait(10)
        runner.submit("a")  # executing
        runner.submit("b")
        runner.submit("b")  # waiting
        assert runner.queue_length() == 1
        execute.release.set()
        _until_started(execute, ["a", "b"])
        # Once it has returned, the same id may be executed again (it no longer is QUEUED
        # in the store then, so execute_run does nothing with it).
        runner.submit("a")
        _until_started(execute, ["a", "b", "a"])
    finally:
        runner.close()
