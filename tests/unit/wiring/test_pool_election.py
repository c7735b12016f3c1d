"""PoolElection: which API process of an embedded server executes the runs, and the takeover
when it stops."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.runner.shared_pool import PoolLock, PoolRelay, SharedRunner, relay_address
from toolchest_wes.wiring.embedded import PoolElection, RunPool


class Process:
    """One API process's election, with a pool that records what it executes."""

    def __init__(self, data_dir: Path, queued: list[str], keeper: int | None = None) -> None:
        self.executed: list[str] = []
        self.recovered = threading.Event()
        self.relay = PoolRelay(relay_address(data_dir))
        self.shared = SharedRunner(self.relay, queued=lambda: 0)
        self.election = PoolElection(
            PoolLock(data_dir / "pool.lock"),
            self.shared,
            self._build,
            lambda: list(queued),
            retry_s=0.01,
            keeper=keeper,
        )

    def close(self) -> None:
        self.election.stop()
        self.shared.close()

    def _build(self, resources: ExitStack) -> RunPool:
        runner = LocalTaskRunner(self.executed.append, workers=1)
        resources.callback(runner.close)
        return RunPool(runner, self.recovered.set)


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_first_process_holds_the_pool_and_another_takes_it_when_it_stops(
    tmp_path: Path,
) -> None:
    queued: list[str] = []
    first, second = Process(tmp_path, queued), Process(tmp_path, queued)
    first.election.start()
    second.election.start()
    try:
        assert first.election.holds_pool and first.recovered.is_set()
        assert not second.election.holds_pool and not second.recovered.is_set()

        second.shared.submit("relayed")  # accepted by the second, executed by the first
        _until(lambda: first.executed == ["relayed"])

        first.election.stop()
        queued.append("waiting")  # left QUEUED in the store: the new holder's scan finds it
        _until(lambda: second.election.holds_pool)
        assert second.recovered.is_set()
        _until(lambda: second.executed == ["waiting"])
    finally:
        first.close()
        second.close()
    assert not first.shared.pool and not second.shared.pool


def test_a_retired_process_takes_no_pool_over(tmp_path: Path) -> None:
    first, second = Process(tmp_path, []), Process(tmp_path, [])
    first.election.start()
    second.election.start()
    try:
        second.election.retire()
        first.election.stop()
        time.sleep(0.1)  # ten of its retries
        assert not second.election.holds_pool
        lock = PoolLock(tmp_path / "pool.lock")
        assert lock.try_acquire()
        lock.release()
    finally:
        first.close()
        second.close()


def test_a_process_whose_arbiter_is_gone_takes_no_pool(tmp_path: Path) -> None:
    orphan = Process(tmp_path, [], keeper=os.getppid() + 1_000_000)
    orphan.election.start()
    try:
        time.sleep(0.05)
        assert not orphan.election.holds_pool
    finally:
        orphan.close()
