"""Exit codes and output helpers shared by the client commands."""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

import click
from pydantic import BaseModel

from toolchest_wes.client import (
    BadRequestError,
    BundleError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InputFileError,
    InputTypeError,
    NoMatchingOutputs,
    NotFoundError,
    RunFailed,
    RunNotFinished,
    TransportError,
    UnauthorizedError,
    WaitTimeout,
    WesApiError,
    WesClientError,
)
from toolchest_wes.models import State

__all__ = [
    "EXIT_CODES_HELP",
    "ExitCode",
    "echo_json",
    "exit_code_for_error",
    "exit_code_for_state",
    "to_jsonable",
    "warn",
]


class ExitCode(IntEnum):
    """What the ``toolchest-wes`` client commands exit with."""

    #: The command worked; a run it waited for ended COMPLETE.
    OK = 0
    #: The run failed: EXECUTOR_ERROR (the workflow itself failed).
    RUN_FAILED = 1
    #: Usage error: bad options or arguments, a missing local file, an input that does not
    #: fit its type, no run for ``@last``, a request the server refused as invalid (400,
    #: 409), outputs of a run that has not finished, or ``--include`` globs that match no
    #: output file.
    USAGE = 2
    #: The run ended SYSTEM_ERROR or PREEMPTED: the service failed, not the workflow.
    SYSTEM_ERROR = 3
    #: The run was cancelled (CANCELED or CANCELING).
    CANCELED = 4
    #: ``--timeout`` passed before the run ended; the run goes on.
    TIMEOUT = 5
    #: The server could not be reached, failed (5xx), or answered something unreadable; a
    #: downloaded file did not match its checksum.
    SERVER_ERROR = 6
    #: No such run, task or file, or not allowed: 401, 403, 404, 410.
    NOT_FOUND = 7
    #: Interrupted by Ctrl-C (SIGINT); a run being waited for goes on unless cancelled.
    INTERRUPTED = 130


EXIT_CODES_HELP = """\b
Exit codes of the client commands:
  0    success; a run waited for ended COMPLETE
  1    the run failed (EXECUTOR_ERROR)
  2    usage error: bad arguments, missing local file, an input of the
       wrong type, no run for @last, the server refused the request as
       invalid (400, 409), outputs of an unfinished run, or --include
       globs that match no output file
  3    the run ended SYSTEM_ERROR or PREEMPTED
  4    the run was cancelled (CANCELED, CANCELING)
  5    --timeout passed before the run ended (the run goes on)
  6    server unreachable, server error (5xx) or unreadable answer
  7    not found or not allowed (401, 403, 404, 410)
  130  interrupted by Ctrl-C
"""


def exit_code_for_state(state: State) -> ExitCode:
    """The exit code of a command that waited for a run that ended in ``state``."""
    if state is State.COMPLETE:
        return ExitCode.OK
    if state in (State.SYSTEM_ERROR, State.PREEMPTED):
        return ExitCode.SYSTEM_ERROR
    if state in (State.CANCELED, State.CANCELING):
        return ExitCode.CANCELED
    return ExitCode.RUN_FAILED


def exit_code_for_error(error: WesClientError) -> ExitCode:
    """The exit code for an SDK exception that ended a command."""
    if isinstance(error, RunFailed):
        return exit_code_for_state(error.state)
    if isinstance(error, WaitTimeout):
        return ExitCode.TIMEOUT
    if isinstance(
        error,
        InputFileError
        | InputTypeError
        | BundleError
        | BadRequestError
        | ConflictError
        | RunNotFinished
        | NoMatchingOutputs,
    ):
        return ExitCode.USAGE
    if isinstance(error, UnauthorizedError | ForbiddenError | NotFoundError | GoneError):
        return ExitCode.NOT_FOUND
    return ExitCode.SERVER_ERROR


def describe_error(error: WesClientError, url: str) -> str:
    """A one-paragraph message for an SDK exception, naming the server when that helps."""
    if isinstance(error, TransportError):
        return f"cannot reach the WES server at {url}: {error}"
    if isinstance(error, UnauthorizedError):
        return (
            f"the server refused the credentials ({error.status_code}: {error.msg}); "
            "give a token with --token, TOOLCHEST_WES_TOKEN or the config file"
        )
    if isinstance(error, WesApiError):
        return f"the server answered {error.status_code}: {error.msg}"
    return str(error)


def to_jsonable(value: Any) -> Any:
    """Models as their JSON form (as the server sent them), containers recursively."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=False)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(to_jsonable(value), indent=2))


def warn(message: str) -> None:
    """A message for the person at the terminal, on stderr (stdout stays parseable)."""
    click.echo(message, err=True)
