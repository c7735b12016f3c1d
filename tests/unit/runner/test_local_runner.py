"""LocalTaskRunner's shutdown: runs still waiting are left for the next start."""

from __future__ import annotations

import threading

from toolchest_wes.runner.local_runner import LocalTaskRunner


def test_close_starts_no_waiting_run() -> None:
    started: list[str] = []
    release = threading.Event()
    running = threading.Event()

    def execute(run_id: str) -> None:
        started.append(run_id)
        running.set()
        release.wait(10)

    runner = LocalTaskRunner(execute, workers=1)
    runner.submit("executing")
    assert running.wait(10)
    for i in range(3):
        runner.submit(f"waiting-{i}")

    runner.close()
    release.set()
    for thread in runner._threads:
        thread.join(10)
        assert not thread.is_alive()

    # The waiting runs are still QUEUED in the store; the next start queues them again.
    assert started == ["executing"]
    assert runner.queue_length() == 0


def test_a_run_the_pool_holds_is_not_queued_twice() -> None:
    started: list[str] = []
    release = threading.Event()
    running = threading.Event()

    def execute(run_id: str) -> None:
        started.append(run_id)
        running.set()
        release.wait(10)

    runner = LocalTaskRunner(execute, workers=1)
    try:
        runner.submit("a")
        assert running.wait(10)
        runner.submit("a")  # executing
        runner.submit("b")
        runner.submit("b")  # waiting
        assert runner.queue_length() == 1
        release.set()
        deadline = threading.Event()
        while started != ["a", "b"] and not deadline.wait(0.01):
            pass
        # Once it has returned, the same id may be executed again (it no longer is QUEUED
        # in the store then, so execute_run does nothing with it).
        runner.submit("a")
        while started != ["a", "b", "a"] and not deadline.wait(0.01):
            pass
    finally:
        runner.close()
    assert started == ["a", "b", "a"]
