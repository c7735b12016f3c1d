"""A local journal of submissions, so that no run id is ever lost.

Every submission is written here *before* its POST is sent, with the request id tag it
carries, and again once the server has answered with a run id. If the client dies between the
two (or the answer never arrives), :meth:`Journal.pending` lists the submission and
``WesClient.recover`` finds the run by its tag.

The journal is a JSON-lines file, by default ``$XDG_STATE_HOME/toolchest-wes/runs.jsonl``
(``~/.local/state/toolchest-wes/runs.jsonl``); ``TOOLCHEST_WES_JOURNAL`` names another file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Journal", "JournalEntry", "default_journal_path"]


def default_journal_path() -> Path:
    """``TOOLCHEST_WES_JOURNAL``, else ``$XDG_STATE_HOME/toolchest-wes/runs.jsonl``."""
    explicit = os.environ.get("TOOLCHEST_WES_JOURNAL")
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "toolchest-wes" / "runs.jsonl"


@dataclass
class JournalEntry:
    """One submission.

    Attributes:
        request_id: The ``client_request_id`` tag the submission carries.
        server: The API root it was sent to.
        workflow: The workflow as the user named it.
        submitted_at: When it was written, seconds since the epoch.
        run_id: The run id the server answered, or ``None`` if no answer was recorded.
        tags: The tags it was sent with.
    """

    request_id: str
    server: str
    workflow: str
    submitted_at: float
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Journal:
    """Append-only record of submissions in a JSON-lines file.

    Args:
        path: The file; :func:`default_journal_path` when not given.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_journal_path()

    @classmethod
    def choose(cls, journal: Journal | bool) -> Journal | None:
        """A client's ``journal=`` argument: ``True`` for the default file, ``False`` for none."""
        if isinstance(journal, Journal):
            return journal
        return cls() if journal else None

    def record_submit(
        self, request_id: str, server: str, workflow: str, tags: dict[str, str]
    ) -> None:
        """Write a submission before it is sent."""
        self._append(
            {
                "event": "submit",
                "request_id": request_id,
                "server": server,
                "workflow": workflow,
                "tags": tags,
                "time": time.time(),
            }
        )

    def record_run(self, request_id: str, server: str, run_id: str) -> None:
        """Write the run id a submission got."""
        self._append(
            {
                "event": "run",
                "request_id": request_id,
                "server": server,
                "run_id": run_id,
                "time": time.time(),
            }
        )

    def entries(self, server: str | None = None) -> list[JournalEntry]:
        """Every submission, oldest first, optionally only those sent to ``server``."""
        by_id: dict[str, JournalEntry] = {}
        for event in self._events():
            request_id = str(event.get("request_id", ""))
            if event.get("event") == "submit":
                by_id[request_id] = JournalEntry(
                    request_id=request_id,
                    server=str(event.get("server", "")),
                    workflow=str(event.get("workflow", "")),
                    submitted_at=float(event.get("time", 0.0)),
                    tags=dict(event.get("tags") or {}),
                )
            elif event.get("event") == "run" and request_id in by_id:
                by_id[request_id].run_id = str(event.get("run_id"))
        entries = list(by_id.values())
        if server is not None:
            entries = [e for e in entries if e.server == server]
        return entries

    def last(self, server: str | None = None) -> JournalEntry | None:
        """The newest submission that got a run id (to ``server``, if given)."""
        for entry in reversed(self.entries(server)):
            if entry.run_id:
                return entry
        return None

    def pending(self, server: str | None = None) -> list[JournalEntry]:
        """Submissions with no recorded run id: the answer was lost, or the POST failed."""
        return [e for e in self.entries(server) if not e.run_id]

    def _append(self, event: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, separators=(",", ":")) + "\n"
        # One write of one line on an O_APPEND file: concurrent clients never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _events(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(event, dict):
                events.append(event)
        return events
