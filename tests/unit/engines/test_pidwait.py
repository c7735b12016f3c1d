"""wait_exit: a child's exit code, or None after the timeout, with and without a pidfd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from toolchest_wes.engines.pidwait import wait_exit


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)


@pytest.mark.parametrize("pidfd", [True, False])
def test_none_while_running_then_the_exit_code(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pidfd:

        def no_pidfd(pid: int) -> int:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    proc = _child("import sys; sys.stdin.read(); sys.exit(7)")
    try:
        assert wait_exit(proc, 0.05) is None
        assert proc.stdin is not None
        proc.stdin.close()
        assert wait_exit(proc, 30) == 7
        assert wait_exit(proc, 0.05) == 7  # reaped: the code again
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_child_is_its_negative_signal() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.kill(proc.pid, signal.SIGKILL)
    assert wait_exit(proc, 30) == -signal.SIGKILL
    assert wait_exit(proc, None) == -signal.SIGKILL
