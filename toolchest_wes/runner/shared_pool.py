"""One run pool shared by the API processes of an embedded server.

Embedded mode serves the API from several gunicorn workers, which read and write one SQLite
file, but only one of them executes runs: the one that holds an ``flock`` on
``<data_dir>/pool.lock`` (:class:`PoolLock`). Each of the others sends the id of each run it
accepts to the holder over a Unix datagram socket (:class:`PoolRelay`), which the holder reads
(:class:`RelayListener`) and submits to its pool. A datagram that is lost (the pool is
changing hands, or its socket buffer is full) loses nothing: the run is QUEUED in the store,
and the listener looks there for QUEUED runs it does not hold every second. When the holder
dies, the kernel releases its lock and one of the others takes it over (see
``wiring.embedded.PoolElection``).

The socket is in Linux's abstract namespace, named after the data folder: it needs no file,
so nothing is left behind and no path can be too long. Any local process could send to it,
but a datagram only makes the pool look at a run the store already holds as QUEUED, which it
would execute anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner

__all__ = ["PoolLock", "PoolRelay", "RelayListener", "SharedRunner", "relay_address"]

logger = logging.getLogger(__name__)

#: How often the pool looks in the store for QUEUED runs that no datagram announced.
SCAN_INTERVAL_S = 1.0
# The longest a request waits to hand a run id to a pool whose socket is full.
_SEND_TIMEOUT_S = 0.5
# Run ids are uuid hex or a client's own short id; anything else in a datagram is noise.
_RUN_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def relay_address(data_dir: Path) -> bytes:
    """The abstract socket address of the pool of the server whose data folder is
    ``data_dir`` (the same for every process of that server, unique per folder)."""
    digest = hashlib.sha256(os.fsencode(data_dir.resolve())).hexdigest()[:32]
    return b"\0toolchest-wes-pool-" + digest.encode()


class PoolLock:
    """The lock that makes one process of a server the one that executes runs.

    An ``flock`` on a file in the data folder: the kernel releases it when its holder exits,
    however it exits. It belongs to the open file, so two holders in one process exclude each
    other too, and the file is opened close-on-exec, so the engine processes that the holder
    starts never hold it. The holder writes its pid into the file, for operators and tests.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if no process holds it; ``True`` if this object holds it now."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        """Let another process take the lock (closing the file releases it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def holder(self) -> int | None:
        """The pid the current holder wrote, if any."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None


class PoolRelay:
    """A ``TaskRunner`` for a process that does not execute runs: it tells the pool's process
    of each run it accepts. Best effort, as the module says."""

    def __init__(self, address: bytes) -> None:
        self._address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # The kernel queues few datagrams per socket (net.unix.max_dgram_qlen, often 10), so
        # in a burst of submissions a send waits for the pool to read; never for long.
        self._sock.settimeout(_SEND_TIMEOUT_S)

    def submit(self, run_id: str) -> None:
        """Send the run's id to the pool; a failure is logged, since the pool's scan of the
        store finds the run within a second anyway."""
        try:
            self._sock.sendto(run_id.encode(), self._address)
        except OSError as exc:
            logger.debug("run id not relayed to the pool run_id=%s: %s", run_id, exc)

    def cancel(self, run_id: str) -> None:
        """Nothing to do: a cancelled QUEUED run is no longer QUEUED, so the pool skips it."""

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


class RelayListener:
    """The pool side: submits each run id it receives, and every ``scan_interval_s`` the
    QUEUED runs of the store (``scan``), which catches the datagrams that were lost.

    Args:
        address: From :func:`relay_address`.
        submit: Submits one run id to the pool (skipping the runs it already holds).
        scan: The ids of the runs the store holds as QUEUED.
    """

    def __init__(
        self,
        address: bytes,
        submit: Callable[[str], None],
        scan: Callable[[], list[str]],
        *,
        scan_interval_s: float = SCAN_INTERVAL_S,
    ) -> None:
        self._address = address
        self._submit = submit
        self._scan = scan
        self._scan_interval_s = scan_interval_s
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def bind(self) -> None:
        """Open the socket, so datagrams queue in it from now on (before ``start``).

        Raises:
            OSError: Another process has bound the address.
        """
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self._address)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self._scan_interval_s)
        self._sock = sock

    def start(self) -> None:
        """Bind if not bound yet, and start the thread."""
        self.bind()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._listen, name="toolchest-wes-pool-relay", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the socket."""
        self._stop.set()
        sock, self._sock = self._sock, None
        if self._thread is not None:
            # An empty datagram wakes the thread from recv at once, rather than at its next
            # timeout (shutdown() does not wake a datagram socket's reader).
            with (
                contextlib.suppress(OSError),
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker,
            ):
                waker.sendto(b"", self._address)
            self._thread.join(timeout=5)
            self._thread = None
        if sock is not None:
            sock.close()

    def _listen(self) -> None:
        sock = self._sock
        assert sock is not None
        next_scan = time.monotonic() + self._scan_interval_s
        while not self._stop.is_set():
            try:
                data = sock.recv(256)
            except TimeoutError:
                data = None
            except OSError:
                if self._stop.is_set():
                    return
                raise
            try:
                if data and _RUN_ID.fullmatch(data):
                    self._submit(data.decode())
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + self._scan_interval_s
                    for run_id in self._scan():
                        self._submit(run_id)
            except Exception:
                # The store may be busy or the pool closing; the next round tries again.
                logger.exception("the run pool could not take relayed runs")


class SharedRunner:
    """The ``TaskRunner`` of every API process of an embedded server with a shared pool:
    runs go to this process's pool once it holds one (:meth:`attach`), else to the relay.

    Args:
        relay: Tells the process that holds the pool of a run.
        queued: Runs waiting to start, for ``/metrics`` while this process holds no pool.
    """

    def __init__(self, relay: PoolRelay, queued: Callable[[], int]) -> None:
        self._relay = relay
        self._queued = queued
        self._pool: LocalTaskRunner | None = None

    @property
    def pool(self) -> LocalTaskRunner | None:
        """This process's pool, once attached."""
        return self._pool

    def attach(self, pool: LocalTaskRunner | None) -> None:
        """From now on, this process executes the runs it accepts on ``pool`` (``None``: it
        relays them again)."""
        self._pool = pool

    def submit(self, run_id: str) -> None:
        """To this process's pool, or to the one of the process that holds it."""
        target: TaskRunner = self._pool if self._pool is not None else self._relay
        target.submit(run_id)

    def cancel(self, run_id: str) -> None:
        """Drop the run from this process's pool if it waits there."""
        if self._pool is not None:
            self._pool.cancel(run_id)

    def queue_length(self) -> int:
        """The pool's queue here, else the QUEUED runs of the store."""
        return self._pool.queue_length() if self._pool is not None else self._queued()

    def close(self) -> None:
        """Close the relay; the pool is closed by whoever attached it."""
        self._relay.close()
