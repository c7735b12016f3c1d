"""How much memory a process and everything it started use, read from ``/proc``.

The executor holds a run to its memory limit with this, whatever the engine: a run's tools
may leave the engine's process group (a sandbox starts a session of its own), but they stay
its descendants.
"""

from __future__ import annotations

import os

__all__ = ["children", "descendants", "stat_fields", "tree_memory_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (the state is field 0);
    ``None`` if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or parentheses itself.
    return data[data.rindex(b")") + 2 :].split()


def _resident(pid: int) -> int | None:
    """Resident bytes of ``pid``; ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """The processes that ``pid``'s threads started, from the kernel's own lists."""
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


def descendants(root: int) -> dict[int, int]:
    """``root`` and every process below it, each with its resident bytes; empty if ``root``
    is gone.

    Children are read from each thread's ``children`` file rather than by reading the
    ``stat`` file of every process on the machine: with hundreds of runs, each watched once a
    second, a whole scan per run costs more CPU than the runs (bench/README.md, "A thousand
    runs at once"). A process started or ended during the walk may be missed, as it would be
    by a scan.
    """
    found: dict[int, int] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        resident = _resident(pid)
        if resident is None:
            continue
        found[pid] = resident
        stack.extend(children(pid))
    return found


def _proportional(pid: int) -> int | None:
    """The process's proportional set size: shared pages count in part, once per sharer."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def tree_memory_bytes(root: int) -> int:
    """Memory used by ``root`` and its descendants, in bytes.

    Each process counts its proportional set size where it can be read (so pages that a
    forked engine shares with its warm parent are not counted whole), else its resident size.
    """
    total = 0
    for pid, resident in descendants(root).items():
        share = _proportional(pid)
        total += resident if share is None else share
    return total
