"""Each cwltool job's memory report, without cwltool's once-a-second scan of every process.

cwltool watches every tool it starts (``JobBase.process_monitor``): once a second it asks
psutil for the tool's children, and psutil finds them by reading the ``stat`` file of every
process on the machine. For one run that costs nothing; with 300 runs at once, 300 engines
each read some 600 files a second while their tools only slept, and took more than one of
the machine's two CPUs from the API (bench/README.md, "A thousand runs at once").

This monitor samples the same thing, the resident memory of the tool and everything below
it, once a second, and logs cwltool's line with the largest sum seen; it finds the children
of each process in ``/proc/PID/task/TID/children`` (the kernel's own list, a few small files
per tool) instead of scanning every process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["resident_tree_bytes", "sampling_process_monitor"]

# cwltool's own logger, so that the line reaches the run's stderr as cwltool's did.
_logger = logging.getLogger("cwltool")
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: cwltool's interval between two samples.
_SAMPLE_S = 1.0

_Monitor = Callable[[Any, "subprocess.Popen[str]"], None]


def resident_tree_bytes(root: int) -> int | None:
    """Resident bytes of ``root`` and the processes below it; ``None`` once ``root`` is gone.

    Children are read from each thread's ``children`` file, which lists the processes that
    thread started; a process started or ended during the walk may be missed, which a
    sample once a second can afford.
    """
    total = 0
    seen: set[int] = set()
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        resident = _resident(pid)
        if resident is None:
            if pid == root:
                return None
            continue
        total += resident
        stack.extend(_children(pid))
    return total


def _resident(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(child) for child in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def sampling_process_monitor(original: _Monitor) -> _Monitor:
    """A ``JobBase.process_monitor`` that samples the tool's tree without scanning ``/proc``.

    It waits for the tool as cwltool's does (``sproc.wait()``), and logs the same lines;
    ``original`` (cwltool's) is not called.
    """

    def process_monitor(self: Any, sproc: subprocess.Popen[str]) -> None:
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(_SAMPLE_S):
                used = resident_tree_bytes(sproc.pid)
                if used is None:
                    return
                peak = max(peak, used)

        sampler = threading.Thread(target=sample, name="toolchest-wes-job-memory", daemon=True)
        sampler.start()
        try:
            sproc.wait()
        finally:
            done.set()
            sampler.join()
        if peak:
            _logger.info("[job %s] Max memory used: %iMiB", self.name, round(peak / (1 << 20)))
        else:
            _logger.debug("Could not collect memory usage, job ended before monitoring began.")

    return process_monitor
