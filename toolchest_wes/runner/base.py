"""The task-runner contract: get ``execute_run(run_id)`` executed somewhere."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["TaskRunner"]


@runtime_checkable
class TaskRunner(Protocol):
    """Sends runs to be executed. Holds no run state: the store has it."""

    def submit(self, run_id: str) -> None:
        """Have ``execute_run(run_id)`` called once, soon, somewhere."""
        ...

    def cancel(self, run_id: str) -> None:
        """Best effort: drop the run if it has not started. Running runs stop cooperatively."""
        ...

    def close(self) -> None:
        """Stop accepting runs and release resources."""
        ...
