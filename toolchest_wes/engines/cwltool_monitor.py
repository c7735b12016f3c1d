"""Each cwltool job's memory report, without cwltool's once-a-second scan of every process.

cwltool watches every tool it starts (``JobBase.process_monitor``): once a second it asks
psutil for the tool's children, and psutil finds them by reading the ``stat`` file of every
process on the machine. For one run that costs nothing; with 300 runs at once, 300 engines
each read some 600 files a second while their tools only slept, and took more than one of
the machine's two CPUs from the API (bench/README.md, "A thousand runs at once").

This monitor samples the same thing, the resident memory of the tool and everything below
it, once a second, and logs cwltool's line with the largest sum seen; it finds the children
of each process in the kernel's own lists (``engines/proctree.py``), a few small files per
tool, instead of scanning every process.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from typing import Any

from toolchest_wes.engines.pidwait import wait_exit
from toolchest_wes.engines.proctree import descendants

__all__ = ["resident_tree_bytes", "sampling_process_monitor"]

# cwltool's own logger, so that the line reaches the run's stderr as cwltool's did.
_logger = logging.getLogger("cwltool")
#: cwltool's interval between two samples.
_SAMPLE_S = 1.0

_Monitor = Callable[[Any, "subprocess.Popen[str]"], None]


def resident_tree_bytes(root: int) -> int | None:
    """Resident bytes of ``root`` and the processes below it; ``None`` once ``root`` is gone."""
    tree = descendants(root)
    return sum(tree.values()) if tree else None


def sampling_process_monitor(original: _Monitor) -> _Monitor:
    """A ``JobBase.process_monitor`` that samples the tool's tree without scanning ``/proc``.

    It waits for the tool as cwltool's does (``sproc.wait()``), and logs the same lines;
    ``original`` (cwltool's) is not called.
    """

    def process_monitor(self: Any, sproc: subprocess.Popen[str]) -> None:
        # The first sample is due a second after the start, as cwltool's: a tool that has
        # ended by then (most of a short run's tools) is never sampled. Woken the moment the
        # tool exits, unlike Popen.wait(timeout), which polls.
        peak = 0 if wait_exit(sproc, _SAMPLE_S) is not None else _peak_until_exit(sproc)
        if peak:
            _logger.info("[job %s] Max memory used: %iMiB", self.name, round(peak / (1 << 20)))
        else:
            _logger.debug("Could not collect memory usage, job ended before monitoring began.")

    return process_monitor


def _peak_until_exit(sproc: subprocess.Popen[str]) -> int:
    """Wait for ``sproc``, sampling its tree now and then once a second until it exits; the
    largest resident sum seen (0 if none was).

    The samples are taken by the waiting thread itself, between waits that wake the moment
    the tool exits: a sampling thread would count against the run's process limit, which a
    tool may have used up, and the run would fail for want of a thread.
    """
    peak = 0
    while (used := resident_tree_bytes(sproc.pid)) is not None:
        peak = max(peak, used)
        if wait_exit(sproc, _SAMPLE_S) is not None:
            return peak
    sproc.wait()
    return peak
