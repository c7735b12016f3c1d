"""Exceptions raised by the WES client.

Every exception the client raises on purpose derives from :class:`WesClientError`::

    WesClientError
    ├── TransportError            the server could not be reached or did not answer in time
    │                             (wraps httpx.RequestError); never means the run failed
    ├── WesApiError               the server answered with an error status (status_code, msg)
    │   ├── BadRequestError       400: the request was malformed; msg says what to fix
    │   ├── UnauthorizedError     401: no valid credentials (give a token)
    │   ├── ForbiddenError        403: the credentials do not allow this
    │   ├── NotFoundError         404: no such task, log or output file
    │   │   └── RunNotFoundError  404 on a run's own URL: no such run (or not yours)
    │   ├── ConflictError         409: the run is in a state that does not allow this
    │   ├── GoneError             410: the outputs have expired and were removed
    │   ├── RateLimitedError      429: too many requests or active runs (retry_after seconds)
    │   └── ServerError           5xx: the server failed
    ├── UnexpectedResponseError   the body matches neither the success schema nor ErrorResponse
    ├── InputFileError            a local file that the workflow or its inputs name is missing
    ├── InputTypeError            an input does not fit the type the workflow declares
    ├── RunFailed                 a run ended in a state other than COMPLETE
    ├── WaitTimeout               a wait ran out of time before the run(s) finished
    ├── RunNotFinished            outputs asked for before the run ended (state says where it is)
    ├── NoMatchingOutputs         ``include`` globs that match none of the run's output files
    └── DownloadError             a downloaded file's size or checksum does not match

A transport error or a server error is never a run failure: the run may still be executing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolchest_wes.cwl_inputs import summarise

if TYPE_CHECKING:
    from collections.abc import Sequence

    from toolchest_wes.models import State, TaskLog

__all__ = [
    "BadRequestError",
    "ConflictError",
    "DownloadError",
    "ForbiddenError",
    "GoneError",
    "InputFileError",
    "InputTypeError",
    "NoMatchingOutputs",
    "NotFoundError",
    "RateLimitedError",
    "RunFailed",
    "RunNotFinished",
    "RunNotFoundError",
    "ServerError",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "WaitTimeout",
    "WesApiError",
    "WesClientError",
]


class WesClientError(Exception):
    """Base of every error the client raises."""


class TransportError(WesClientError):
    """The request did not get an answer: connection refused or reset, DNS, or a timeout."""


class WesApiError(WesClientError):
    """The server answered with an error status.

    Attributes:
        status_code: The HTTP status.
        msg: The server's message (``ErrorResponse.msg``), or the body's start if it sent no
            ErrorResponse.
    """

    def __init__(self, status_code: int, msg: str) -> None:
        super().__init__(f"{status_code}: {msg}")
        self.status_code = status_code
        self.msg = msg


class BadRequestError(WesApiError):
    """400: the request was malformed; ``msg`` says what to fix."""


class UnauthorizedError(WesApiError):
    """401: no valid credentials; pass a token (``token=`` or ``TOOLCHEST_WES_TOKEN``)."""


class ForbiddenError(WesApiError):
    """403: the credentials are valid but do not allow this."""


class NotFoundError(WesApiError):
    """404: no such task, log or output file."""


class RunNotFoundError(NotFoundError):
    """404 on a run's own URL: the server has no such run (or it belongs to someone else)."""


class ConflictError(WesApiError):
    """409: the run's state does not allow this (delete an active run, for example)."""


class GoneError(WesApiError):
    """410: the run's outputs were removed after the server's retention period."""


class RateLimitedError(WesApiError):
    """429: too many requests or active runs.

    Attributes:
        retry_after: Seconds the server asked to wait (``Retry-After``), if it said.
    """

    def __init__(self, status_code: int, msg: str, retry_after: float | None = None) -> None:
        super().__init__(status_code, msg)
        self.retry_after = retry_after


class ServerError(WesApiError):
    """5xx: the server failed; the request may be retried later."""


class UnexpectedResponseError(WesClientError):
    """The server's answer matches neither the expected schema nor ``ErrorResponse``."""


class InputFileError(WesClientError, FileNotFoundError):
    """A local file named by the workflow or its inputs does not exist or cannot be read."""


class InputTypeError(WesClientError, ValueError):
    """An input does not fit the type the workflow declares, or a required input is missing.

    Found before anything is sent, in the local workflow document (the server makes the same
    check, answering 400 with the same lines).

    Attributes:
        workflow: The workflow whose inputs were checked.
        problems: One line per problem, such as ``input "count": expected int, got string
            "three"``.
    """

    def __init__(self, workflow: str, problems: Sequence[str]) -> None:
        self.workflow = workflow
        self.problems = list(problems)
        super().__init__(f"{summarise(self.problems)} (the inputs of {workflow})")


class RunFailed(WesClientError):
    """A run ended in a state other than COMPLETE.

    The message names the task that failed, with its own exit code and the end of its stderr
    (the engine's exit code only says that some task failed). A cancelled run's message just
    says so.

    Attributes:
        run_id: The run.
        state: Its final state (EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED or PREEMPTED).
        exit_code: The engine's exit code, if the server reported one.
        system_logs: The server's own log lines about the run (why it failed).
        stderr_tail: The last lines of the engine's standard error.
        task: The task that failed (the last one with a non-zero exit code), if known.
        task_stderr_tail: The last lines of that task's standard error.
    """

    def __init__(
        self,
        run_id: str,
        state: State,
        *,
        exit_code: int | None = None,
        system_logs: list[str] | None = None,
        stderr_tail: str = "",
        task: TaskLog | None = None,
        task_stderr_tail: str = "",
    ) -> None:
        self.run_id = run_id
        self.state = state
        self.exit_code = exit_code
        self.system_logs = list(system_logs or [])
        self.stderr_tail = stderr_tail
        self.task = task
        self.task_stderr_tail = task_stderr_tail
        super().__init__(self._describe())

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled rather than failed."""
        return str(self.state) in ("CANCELED", "CANCELING")

    def _describe(self) -> str:
        if self.cancelled:
            return f"run {self.run_id} was cancelled ({self.state})"
        text = f"run {self.run_id} ended {self.state}"
        if self.task is not None:
            text += f": task {self.task.name or self.task.id!r} exited with {self.task.exit_code}"
            if self.exit_code is not None:
                text += f" (engine exit code {self.exit_code})"
        elif self.exit_code is not None:
            text += f", exit code {self.exit_code}"
        if self.task is not None:
            # The task's own stderr says why; the system logs would only quote the engine's
            # log, which says that the task failed.
            if self.task_stderr_tail.strip():
                name = self.task.name or self.task.id
                text += f"\n--- stderr of task {name!r} (last lines) ---\n"
                text += self.task_stderr_tail
            return text
        if self.system_logs:
            text += "\n" + "\n".join(self.system_logs[-5:])
        # This server already quotes the end of stderr in its system logs; others may not.
        last_line = self.stderr_tail.strip().rsplit("\n", 1)[-1]
        if last_line and not any(last_line in line for line in self.system_logs):
            text += "\n--- stderr (last lines) ---\n" + self.stderr_tail
        return text


class WaitTimeout(WesClientError, TimeoutError):
    """A wait ran out of time; the run itself goes on (cancel it if you no longer want it).

    Attributes:
        run_id: The run waited for (``None`` for a group).
        state: The state last seen (``None`` for a group).
    """

    def __init__(self, msg: str, run_id: str | None = None, state: State | None = None) -> None:
        super().__init__(msg)
        self.run_id = run_id
        self.state = state


class RunNotFinished(WesClientError):
    """The run has not ended, so it has no outputs to list or download yet.

    Attributes:
        run_id: The run.
        state: The state it is in.
    """

    def __init__(self, run_id: str, state: State) -> None:
        super().__init__(
            f"run {run_id} is {state}, not finished: it has no outputs yet; wait for it "
            "first (run.wait(), wait=True, or toolchest-wes wait / --wait)"
        )
        self.run_id = run_id
        self.state = state


class NoMatchingOutputs(WesClientError):
    """No output file of the run matches the ``include`` globs.

    Attributes:
        run_id: The run.
        include: The globs.
        available: The paths of the run's output files.
    """

    def __init__(self, run_id: str, include: Sequence[str], available: Sequence[str]) -> None:
        self.run_id = run_id
        self.include = list(include)
        self.available = list(available)
        shown = ", ".join(self.available[:20]) or "none"
        if len(self.available) > 20:
            shown += f", … ({len(self.available)} in all)"
        super().__init__(
            f"no output file of run {run_id} matches {', '.join(map(repr, self.include))}; "
            f"its files: {shown}"
        )


class DownloadError(WesClientError):
    """A downloaded file does not match the size or checksum the server listed."""
