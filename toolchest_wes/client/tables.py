"""Plain-text tables of runs and outputs, for terminals and logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Protocol

from toolchest_wes.models import OutputFile, OutputListResponse, RunLog, RunSummary

__all__ = ["Outputs", "format_runs", "format_table", "human_size", "print_runs"]


def human_size(size: int) -> str:
    """``1536`` → ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, headers first."""
    table = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    return "\n".join(line.rstrip() for line in lines)


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _short_time(stamp: str | None) -> str:
    parsed = _parse(stamp)
    return parsed.strftime("%Y-%m-%d %H:%M:%S") if parsed else "-"


def duration(start: str | None, end: str | None, now: datetime | None = None) -> str:
    """``1h02m05.3s``, ``3m05.2s`` or ``4.2s`` between two ISO times (to now while running)."""
    begin = _parse(start)
    if begin is None:
        return "-"
    finish = _parse(end) or now or datetime.now(UTC)
    tenths = round(max(0.0, (finish - begin).total_seconds()) * 10)
    minutes, secs = divmod(tenths, 600)
    if minutes == 0:
        return f"{secs / 10:.1f}s"
    if minutes < 60:
        return f"{minutes}m{secs / 10:04.1f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs / 10:04.1f}s"


class _Listed(Protocol):
    """A run handle (``Run``, ``AsyncRun``), as far as a table needs it."""

    def known_log(self) -> RunLog: ...


def format_runs(runs: Iterable[RunLog | RunSummary | _Listed]) -> str:
    """A table of id, state, submitted, started, duration and workflow.

    Takes RunLogs, listing items or run handles (whose RunLogs a ``Run`` reads as needed).
    """
    rows = []
    for item in runs:
        run = item if isinstance(item, RunLog | RunSummary) else item.known_log()
        if isinstance(run, RunLog):
            log = run.run_log
            start = log.start_time if log else None
            end = log.end_time if log else None
            workflow = run.request.workflow_url if run.request else ""
            submitted = run.submitted_time
        else:
            start, end, workflow = run.start_time, run.end_time, ""
            submitted = getattr(run, "submitted_time", None)
        rows.append(
            [
                run.run_id,
                str(run.state),
                _short_time(submitted if isinstance(submitted, str) else None),
                _short_time(start),
                duration(start, end),
                workflow or "-",
            ]
        )
    return format_table(["RUN ID", "STATE", "SUBMITTED", "STARTED", "DURATION", "WORKFLOW"], rows)


def print_runs(runs: Iterable[RunLog | RunSummary | _Listed], file: IO[str] | None = None) -> None:
    """Print :func:`format_runs` (to stdout by default).

    Example:
        >>> print_runs(wes.runs(10, state="EXECUTOR_ERROR"))
        RUN ID    STATE           SUBMITTED            STARTED              DURATION  WORKFLOW
        3f0c…     EXECUTOR_ERROR  2026-12-01 09:12:03  2026-12-01 09:12:03  4.2s      fail.cwl
    """
    print(format_runs(runs), file=file or sys.stdout)


class Outputs(list[OutputFile]):
    """A run's output files; ``str()`` gives a table of path, size and checksum.

    Attributes:
        expire_at: When the server removes them (ISO 8601 UTC), if it has a retention period.
    """

    def __init__(
        self, files: Iterable[OutputFile] = (), listing: OutputListResponse | None = None
    ) -> None:
        super().__init__(files)
        self.expire_at = listing.outputs_expire_at if listing else None

    @property
    def total_size(self) -> int:
        """The sum of the file sizes, in bytes."""
        return sum(f.size for f in self)

    def __str__(self) -> str:
        rows = [[f.path, human_size(f.size), f.checksum or "-"] for f in self]
        table = format_table(["PATH", "SIZE", "CHECKSUM"], rows)
        text = f"{table}\n{len(self)} files, {human_size(self.total_size)}"
        if self.expire_at:
            text += f"; removed by the server after {_short_time(self.expire_at)} UTC"
        return text
