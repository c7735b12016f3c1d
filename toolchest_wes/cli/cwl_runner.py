"""``toolchest-wes cwl-runner``: run a CWL workflow on a WES server as if it ran here.

It submits the workflow with the files it needs, waits (showing the engine's log on stderr),
downloads every output into ``--outdir`` and prints the CWL output object on stdout with each
File and Directory ``location`` and ``path`` pointing at the local copy, then exits 0 on
success and non-zero otherwise. That is the cwl-runner interface, so cwltest (and anything else
that drives a cwl-runner) can use any WES server.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import click

from toolchest_wes.cli._common import (
    cancel_quietly,
    fail,
    make_client,
    parse_pairs,
    server_options,
    stop,
)
from toolchest_wes.cli._output import ExitCode, exit_code_for_state, warn
from toolchest_wes.client import Run, RunFailed, WesClientError
from toolchest_wes.models import OutputFile, RunLog, State

__all__ = ["cwl_runner", "localize"]

#: cwltool options that take a value and mean nothing for a remote run; accepted and ignored
#: so that tools written for cwltool (cwltest among them) can call this runner unchanged.
IGNORED_WITH_VALUE = (
    "--basedir",
    "--tmpdir-prefix",
    "--tmp-outdir-prefix",
    "--cachedir",
    "--default-container",
)

#: Highest exit code passed through from the engine (cwltool's 33 means "unsupported
#: requirement", which cwltest counts apart from failures).
MAX_ENGINE_EXIT = 125

#: How often the run's state is polled: from, to (seconds).
POLL = (0.25, 5.0)

#: The exit code after SIGTERM (128 + the signal number, as shells report it).
TERMINATED = 128 + signal.SIGTERM


class _Terminated(KeyboardInterrupt):
    """SIGTERM (cwltest's timeout, a batch system) ends the wait the way Ctrl-C does."""


def _ignored(command: Any) -> Any:
    for name in IGNORED_WITH_VALUE:
        command = click.option(name, hidden=True, expose_value=False)(command)
    return command


@click.command(
    "cwl-runner",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="WORKFLOW [JOB]")
@click.option(
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Where the outputs are downloaded.",
)
@click.option("--quiet", is_flag=True, help="Do not copy the engine's log to stderr.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the run (repeat).")
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up (and cancel) after this.")
@click.option("--engine", metavar="NAME", help="The server's engine to run it (workflow_engine).")
@_ignored
@server_options
def cwl_runner(
    url: str | None,
    token: str | None,
    retries: int,
    args: tuple[str, ...],
    outdir: Path,
    quiet: bool,
    tags: tuple[str, ...],
    timeout: float | None,
    engine: str | None,
) -> None:
    """Run WORKFLOW with the inputs in JOB on a WES server, like a local cwl-runner.

    Prints the CWL output object on stdout, its files downloaded into --outdir. Exit codes:
    0 on success, the engine's exit code (1 for a permanent failure, 33 for an unsupported
    requirement) when the workflow failed, otherwise those of the other client commands.
    Other cwltool flags (--debug, --parallel, --basedir X ...) are accepted and ignored.
    Ctrl-C or SIGTERM cancels the run (exit 130 or 143).
    """
    positional = [a for a in args if not a.startswith("-")]
    if not positional or len(positional) > 2:
        raise click.UsageError("give WORKFLOW and at most one JOB file")
    workflow = _local(positional[0])
    job = Path(_local(positional[1])) if len(positional) == 2 else None
    # A busy server's 429s are waited out, but never past the run's own time limit.
    client = make_client(url, token, retries, rate_limit_wait=timeout)
    run: Run | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run = client.submit(workflow, job, tags=parse_pairs(tags, "--tag"), engine=engine)
        warn(f"toolchest-wes: run {run.run_id} on {client.url}")
        log = _wait(run, timeout, quiet)
        result = localize(log.outputs or {}, _download(run, outdir))
        click.echo(json.dumps(result, indent=2))
    except KeyboardInterrupt as interrupt:
        if run is not None:
            cancel_quietly(run, "toolchest-wes: ")
        stop(TERMINATED if isinstance(interrupt, _Terminated) else ExitCode.INTERRUPTED)
    except WesClientError as error:
        if run is not None and isinstance(error, TimeoutError):
            cancel_quietly(run, "toolchest-wes: ")
        fail(error, client.url)
    finally:
        signal.signal(signal.SIGTERM, previous)
        client.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _local(ref: str) -> str:
    """A ``file://`` URL (cwltest passes those) as a plain path; anything else unchanged."""
    parts = urlsplit(ref)
    if parts.scheme == "file":
        return unquote(parts.path) + (f"#{parts.fragment}" if parts.fragment else "")
    return ref


def _wait(run: Run, timeout: float | None, quiet: bool) -> RunLog:
    """Wait for the run, copying its log to stderr unless ``quiet``; exit if it failed.

    The log is followed as it is written, except with a timeout: following has none, so the
    log is then shown once the run has ended.
    """
    try:
        if not quiet and timeout is None:
            for text in run.follow_logs("stderr"):
                sys.stderr.write(text)
                sys.stderr.flush()
        log = run.wait(timeout=timeout, initial_interval=POLL[0], max_interval=POLL[1])
        if not quiet and timeout is not None:
            sys.stderr.write(run.logs("stderr"))
        return log
    except RunFailed as failed:
        _report(failed, quiet)
        stop(_failure_code(failed))


def _report(failed: RunFailed, quiet: bool) -> None:
    lines = [f"toolchest-wes: run {failed.run_id} ended {failed.state}"]
    if failed.exit_code is not None:
        lines[0] += f" (exit code {failed.exit_code})"
    lines += [f"  {line}" for line in failed.system_logs[-5:]]
    if failed.task is not None:
        lines.append(
            f"  task {failed.task.name or failed.task.id!r} exited with {failed.task.exit_code}"
        )
        if failed.task_stderr_tail:  # the engine's log never shows the task's own stderr
            lines += ["--- stderr of the task (last lines) ---", failed.task_stderr_tail]
    if quiet and failed.stderr_tail:  # without --quiet the whole log was shown already
        lines += ["--- stderr (last lines) ---", failed.stderr_tail]
    warn("\n".join(lines))


def _failure_code(failed: RunFailed) -> int:
    code = exit_code_for_state(failed.state)
    engine_code = failed.exit_code or 0
    if failed.state is State.EXECUTOR_ERROR and 0 < engine_code <= MAX_ENGINE_EXIT:
        return engine_code
    return code


def _download(run: Run, outdir: Path) -> dict[str, Path]:
    """Download every output file; map each one's URL (and its output path) to the copy."""
    listing: list[OutputFile] = list(run.outputs())
    written = run.download(outdir)
    local: dict[str, Path] = {}
    for entry, path in zip(listing, written, strict=True):
        local[entry.url] = path.resolve()
    base = _outputs_base(listing, run)
    if base:
        local[base] = outdir.resolve()
    return local


def _outputs_base(listing: list[OutputFile], run: Run) -> str:
    """The URL prefix of this run's outputs, as ``…/outputs/``, so that a Directory location
    (a folder, which the file listing does not list) maps to its local folder too."""
    for entry in listing:
        suffix = quote(entry.path)
        if entry.url.endswith("/" + suffix):
            return entry.url[: -len(suffix)]
    if not listing:
        return f"{run.client.url}/runs/{quote(run.run_id, safe='')}/outputs/"
    return ""


def localize(value: Any, local: Mapping[str, Path]) -> Any:
    """A copy of a CWL output object with each File and Directory pointing at its local copy.

    ``local`` maps a download URL to the file written; a key ending in ``/`` maps every URL
    under it to the same path under that folder. ``location`` becomes the copy's ``file://``
    URL and ``path`` its path; ``basename``, ``size``, ``checksum``, ``secondaryFiles`` and
    ``listing`` are kept (and localized in turn). Entries with no local copy stay as they are.
    """
    if isinstance(value, list):
        return [localize(v, local) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: localize(v, local) for k, v in value.items()}
    location = value.get("location")
    if value.get("class") in ("File", "Directory") and isinstance(location, str):
        path = _lookup(location, local)
        if path is not None:
            if value.get("class") == "Directory":
                path.mkdir(parents=True, exist_ok=True)  # an empty folder lists no files
            out["location"] = path.as_uri()
            out["path"] = str(path)
    return out


def _lookup(location: str, local: Mapping[str, Path]) -> Path | None:
    if location in local:
        return local[location]
    for base, root in _prefixes(local):
        if location.startswith(base):
            parts = [p for p in unquote(location[len(base) :]).split("/") if p]
            if ".." in parts:
                return None
            return root.joinpath(*parts)
    return None


def _prefixes(local: Mapping[str, Path]) -> Iterator[tuple[str, Path]]:
    for key, path in local.items():
        if key.endswith("/"):
            yield key, path
