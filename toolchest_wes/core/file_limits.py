"""The per-user submit limits of an embedded server, shared by its API processes through
files: one small file per user in ``<data_dir>/limits``, under an ``flock``.

Embedded mode serves the API from several gunicorn workers, so a bucket or a lock in one
process's memory would let each process grant a user the whole limit. An ``flock`` belongs
to the open file, so it excludes the threads of one process as well as other processes, and
the kernel releases it when its holder dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from toolchest_wes.core.limits import take_token

__all__ = ["FileRateLimiter", "FileUserLocks"]

# tokens, and the monotonic second they were counted at (CLOCK_MONOTONIC is the same for
# every process of the machine).
_BUCKET = struct.Struct("<dd")


@contextmanager
def _locked(folder: Path, name: str) -> Iterator[int]:
    """The open, ``flock``-ed file ``name`` in ``folder`` for the block."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(folder / name, flags, 0o600)
    except FileNotFoundError:
        # Made on the first submission, not at each.
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / name, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _file_name(kind: str, key: str) -> str:
    # Hashed: a user name may hold any character, and its length is the identity provider's.
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class FileRateLimiter:
    """Token buckets in files (a ``RateLimiter``)."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._folder = folder
        self._clock = clock

    def acquire(self, key: str, rate_per_s: float, burst: int) -> float:
        """Take one token for ``key``: 0 if taken, else the seconds until one is available."""
        with _locked(self._folder, _file_name("rate", key)) as fd:
            now = self._clock()
            data = os.pread(fd, _BUCKET.size, 0)
            tokens, stamp = _BUCKET.unpack(data) if len(data) == _BUCKET.size else (burst, now)
            # A stamp from the future was written before the machine restarted.
            elapsed = now - stamp if stamp <= now else float("inf")
            tokens, wait = take_token(tokens, elapsed, rate_per_s, burst)
            os.pwrite(fd, _BUCKET.pack(tokens, now), 0)
            return wait


class FileUserLocks:
    """Locks per key in files (``UserLocks``), held across the processes of one server."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock for the block."""
        with _locked(self._folder, _file_name("submit", key)):
            yield
