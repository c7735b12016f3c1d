"""What every client command shares: server options, run references, errors and Ctrl-C."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from toolchest_wes.cli._output import (
    ExitCode,
    describe_error,
    exit_code_for_error,
    warn,
)
from toolchest_wes.client import Journal, Run, RunFailed, WesClient, WesClientError

__all__ = [
    "LAST",
    "Session",
    "cancel_quietly",
    "client_command",
    "detach_on_interrupt",
    "parse_pairs",
    "server_options",
    "stop",
]

#: The run reference that names the newest run submitted from this machine to the server.
LAST = "@last"

_Callback = Callable[..., Any]


@dataclass
class Session:
    """What a client command works with: the SDK client and the output format."""

    client: WesClient
    as_json: bool

    def run(self, ref: str) -> Run:
        """A handle on the run ``ref`` names: a run id, ``@last`` or ``@last~N``.

        ``@last`` is the newest run in the submission journal for this server; ``@last~1`` the
        one before it.
        """
        if not ref.startswith("@"):
            return Run(self.client, ref)
        back = _last_offset(ref)
        journal = self.client.journal or Journal()
        ids = [e.run_id for e in journal.entries(self.client.url) if e.run_id]
        if back >= len(ids):
            raise click.BadParameter(
                f"the journal ({journal.path}) has {len(ids)} run(s) submitted to "
                f"{self.client.url}, so {ref} names none; give a run id",
                param_hint="RUN",
            )
        return Run(self.client, ids[-1 - back])


def _last_offset(ref: str) -> int:
    head, _, back = ref.partition("~")
    if head != LAST or (back and not back.isdigit()):
        raise click.BadParameter(
            f"{ref!r} is not a run reference; use a run id, {LAST} or {LAST}~N", param_hint="RUN"
        )
    return int(back or 0)


def server_options(command: _Callback) -> _Callback:
    """``--url``/``--wes``, ``--token`` and ``--retries``: which server, with which credentials,
    how patiently."""
    command = click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=5,
        show_default=True,
        help="Times a request is sent again after a connection error or a 429/502/503/504 "
        "(a 429 that says when to come back is waited out for up to 10 minutes on top).",
    )(command)
    command = click.option(
        "--token",
        metavar="TOKEN",
        help="Bearer token.  [default: $TOOLCHEST_WES_TOKEN, then the config file]",
    )(command)
    return click.option(
        "--url",
        "--wes",
        "url",
        metavar="URL",
        help="The WES server.  [default: $TOOLCHEST_WES_URL, then the config file, then "
        "http://127.0.0.1:8080]",
    )(command)


def client_command(command: _Callback) -> _Callback:
    """Give a command ``--url``, ``--token`` and ``--json``, and a :class:`Session` as its first
    argument; turn SDK errors and Ctrl-C into a message on stderr and an exit code."""

    @server_options
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @functools.wraps(command)
    def wrapper(
        url: str | None, token: str | None, retries: int, as_json: bool, **kwargs: Any
    ) -> Any:
        client = make_client(url, token, retries)
        try:
            return command(Session(client, as_json), **kwargs)
        except WesClientError as error:
            fail(error, client.url)
        except KeyboardInterrupt:
            warn("interrupted")
            stop(ExitCode.INTERRUPTED)
        finally:
            client.close()

    return wrapper


def make_client(
    url: str | None,
    token: str | None,
    retries: int = 5,
    rate_limit_wait: float | None = None,
) -> WesClient:
    """The SDK client: flags first, then the environment, then the config file.

    ``rate_limit_wait``: how long a request may wait out 429 answers (``Retry-After``);
    ``None``: the client's default.
    """
    try:
        return WesClient(url, token, retries=retries, rate_limit_wait=rate_limit_wait)
    except ValueError as error:  # an unreadable config file
        raise click.UsageError(str(error)) from None


def fail(error: WesClientError, url: str) -> NoReturn:
    """Report an SDK error on stderr and exit with its code."""
    if isinstance(error, RunFailed) and error.cancelled:
        warn(str(error))  # asked for, so not an error; the exit code (4) still tells
        stop(exit_code_for_error(error))
    warn(f"error: {describe_error(error, url)}")
    stop(exit_code_for_error(error))


def stop(code: int) -> NoReturn:
    """End the command with ``code`` (click's way, so test runners see it too)."""
    raise click.exceptions.Exit(int(code))


def parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``("k=v", ...)`` from a repeatable option as a dict."""
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        pairs[key] = val
    return pairs


def resume_hint(run_id: str) -> str:
    """The commands that pick a detached run up again."""
    return (
        f"detached; run {run_id} goes on. Resume with:\n"
        f"  toolchest-wes wait {run_id}\n"
        f"  toolchest-wes logs -f {run_id}\n"
        f"  toolchest-wes download {run_id}\n"
        f"or stop it with:\n"
        f"  toolchest-wes cancel {run_id}"
    )


@contextlib.contextmanager
def detach_on_interrupt(run: Run, cancel: bool = False) -> Iterator[None]:
    """On Ctrl-C, leave the run going and say how to resume, or with ``cancel`` cancel it;
    then exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        if not cancel:
            warn(resume_hint(run.run_id))
            stop(ExitCode.INTERRUPTED)
        # Only Ctrl-C cancels: a timeout or a failed wait leaves the run as it is, which
        # is why Run.cancel_on_interrupt (which also cancels on any exception) is not used.
        cancel_quietly(run, "interrupted; ")
        stop(ExitCode.INTERRUPTED)


def cancel_quietly(run: Run, prefix: str = "") -> None:
    """Ask for the run to be cancelled and say on stderr whether that worked; never raises."""
    try:
        sent = run.cancel()
    except WesClientError as error:
        warn(f"{prefix}cancelling run {run.run_id} failed: {error}")
    else:
        if sent:
            warn(f"{prefix}cancel requested for run {run.run_id}")
        else:
            warn(f"{prefix}run {run.run_id} had already finished; nothing to cancel")
