"""The parts of an embedded server's shared run pool: the lock that elects the process that
executes runs, and the relay of run ids to it."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.runner.shared_pool import (
    PoolLock,
    PoolRelay,
    RelayListener,
    SharedRunner,
    relay_address,
)


def test_one_holder_at_a_time_even_within_a_process(tmp_path: Path) -> None:
    first, second = PoolLock(tmp_path / "pool.lock"), PoolLock(tmp_path / "pool.lock")
    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    assert first.holder() == os.getpid()
    first.release()
    assert second.try_acquire()
    second.release()


def test_the_lock_is_free_once_its_holder_has_died(tmp_path: Path) -> None:
    path = tmp_path / "pool.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from toolchest_wes.runner.shared_pool import PoolLock; "
            "assert PoolLock(pathlib.Path(sys.argv[1])).try_acquire(); print('held', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        lock = PoolLock(path)
        assert not lock.try_acquire()
        assert lock.holder() == holder.pid
        holder.kill()
        holder.wait(10)
        assert lock.try_acquire()
        assert lock.holder() == os.getpid()
        lock.release()


def test_addresses_differ_per_data_folder(tmp_path: Path) -> None:
    assert relay_address(tmp_path / "a") != relay_address(tmp_path / "b")
    assert relay_address(tmp_path / "a") == relay_address(tmp_path / "x" / ".." / "a")
    assert relay_address(tmp_path).startswith(b"\0")


def _listener(
    tmp_path: Path, queued: list[str], scan_interval_s: float = 3600
) -> tuple[RelayListener, queue.Queue[str]]:
    got: queue.Queue[str] = queue.Queue()
    listener = RelayListener(
        relay_address(tmp_path), got.put, lambda: list(queued), scan_interval_s=scan_interval_s
    )
    return listener, got


def test_relayed_run_ids_reach_the_pool_and_noise_does_not(tmp_path: Path) -> None:
    listener, got = _listener(tmp_path, [])
    relay = PoolRelay(relay_address(tmp_path))
    listener.start()
    try:
        relay._sock.sendto(b"not a run id!", relay_address(tmp_path))
        relay.submit("run-1")
        relay.cancel("run-1")  # nothing to relay
        assert got.get(timeout=10) == "run-1"
        assert got.empty()
    finally:
        relay.close()
        listener.stop()


def test_a_run_relayed_while_no_pool_listens_is_found_by_the_scan(tmp_path: Path) -> None:
    relay = PoolRelay(relay_address(tmp_path))
    relay.submit("lost")  # no listener: the datagram is dropped, the call does not fail
    relay.close()
    listener, got = _listener(tmp_path, ["lost"], scan_interval_s=0.05)
    listener.start()
    try:
        assert got.get(timeout=10) == "lost"
    finally:
        listener.stop()


def test_a_second_listener_cannot_bind_the_same_address(tmp_path: Path) -> None:
    first, _ = _listener(tmp_path, [])
    second, _ = _listener(tmp_path, [])
    first.bind()
    try:
        with pytest.raises(OSError, match="in use"):
            second.bind()
    finally:
        first.stop()
        second.stop()


def test_the_shared_runner_relays_until_it_holds_the_pool(tmp_path: Path) -> None:
    listener, got = _listener(tmp_path, [])
    listener.start()
    executed: list[str] = []
    done = threading.Event()

    def execute(run_id: str) -> None:
        executed.append(run_id)
        done.set()

    pool = LocalTaskRunner(execute, workers=1)
    shared = SharedRunner(PoolRelay(relay_address(tmp_path)), queued=lambda: 7)
    try:
        assert shared.pool is None and shared.queue_length() == 7
        shared.submit("relayed")
        assert got.get(timeout=10) == "relayed"
        shared.attach(pool)
        shared.submit("here")
        assert done.wait(10)
        assert executed == ["here"] and got.empty()
        assert shared.queue_length() == 0
    finally:
        shared.close()
        pool.close()
        listener.stop()


def test_a_burst_larger_than_the_kernels_datagram_queue_arrives_whole(tmp_path: Path) -> None:
    """The kernel queues a few datagrams per socket (net.unix.max_dgram_qlen, 10 here by
    default); a burst of submissions from many request threads must wait for the pool to
    read, not drop the rest for the scan to find a second later."""
    got: list[str] = []

    def slow_submit(run_id: str) -> None:
        time.sleep(0.001)
        got.append(run_id)

    listener = RelayListener(relay_address(tmp_path), slow_submit, lambda: [], scan_interval_s=3600)
    listener.start()
    relay = PoolRelay(relay_address(tmp_path))
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: relay.submit(f"run-{i}"), range(200)))
        deadline = time.monotonic() + 30
        while len(got) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(got) == sorted(f"run-{i}" for i in range(200))
    finally:
        relay.close()
        listener.stop()
