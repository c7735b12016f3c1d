"""How much memory a process and everything it started use, read from ``/proc``.

The executor holds a run to its memory limit with this, whatever the engine: a run's tools
may leave the engine's process group (a sandbox starts a session of its own), but they stay
its descendants.
"""

from __future__ import annotations

import os

__all__ = ["descendants", "stat_fields", "tree_memory_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")
# Fields of /proc/PID/stat after the command name, counted from 0: state is 0.
_PPID = 1
_RSS_PAGES = 21


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


def _stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, resident pages) of ``pid``; ``None`` if it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[_PPID]), int(fields[_RSS_PAGES]))


def descendants(root: int) -> dict[int, int]:
    """``root`` and every process below it, each with its resident bytes (one /proc scan)."""
    children: dict[int, list[int]] = {}
    resident: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is None:
            continue
        pid = int(entry.name)
        children.setdefault(stat[0], []).append(pid)
        resident[pid] = stat[1] * _PAGE
    if root not in resident:
        return {}
    found: dict[int, int] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in found or pid not in resident:
            continue
        found[pid] = resident[pid]
        stack.extend(children.get(pid, ()))
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
