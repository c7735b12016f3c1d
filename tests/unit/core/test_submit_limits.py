"""Submit limits: the token bucket and the per-user locks in files, which an embedded server's
processes share (each ``File*`` object here stands for one process: it opens the files
itself), and the messages of SubmitLimits."""

from __future__ import annotations

import threading

import pytest

from toolchest_wes.core.errors import TooManyRequestsError
from toolchest_wes.core.file_limits import FileRateLimiter, FileUserLocks
from toolchest_wes.core.limits import SubmitLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate(tmp_path):  # type: ignore[no-untyped-def]
    clock = Clock()
    one, other = FileRateLimiter(tmp_path, clock), FileRateLimiter(tmp_path, clock)

    assert [one.acquire("a", 1.0, 3), other.acquire("a", 1.0, 3), one.acquire("a", 1.0, 3)] == [
        0,
        0,
        0,
    ]
    assert other.acquire("a", 1.0, 3) == pytest.approx(1.0)
    assert other.acquire("b", 1.0, 3) == 0  # another key has its own bucket
    clock.now += 0.5
    assert one.acquire("a", 1.0, 3) == pytest.approx(0.5)
    clock.now += 0.5
    assert other.acquire("a", 1.0, 3) == 0
    clock.now += 100
    assert [one.acquire("a", 1.0, 3) for _ in range(4)][-1] > 0  # never above the burst


def test_check_rate_raises_with_retry_after(tmp_path):  # type: ignore[no-untyped-def]
    limiter = FileRateLimiter(tmp_path, Clock())
    limits = SubmitLimits(rate_per_minute=6, burst=1, rate_limiter=limiter)
    limits.check_rate("alice")
    limits.check_rate(None)

    with pytest.raises(TooManyRequestsError) as info:
        limits.check_rate("alice")

    assert info.value.retry_after_s == 10
    assert "6 per minute per user (bursts of 1); retry in 10 s" in info.value.msg


def test_no_rate_means_no_limit(tmp_path):  # type: ignore[no-untyped-def]
    limits = SubmitLimits(rate_per_minute=0, rate_limiter=FileRateLimiter(tmp_path, Clock()))
    for _ in range(100):
        limits.check_rate("alice")


def test_check_active_names_the_count_and_the_limit():
    limits = SubmitLimits(max_active_runs=3)
    limits.check_active("alice", 2)

    with pytest.raises(TooManyRequestsError) as info:
        limits.check_active("alice", 3)

    assert info.value.status_code == 429 and info.value.retry_after_s >= 1
    assert "you have 3 unfinished runs," in info.value.msg and "limit is 3" in info.value.msg
    SubmitLimits(max_active_runs=0).check_active("alice", 10**6)


def test_locks_serialise_one_key_only_across_processes(tmp_path):  # type: ignore[no-untyped-def]
    locks, other = FileUserLocks(tmp_path), FileUserLocks(tmp_path)
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with locks.hold("a"):
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(10)
    with other.hold("b"):
        pass  # another key is free while "a" is held
    got = []
    waiter = threading.Thread(target=lambda: got.append(other.hold("a").__enter__()))
    waiter.start()
    waiter.join(0.2)
    assert got == []
    release.set()
    thread.join(10)
    waiter.join(10)
    assert got == [None]
