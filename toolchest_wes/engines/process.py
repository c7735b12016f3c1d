"""Starting engine processes, and the process-group plumbing that every launcher shares.

This is the only module of the server that calls ``subprocess``, ``os.fork`` (through the
zygote that ``spawn_python`` starts for ``WarmLauncher``) or ``os.killpg``. Every engine
process leads its own session and process group, so cancelling a run signals the engine
together with every tool it started.

``SubprocessLauncher`` execs each process from scratch. ``WarmLauncher``
(``toolchest_wes.engines.warm_launcher``) forks them from a warm zygote; it reaches
processes only through ``spawn_python``, ``kill_group`` and ``signal_group`` here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

from toolchest_wes.engines.base import LaunchSpec, ProcessHandle
from toolchest_wes.engines.engine_record import write_record
from toolchest_wes.engines.pidwait import wait_exit
from toolchest_wes.engines.proctree import children, stat_fields

__all__ = ["ProcessLostError", "SubprocessLauncher", "program_output"]

logger = logging.getLogger(__name__)

# How long kill_tree waits for the exit report after SIGKILL. SIGKILL cannot be caught, so
# only a process stuck in the kernel (or an unresponsive zygote) takes longer; the handle's
# own wait() still reports the exit later.
_REAP_TIMEOUT_S = 10.0
# Poll interval while the rest of a group winds down after its leader exited.
_GROUP_POLL_S = 0.02


class ProcessLostError(RuntimeError):
    """The launcher can no longer tell whether, or how, a process ended.

    Raised by ``ProcessHandle.wait`` of a warm handle when the zygote that forked the process
    died before reporting its exit.
    """


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        # PermissionError: another user's process took the number, so none of ours is left.
        return False
    return True


def _run_left_in_group(pgid: int) -> bool:
    """Whether a process of the group's run is left once its leader has reported its exit.

    A leader that has exited leaves its tools, if any, in the group. A leader that lives on
    after its report is finishing its teardown, or is an engine process that waits for another
    run (or has one), whose group stays while it lives: either way, what its run left would be
    among its children, and a process offers itself for another run only with none.
    """
    if not _group_exists(pgid):
        return False
    leader = stat_fields(pgid)
    if leader is None or leader[0] in (b"Z", b"X"):
        return True
    return bool(children(pgid))


def kill_group(
    pgid: int,
    grace_s: float,
    wait: Callable[[float | None], int | None],
    send: Callable[[signal.Signals], object] | None = None,
) -> None:
    """SIGTERM a process group, SIGKILL what is left after ``grace_s``, then reap the leader.

    ``wait`` is the leader's ``ProcessHandle.wait``. The grace period covers the whole group:
    tools that the leader started may still be writing their last output when it exits.
    ``send`` delivers each signal instead of ``signal_group`` (a zygote's child: the zygote
    knows whether the process still runs that run).

    The group id is the leader's pid. Once the leader is reaped the number could be reused,
    but only by a process that makes itself the leader of a group with that number while
    none of our processes is left in it, so signalling the group stays safe in practice.
    """
    deliver = send if send is not None else functools.partial(signal_group, pgid)
    deadline = time.monotonic() + max(grace_s, 0.0)
    deliver(signal.SIGTERM)
    try:
        if wait(max(grace_s, 0.0)) is not None:
            while _run_left_in_group(pgid) and time.monotonic() < deadline:
                time.sleep(_GROUP_POLL_S)
    except ProcessLostError:
        pass
    deliver(signal.SIGKILL)
    with contextlib.suppress(ProcessLostError):
        wait(_REAP_TIMEOUT_S)


def _open_log(path: os.PathLike[str] | str) -> BinaryIO:
    """Open a process's stdout or stderr file the way the zygote does.

    Truncated, so a run launched again does not find the last attempt's outputs in its
    stdout; appending, so stdout and stderr may be one file without overwriting each other.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o666)
    return os.fdopen(fd, "ab")


def program_output(argv: Sequence[str], timeout_s: float = 60.0) -> str:
    """The stdout of a short helper command (such as ``snakemake --version``).

    Raises:
        OSError: The program cannot be started.
        subprocess.SubprocessError: It failed, or did not finish within ``timeout_s``.
    """
    return subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
        timeout=timeout_s,
        text=True,
    ).stdout


class ChildProcess:
    """A process this module started; ``wait`` and ``kill`` without ``subprocess`` types."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or ``None`` if the process is still running after ``timeout``."""
        return wait_exit(self._proc, timeout)

    def kill(self) -> None:
        """SIGKILL this process alone, not its group; nothing happens once it was reaped."""
        self._proc.kill()


def spawn_python(module: str, args: Sequence[str], *, pass_fds: Sequence[int]) -> ChildProcess:
    """Start ``python -m module args`` with this interpreter, as a new session.

    The child inherits ``pass_fds`` and this process's stderr and environment; its stdin and
    stdout are ``/dev/null``.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        pass_fds=tuple(pass_fds),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    return ChildProcess(proc)


class _PopenHandle(ChildProcess):
    """A process started by ``SubprocessLauncher``."""

    def __init__(self, proc: subprocess.Popen[bytes], on_exit: Callable[[_PopenHandle], None]):
        super().__init__(proc)
        self._on_exit = on_exit

    def wait(self, timeout: float | None = None) -> int | None:
        code = super().wait(timeout)
        if code is not None:
            self._on_exit(self)
        return code

    def kill_tree(self, grace_s: float) -> None:
        kill_group(self.pid, grace_s, self.wait)

    def __repr__(self) -> str:
        return f"<_PopenHandle pid={self.pid}>"


class SubprocessLauncher:
    """Starts each engine process from scratch, as a new session.

    An ``entry`` module runs as ``python -m entry argv[1:]`` with this server's interpreter.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[_PopenHandle] = set()

    def start(self, spec: LaunchSpec) -> ProcessHandle:
        """Start ``spec``; raises ``OSError`` if the program, cwd or log files are unusable."""
        if spec.entry is None:
            argv = list(spec.argv)
        else:
            argv = [sys.executable, "-m", spec.entry, *spec.argv[1:]]
        with (
            open(os.devnull, "rb") as stdin,
            _open_log(spec.stdout) as stdout,
            _open_log(spec.stderr) as stderr,
        ):
            proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=spec.cwd,
                env=os.environ | spec.env,
                start_new_session=True,
            )
        handle = _PopenHandle(proc, self._forget)
        with self._lock:
            self._running.add(handle)
        if spec.record is not None:
            # Without a reaper: nothing but this process can learn its exit code, so a later
            # server process finds it only to stop it.
            try:
                write_record(spec.record, proc.pid, reaper=None)
            except OSError as exc:
                logger.warning("cannot record engine process pid=%s: %s", proc.pid, exc)
        logger.debug("started engine process pid=%s argv0=%s", proc.pid, spec.argv[:1])
        return handle

    def close(self) -> None:
        """SIGKILL the process group of every process still running, and reap them."""
        with self._lock:
            running = list(self._running)
        for handle in running:
            signal_group(handle.pid, signal.SIGKILL)
            handle.wait(_REAP_TIMEOUT_S)

    def _forget(self, handle: _PopenHandle) -> None:
        with self._lock:
            self._running.discard(handle)
