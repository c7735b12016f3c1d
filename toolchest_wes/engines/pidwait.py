"""Waiting for a child process to exit, with a timeout, woken the moment it exits.

``subprocess.Popen.wait(timeout)`` polls the child with sleeps that grow to 50 ms, so a
process that ends is seen 25 ms late on average, and a supervisor that waits in a loop adds
that to every run. Here the wait is a ``poll`` on a pidfd (Linux 5.3), which
the kernel makes readable when the process exits; elsewhere it falls back to ``Popen.wait``.
Imported by ``toil_child``, so it imports nothing heavier than ``subprocess``.
"""

from __future__ import annotations

import os
import select
import subprocess
from typing import Any

__all__ = ["wait_exit"]


def wait_exit(proc: subprocess.Popen[Any], timeout: float | None) -> int | None:
    """The exit code of ``proc`` (negative: killed by that signal), or ``None`` if it is
    still running after ``timeout`` seconds (``None``: wait as long as it takes)."""
    if timeout is None or proc.returncode is not None:
        return proc.wait(timeout)  # a blocking waitpid, which wakes at once
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        # No pidfd here, or the process was reaped meanwhile (Popen knows its code).
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(timeout, 0.0) * 1000):
            return None
    finally:
        os.close(pidfd)
    return proc.wait()
