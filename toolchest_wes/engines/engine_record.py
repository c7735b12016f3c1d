"""Engine records: who a run's engine process is, and how it ended, in two small files.

A launcher that is given a record path (``LaunchSpec.record``) writes, as the engine starts,
``<record>``: the process's pid, its start time (``/proc/PID/stat`` field 22, in clock ticks
since boot) and the machine's boot id, so that a later reader can tell the engine from
another process that took its pid since, and when its run began (clock ticks since boot: a
spare child of the zygote, ``toolchest_wes.engines.zygote``, starts before its run). The
zygote, which is the parent of the engines it forks and reaps them, also writes
``<record>.exit`` with the exit code (negative: the signal that killed it) the moment it
reaps one, or ``stopped`` if it killed the process itself because it was shutting down. A
server process that starts while an engine of its predecessor still runs reads the first
file to find and wait on it, and the second to learn how it ended: it is not the engine's
parent, so ``waitpid`` cannot tell it.

The records live in a folder of the server (``<data_dir>/engines``), outside every run's
folder, which the engine jail hides from the run: a workflow cannot forge them.

Imported by the zygote, so it imports nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from toolchest_wes.engines.proctree import stat_fields

_STOPPED = "stopped"
# The indexes of the state and the start time among the fields of /proc/PID/stat after the
# command name.
_STATE = 0
_START_TIME = 19

__all__ = [
    "EngineRecord",
    "exit_path",
    "process_start",
    "read_exit",
    "read_record",
    "remove_record",
    "was_stopped",
    "write_exit",
    "write_record",
]


@dataclass(frozen=True)
class EngineRecord:
    """A started engine process, as its launcher recorded it.

    Attributes:
        pid: The process id, which is also its process group id.
        start: Its start time in clock ticks since boot.
        boot: The boot id of the machine it started on.
        reaper: ``(pid, start)`` of the zygote that forked it and records its exit, or
            ``None`` when nothing will record its exit (a process started by exec).
        began: When its run began, in clock ticks since boot: later than ``start`` for a
            spare that waited for its run; ``None`` in records that predate the field.
    """

    pid: int
    start: int
    boot: str
    reaper: tuple[int, int] | None
    began: int | None = None

    @property
    def run_began(self) -> int:
        """When its run began, in clock ticks since boot."""
        return self.start if self.began is None else self.began

    @property
    def adoptable(self) -> bool:
        """Whether another process can follow it to its end: its exit will be recorded."""
        return self.reaper is not None

    def is_running(self) -> bool:
        """Whether the recorded process exists now and is the one recorded.

        A zombie counts as running while the zygote that will reap it and record its exit
        runs. Once that zygote is gone, the orphaned zombie waits only for init to reap it,
        which may take seconds, and its exit will never be recorded: it has ended.
        """
        fields = stat_fields(self.pid)
        if self.boot != _boot_id() or _start_of(fields) != self.start:
            return False
        assert fields is not None
        return fields[_STATE] != b"Z" or self.reaper_running()

    def reaper_running(self) -> bool:
        """Whether the zygote that records this process's exit still exists."""
        if self.reaper is None:
            return False
        pid, start = self.reaper
        return self.boot == _boot_id() and process_start(pid) == start


def exit_path(record: Path) -> Path:
    """The exit file that goes with ``record``."""
    return record.with_suffix(".exit")


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; ``None`` if it is gone."""
    return _start_of(stat_fields(pid))


def _start_of(fields: list[bytes] | None) -> int | None:
    """The start time among the fields of a ``/proc/PID/stat``; ``None`` without them."""
    try:
        return None if fields is None else int(fields[_START_TIME])
    except (IndexError, ValueError):
        return None


def _uptime_ticks() -> int | None:
    """Now, in clock ticks since boot (the clock of process start times)."""
    try:
        with open("/proc/uptime") as fh:
            return int(float(fh.read().split()[0]) * os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees all of it or no file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_record(path: Path, pid: int, *, reaper: int | None) -> None:
    """Record process ``pid``, started just now; ``reaper``: the pid of the process that
    will record its exit (this zygote), or ``None``.

    Raises ``OSError`` if the record cannot be written.
    """
    start = process_start(pid)
    if start is None:
        # Already gone and reaped: nothing can follow it, and its exit is known by now.
        return
    reaper_start = None if reaper is None else process_start(reaper)
    payload = {
        "pid": pid,
        "start": start,
        "boot": _boot_id(),
        "reaper": None if reaper is None or reaper_start is None else [reaper, reaper_start],
        "began": max(start, _uptime_ticks() or start),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(payload))


def write_exit(record: Path, code: int, *, stopped: bool = False) -> None:
    """Record the exit code of the process of ``record``, or with ``stopped`` that its
    zygote killed it as it shut down. Raises ``OSError``."""
    _write_atomically(exit_path(record), f"{_STOPPED if stopped else code}\n")


def read_record(path: Path) -> EngineRecord | None:
    """The record at ``path``; ``None`` if there is none or it cannot be read."""
    try:
        payload = json.loads(path.read_text())
        reaper = payload.get("reaper")
        return EngineRecord(
            pid=int(payload["pid"]),
            start=int(payload["start"]),
            boot=str(payload["boot"]),
            reaper=None if not reaper else (int(reaper[0]), int(reaper[1])),
            began=None if payload.get("began") is None else int(payload["began"]),
        )
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None


def read_exit(record: Path) -> int | None:
    """The exit code recorded for the process of ``record``; ``None`` if none was."""
    try:
        return int(exit_path(record).read_text().strip())
    except (OSError, ValueError):
        return None


def was_stopped(record: Path) -> bool:
    """Whether the process of ``record`` was killed by its zygote's shutdown."""
    try:
        return exit_path(record).read_text().strip() == _STOPPED
    except OSError:
        return False


def remove_record(path: Path) -> None:
    """Remove the record and its exit file, once the run they belong to has ended."""
    for file in (path, exit_path(path)):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
