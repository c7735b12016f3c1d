"""The submit limits of an embedded server, kept in files that all its API processes share
(each ``File*`` object here stands for one process: it opens the files itself). The bucket's
arithmetic and the locks are tested in test_submit_limits.py."""

from __future__ import annotations

from pathlib import Path

from toolchest_wes.core.file_limits import FileRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_written_before_a_restart_of_the_machine_is_full(tmp_path: Path) -> None:
    clock = Clock()
    limiter = FileRateLimiter(tmp_path, clock)
    assert limiter.acquire("a", 1.0, 1) == 0
    assert limiter.acquire("a", 1.0, 1) > 0
    clock.now = 5.0  # the monotonic clock began again
    assert limiter.acquire("a", 1.0, 1) == 0


def test_user_names_of_any_kind_get_files_of_their_own(tmp_path: Path) -> None:
    limiter = FileRateLimiter(tmp_path, Clock())
    for user in ["../../etc/passwd", "a/b", "é" * 300, ""]:
        assert limiter.acquire(user, 1.0, 1) == 0
    assert all(path.parent == tmp_path for path in tmp_path.iterdir())
    assert len(list(tmp_path.iterdir())) == 4
