"""Loop: the shape of every background job that ``wiring`` starts and stops."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Loop"]


class Loop(Protocol):
    """A background job: a thread started once and stopped at shutdown."""

    def start(self) -> None:
        """Start the job's thread."""
        ...

    def stop(self) -> None:
        """Stop the thread and release what the job holds."""
        ...
