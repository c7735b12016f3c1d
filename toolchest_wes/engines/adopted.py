"""Engine processes that an earlier server process started: adopting them, or stopping them.

When the process that executes runs dies (an embedded server's gunicorn worker, killed or
timed out), the zygote keeps the engines it forked while the gunicorn arbiter lives
(``toolchest_wes.engines.zygote``), and the next worker finds each one through its engine
record (``toolchest_wes.engines.engine_record``). The engine is not that worker's child:
``AdoptedProcess`` sees it exit on a pidfd and reads its exit code from the exit file that
the zygote, its parent, writes when it reaps it. An engine that nothing will report the exit
of (started by exec, not by the zygote) cannot be followed, and is stopped instead.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from pathlib import Path

from toolchest_wes.engines.engine_record import EngineRecord, read_exit, read_record, was_stopped
from toolchest_wes.engines.process import ProcessLostError, kill_group

__all__ = ["AdoptedProcess", "CannotAdoptError", "adopt", "stop_recorded"]

#: How long an exited engine's exit code may take to appear: the zygote writes it right after
#: it reaps the engine, which it does the moment SIGCHLD wakes it.
_EXIT_REPORT_S = 10.0
_EXIT_POLL_S = 0.02


class CannotAdoptError(Exception):
    """The run's engine cannot be followed; the message says why, for the run's logs."""


class AdoptedProcess:
    """A ``ProcessHandle`` over an engine process that this process did not start."""

    def __init__(
        self, record: EngineRecord, path: Path, pidfd: int | None, code: int | None = None
    ) -> None:
        self._record = record
        self._path = path
        self._pidfd = pidfd
        self._code = code

    @property
    def pid(self) -> int:
        return self._record.pid

    def running_for_s(self) -> float:
        """Seconds since the engine's run began (0 if the clock cannot be read)."""
        try:
            with open("/proc/uptime") as fh:
                uptime = float(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        return max(0.0, uptime - self._record.run_began / os.sysconf("SC_CLK_TCK"))

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the engine exited; ``None`` if it still runs after ``timeout``.

        Raises:
            ProcessLostError: It exited and no exit code was recorded: its zygote died too.
        """
        if self._code is not None:
            return self._code
        assert self._pidfd is not None
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(timeout, 0.0) * 1000):
            return None
        code = self._reported_exit()
        if code is None:
            raise ProcessLostError(
                f"its engine process (pid {self.pid}) ended without a recorded exit status: "
                "the zygote that forked it died too, so it was killed"
            )
        self._code = code
        os.close(self._pidfd)
        self._pidfd = None
        return code

    def kill_tree(self, grace_s: float) -> None:
        """SIGTERM the engine's process group, then SIGKILL what is left after ``grace_s``."""
        kill_group(self.pid, grace_s, self.wait)

    def close(self) -> None:
        """Release the pidfd (the process itself is left as it is)."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def _reported_exit(self) -> int | None:
        deadline = time.monotonic() + _EXIT_REPORT_S
        while True:
            code = read_exit(self._path)
            if code is not None or time.monotonic() >= deadline:
                return code
            if not self._record.reaper_running() and read_exit(self._path) is None:
                return None
            time.sleep(_EXIT_POLL_S)

    def __repr__(self) -> str:
        return f"<AdoptedProcess pid={self.pid}>"


def adopt(path: Path) -> AdoptedProcess:
    """The engine of the record at ``path``, to follow to its end (it may have ended already).

    Raises:
        CannotAdoptError: No record, an engine that ended without a recorded exit, one that
            nothing will report the exit of, or a pid now taken by another process.
    """
    record = read_record(path)
    if record is None:
        raise CannotAdoptError("no record of its engine process was left")
    code = read_exit(path)
    if code is not None:
        return AdoptedProcess(record, path, None, code)
    if was_stopped(path):
        raise CannotAdoptError(_why_ended(record, path))
    if not record.adoptable:
        raise CannotAdoptError(
            f"its engine process (pid {record.pid}) was not started by the zygote, so its "
            "exit status cannot be known"
        )
    try:
        pidfd = os.pidfd_open(record.pid)
    except OSError:
        pidfd = None
    # Checked after the pidfd was opened: from here on it names this very process.
    if pidfd is None or not record.is_running():
        if pidfd is not None:
            os.close(pidfd)
        code = read_exit(path)
        if code is not None:
            return AdoptedProcess(record, path, None, code)
        raise CannotAdoptError(_why_ended(record, path))
    return AdoptedProcess(record, path, pidfd)


def _why_ended(record: EngineRecord, path: Path) -> str:
    if was_stopped(path):
        return (
            f"its engine process (pid {record.pid}) was stopped when the server's processes stopped"
        )
    return f"its engine process (pid {record.pid}) ended without a recorded exit status"


def stop_recorded(path: Path, grace_s: float) -> str | None:
    """Kill the process group of the engine recorded at ``path`` if it still runs.

    Returns a line for the run's logs if there was one to kill.
    """
    record = read_record(path)
    if record is None or not record.is_running():
        return None
    try:
        pidfd = os.pidfd_open(record.pid)
    except OSError:
        return None
    handle = AdoptedProcess(record, path, pidfd)
    try:
        if not record.is_running():
            return None
        with contextlib.suppress(ProcessLostError):
            handle.kill_tree(grace_s)
    finally:
        handle.close()
    return f"its engine process (pid {record.pid}) was stopped"
