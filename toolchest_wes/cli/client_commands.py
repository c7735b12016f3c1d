"""The client commands of ``toolchest-wes``: submit, watch, inspect and fetch runs on any WES
server, through the SDK in ``toolchest_wes.client``.

Every command takes ``--url``/``--wes``, ``--token`` and ``--json``; a RUN argument is a run id,
``@last`` (the newest run this machine submitted to the server) or ``@last~N``. Exit codes are
in :class:`toolchest_wes.cli._output.ExitCode`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from toolchest_wes.cli._common import (
    Session,
    client_command,
    detach_on_interrupt,
    parse_pairs,
    stop,
)
from toolchest_wes.cli._output import (
    EXIT_CODES_HELP,
    ExitCode,
    echo_json,
    exit_code_for_state,
    warn,
)
from toolchest_wes.cli._workflow_type import (
    WORKFLOW_TYPES,
    default_type_version,
    workflow_type_of,
)
from toolchest_wes.client import ConflictError, Run, RunFailed, format_runs
from toolchest_wes.client._core import REQUEST_ID_TAG, Stream
from toolchest_wes.client._listing import parse_states
from toolchest_wes.client.tables import duration, format_table
from toolchest_wes.models import RunLog

__all__ = ["COMMANDS", "finish_run", "register"]

RUN_HELP = "RUN is a run id, @last (the newest run submitted from here) or @last~N."


@click.command()
@click.argument("workflow")
@click.argument("job", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the run (repeat).")
@click.option(
    "--engine-param",
    "engine_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A workflow_engine_parameters entry, such as --engine-param=--parallel=true.",
)
@click.option(
    "--attach",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Another file or folder to attach (repeat).",
)
@click.option(
    "--type",
    "workflow_type",
    type=click.Choice(WORKFLOW_TYPES, case_sensitive=False),
    help="workflow_type, when the file name does not tell: .wdl is WDL, a Snakefile or .smk "
    "is SMK (Snakemake), anything else CWL.",
)
@click.option(
    "--type-version",
    help="workflow_type_version; by default CWL's cwlVersion, WDL's version line, or 1.0.",
)
@click.option(
    "--engine", help="workflow_engine (such as cwltool or toil), when the server offers several."
)
@click.option("--wait", is_flag=True, help="Wait until the run ends; exit with its outcome.")
@click.option(
    "--timeout", type=float, metavar="SECONDS", help="Wait at most this long (implies --wait)."
)
@click.option(
    "--download",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Wait, then download the outputs into DIR.",
)
@click.option("--cancel-on-interrupt", is_flag=True, help="Ctrl-C while waiting cancels the run.")
@client_command
def submit(
    session: Session,
    workflow: str,
    job: Path | None,
    tags: tuple[str, ...],
    engine_params: tuple[str, ...],
    attach: tuple[Path, ...],
    workflow_type: str | None,
    type_version: str | None,
    engine: str | None,
    wait: bool,
    timeout: float | None,
    download: Path | None,
    cancel_on_interrupt: bool,
) -> None:
    """Submit WORKFLOW (a local CWL or WDL file or Snakefile, or a URL) with the inputs in
    JOB (YAML or JSON).

    The local files a CWL workflow and its inputs name are attached; a WDL file or Snakefile
    is attached as it is, with what --attach adds beside it (imports, scripts, data). Prints
    the run id on stdout, so RUN=$(toolchest-wes submit wf.cwl job.yml) works.
    """
    kind = workflow_type.upper() if workflow_type else workflow_type_of(workflow)
    run = session.client.submit(
        workflow,
        job,
        attachments=attach,
        tags=parse_pairs(tags, "--tag"),
        engine_params=parse_pairs(engine_params, "--engine-param") or None,
        workflow_type=kind,
        workflow_type_version=type_version or default_type_version(workflow, kind),
        engine=engine,
    )
    if not (wait or download or timeout is not None):
        if session.as_json:
            echo_json({"run_id": run.run_id})
        else:
            click.echo(run.run_id)
        return
    if not session.as_json:
        click.echo(run.run_id)
    with detach_on_interrupt(run, cancel_on_interrupt):
        warn(f"waiting for run {run.run_id} (Ctrl-C {_ctrl_c(cancel_on_interrupt)})")
        finish_run(session, run, timeout, on_stdout=session.as_json)
        if download is not None:
            written = run.download(download)
            warn(f"downloaded {len(written)} file(s) into {download}")


@click.command()
@click.argument("run_ref", metavar="RUN")
@client_command
def status(session: Session, run_ref: str) -> None:
    """Print the state of RUN.

    Exits 0 whatever the state; `wait` exits with the run's outcome.
    """
    run = session.run(run_ref)
    state = run.client.get_run_status(run.run_id)
    if session.as_json:
        echo_json(state)
    else:
        click.echo(state.state)


@click.command("wait")
@click.argument("run_ref", metavar="RUN")
@click.option("--timeout", type=float, metavar="SECONDS", help="Wait at most this long.")
@click.option("--cancel-on-interrupt", is_flag=True, help="Ctrl-C cancels the run.")
@client_command
def wait_command(
    session: Session, run_ref: str, timeout: float | None, cancel_on_interrupt: bool
) -> None:
    """Wait until RUN ends; print its final state and exit with its outcome."""
    run = session.run(run_ref)
    with detach_on_interrupt(run, cancel_on_interrupt):
        warn(f"waiting for run {run.run_id} (Ctrl-C {_ctrl_c(cancel_on_interrupt)})")
        finish_run(session, run, timeout, on_stdout=True)


def _ctrl_c(cancel_on_interrupt: bool) -> str:
    return "cancels the run" if cancel_on_interrupt else "detaches, the run goes on"


def finish_run(session: Session, run: Run, timeout: float | None, *, on_stdout: bool) -> RunLog:
    """Wait for ``run`` and report how it ended; exit with its code unless COMPLETE.

    With ``on_stdout`` the final state (or the RunLog, with ``--json``) goes to stdout, else a
    line goes to stderr. A failure's reason and stderr tail always go to stderr.
    """
    try:
        log = run.wait(timeout=timeout)
    except RunFailed as failed:
        # A cancel is something someone asked for, not an error: no engine log with it.
        warn(str(failed) if failed.cancelled else f"error: {failed}")
        if on_stdout:
            _print_final(session, run.log())
        stop(exit_code_for_state(failed.state))
    if on_stdout:
        _print_final(session, log)
    else:
        warn(f"run {run.run_id} {log.state}")
    return log


def _print_final(session: Session, log: RunLog) -> None:
    if session.as_json:
        echo_json(log)
    else:
        click.echo(log.state)


@click.command()
@click.argument("run_ref", metavar="RUN")
@client_command
def cancel(session: Session, run_ref: str) -> None:
    """Ask the server to cancel RUN (it ends CANCELED).

    A run that has already finished is left as it is; the message says in which state.
    """
    run = session.run(run_ref)
    sent = run.cancel()
    state = run.status()
    if session.as_json:
        echo_json({"run_id": run.run_id, "cancel_requested": sent, "state": state})
    elif sent:
        click.echo(f"cancel requested for run {run.run_id}")
    else:
        click.echo(f"run {run.run_id} had already finished ({state}); nothing to cancel")


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--stream",
    type=click.Choice(["stderr", "stdout"]),
    default="stderr",
    show_default=True,
    help="Which log: the engine's stderr (its log) or its stdout.",
)
@click.option("--stdout", "stdout_flag", is_flag=True, help="Same as --stream stdout.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new text until the run ends.")
@click.option("--task", metavar="TASK", help="A task id or name: that task's log.")
@client_command
def logs(
    session: Session, run_ref: str, stream: str, stdout_flag: bool, follow: bool, task: str | None
) -> None:
    """Print the log of RUN (or of one of its tasks)."""
    run = session.run(run_ref)
    which: Stream = "stdout" if stdout_flag or stream == "stdout" else "stderr"
    if not follow:
        text = run.logs(which, task=task)
        if session.as_json:
            echo_json({"run_id": run.run_id, "stream": which, "task": task, "text": text})
        else:
            click.echo(text, nl=False)
        return
    with detach_on_interrupt(run):
        for chunk in run.follow_logs(which, task=task):
            if session.as_json:  # one JSON object per line as the text arrives
                click.echo(json.dumps({"run_id": run.run_id, "stream": which, "text": chunk}))
            else:
                click.echo(chunk, nl=False)


@click.command()
@click.argument("run_ref", metavar="RUN")
@client_command
def tasks(session: Session, run_ref: str) -> None:
    """List the tasks (CWL steps and jobs) of RUN."""
    run = session.run(run_ref)
    found = run.tasks()
    if session.as_json:
        echo_json(found)
        return
    rows = [
        [
            t.id,
            t.name,
            "-" if t.exit_code is None else str(t.exit_code),
            _short(t.start_time),
            duration(t.start_time, t.end_time),
        ]
        for t in found
    ]
    click.echo(format_table(["TASK ID", "NAME", "EXIT", "STARTED", "DURATION"], rows))


def _short(stamp: str | None) -> str:
    return stamp[:19].replace("T", " ") if stamp else "-"


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--include", multiple=True, metavar="GLOB", help="Only matching files (repeat).")
@click.option("--wait", is_flag=True, help="Wait for an unfinished run to end first.")
@client_command
def outputs(session: Session, run_ref: str, include: tuple[str, ...], wait: bool) -> None:
    """List the output files of RUN with their sizes and checksums, and when they expire.

    A run that has not finished, or --include globs that match no file, exit 2.
    """
    run = session.run(run_ref)
    with detach_on_interrupt(run):
        files = run.outputs(include or None, wait=wait)
    if session.as_json:
        echo_json(
            {
                "run_id": run.run_id,
                "files": list(files),
                "total_size": files.total_size,
                "outputs_expire_at": files.expire_at,
            }
        )
    else:
        click.echo(str(files))


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("dest", required=False, default=".", type=click.Path(file_okay=False))
@click.option("--include", multiple=True, metavar="GLOB", help="Only matching files (repeat).")
@click.option("--archive", is_flag=True, help="Fetch one zip of the outputs instead.")
@click.option("--wait", is_flag=True, help="Wait for an unfinished run to end first.")
@client_command
def download(
    session: Session,
    run_ref: str,
    dest: str,
    include: tuple[str, ...],
    archive: bool,
    wait: bool,
) -> None:
    """Download the outputs of RUN into DEST (default: here), keeping their paths.

    Complete files are skipped and partial ones resumed, so running it again after an
    interruption finishes the job. Prints each file written. A run that has not finished,
    or --include globs that match no file, exit 2.
    """
    run = session.run(run_ref)
    with detach_on_interrupt(run):
        written = run.download(dest, include or None, archive=archive, wait=wait)
    if session.as_json:
        echo_json({"run_id": run.run_id, "files": [str(p) for p in written]})
    else:
        for path in written:
            click.echo(str(path))


@click.command("list")
@click.option("--last", "last_n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Only runs in this state or group (repeat, or comma-separated): a WES state, "
    "or active, finished, failed (EXECUTOR_ERROR, SYSTEM_ERROR, PREEMPTED), canceled.",
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only runs with this tag.")
@client_command
def list_command(
    session: Session, last_n: int, states: tuple[str, ...], tags: tuple[str, ...]
) -> None:
    """List the newest runs on the server, newest first."""
    try:
        selected = parse_states(states or None)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--state") from None
    runs = session.client.runs(last_n, state=selected, tags=parse_pairs(tags, "--tag"))
    if session.as_json:
        echo_json([run.known_log() for run in runs])
    else:
        click.echo(format_runs(runs))


@click.command()
@click.argument("run_ref", metavar="RUN")
@client_command
def info(session: Session, run_ref: str) -> None:
    """Show RUN: state, times, exit code, system logs, outputs (--json: the whole RunLog)."""
    log = session.run(run_ref).log()
    if session.as_json:
        echo_json(log)
        return
    details = log.run_log
    request = log.request
    rows = [
        ("run", log.run_id),
        ("state", str(log.state)),
        ("workflow", request.workflow_url if request else "-"),
        ("tags", _tags(request.tags) if request else ""),
        ("submitted", _short(log.submitted_time)),
        ("started", _short(details.start_time if details else None)),
        ("ended", _short(details.end_time if details else None)),
        ("duration", duration(details.start_time, details.end_time) if details else "-"),
        ("exit code", str(details.exit_code) if details and details.exit_code is not None else "-"),
        ("outputs", str(len(log.outputs or {}))),
        ("expires", _expiry(log)),  # the outputs, by the retention policy
        ("stderr", (details.stderr if details else None) or "-"),
    ]
    click.echo(_fields(rows))
    for line in (details.system_logs if details else None) or []:
        click.echo(f"system log: {line}")


def _tags(tags: dict[str, str]) -> str:
    # The client's own retry tag means nothing to a reader; --json still has it.
    return ", ".join(f"{k}={v}" for k, v in tags.items() if k != REQUEST_ID_TAG)


def _expiry(log: RunLog) -> str:
    extra = log.model_extra or {}
    expire_at = extra.get("outputs_expire_at")
    if not expire_at:
        return "never" if "outputs_expire_at" in extra else "-"
    when = f"{_short(str(expire_at))} UTC"
    return f"removed at {when}" if extra.get("outputs_expired") else when


@click.command()
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@client_command
def delete(session: Session, run_refs: tuple[str, ...]) -> None:
    """Remove finished runs: their records and files. An active run is left; cancel it first.

    Exits 2 when a run could not be deleted because it is still active.
    """
    deleted: list[str] = []
    active: list[str] = []
    for ref in run_refs:
        run = session.run(ref)
        try:
            run.delete()
        except ConflictError:
            active.append(run.run_id)
            warn(
                f"run {run.run_id} is still {run.status()}, so it was not deleted; cancel it "
                f"first (toolchest-wes cancel {run.run_id}) or wait for it"
            )
            continue
        deleted.append(run.run_id)
        if not session.as_json:
            click.echo(f"deleted run {run.run_id}")
    if session.as_json:
        echo_json({"deleted": deleted, "active": active})
    if active:
        stop(ExitCode.USAGE)


@click.command("service-info")
@client_command
def service_info(session: Session) -> None:
    """Show what the server runs: versions, workflow types, engines, run counts."""
    service = session.client.get_service_info()
    if session.as_json:
        echo_json(service)
        return
    types = "; ".join(
        f"{name} {', '.join(v.get('workflow_type_version', []))}"
        for name, v in service.workflow_type_versions.items()
    )
    engines = ", ".join(service.workflow_engine_versions) or "-"
    counts = ", ".join(f"{k}={v}" for k, v in service.system_state_counts.items() if v) or "-"
    rows = [
        ("server", session.client.url),
        ("name", f"{service.name} {service.version}".strip() or "-"),
        ("wes versions", ", ".join(service.supported_wes_versions) or "-"),
        ("workflow types", types or "-"),
        ("engines", engines),
        ("runs", counts),
    ]
    click.echo(_fields(rows))


def _fields(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows) + 1
    return "\n".join(f"{name + ':':<{width}} {value}".rstrip() for name, value in rows)


COMMANDS = [
    submit,
    status,
    wait_command,
    cancel,
    logs,
    tasks,
    outputs,
    download,
    list_command,
    info,
    delete,
    service_info,
]


def register(group: click.Group) -> None:
    """Add the client commands and cwl-runner to ``group``, and the exit codes to its help."""
    from toolchest_wes.cli.cwl_runner import cwl_runner
    from toolchest_wes.cli.event_commands import events
    from toolchest_wes.cli.tool_commands import TOOL_COMMANDS

    for command in [*COMMANDS, *TOOL_COMMANDS, cwl_runner, events]:
        takes_run = any(p.name == "run_ref" for p in command.params)
        if command.help and takes_run and RUN_HELP not in command.help:
            command.help += f"\n\n{RUN_HELP}"
        group.add_command(command)
    group.epilog = EXIT_CODES_HELP
