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
