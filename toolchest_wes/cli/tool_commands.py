"""The client commands of named tools: ``tools``, ``tools show NAME`` and ``run NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from toolchest_wes.cli._common import Session, client_command, detach_on_interrupt, parse_pairs
from toolchest_wes.cli._output import echo_json, warn
from toolchest_wes.cli.client_commands import finish_run
from toolchest_wes.client import ToolInfo, ToolInput, format_tools

__all__ = ["TOOL_COMMANDS", "input_values"]

_NUMBERS: dict[str, type] = {"int": int, "long": int, "float": float, "double": float}


@click.group(invoke_without_command=True)
@client_command
def tools(session: Session) -> None:
    """The server's catalog of named tools, as a table (see `tools show NAME`)."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    found = session.client.tools.list()
    if session.as_json:
        echo_json([t.as_dict() for t in found])
    else:
        click.echo(format_tools(found))


@tools.command("show")
@click.argument("name")
@client_command
def show(session: Session, name: str) -> None:
    """A tool's description, inputs and outputs."""
    info = session.client.tools.describe(name)
    if session.as_json:
        echo_json(info.as_dict())
        return
    click.echo(f"{info.name} {info.version}: {info.description}\n{info.url}\n\nInputs:")
    for item in info.inputs:
        need = "required" if item.required else f"default {item.default!r}"
        click.echo(f"  {item.name}  {item.type}  ({need})  {item.doc}".rstrip())
    if info.outputs:
        click.echo("\nOutputs:\n" + "\n".join(f"  {name}" for name in info.outputs))


@click.command("run")
@click.argument("name")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A tool input (repeat; repeat one name for an array). A File input takes a local "
    "path, a File array also a folder.",
)
@click.option(
    "--output-path",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Download the outputs into DIR once the run ends.",
)
@click.option("--async", "is_async", is_flag=True, help="Print the run id and return at once.")
@click.option("--timeout", type=float, metavar="SECONDS", help="Wait at most this long.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the run (repeat).")
@client_command
def run_tool(
    session: Session,
    name: str,
    inputs: tuple[str, ...],
    output_path: Path | None,
    is_async: bool,
    timeout: float | None,
    tags: tuple[str, ...],
) -> None:
    """Run the catalog tool NAME with its inputs; wait for it (Ctrl-C cancels the run) and
    print its final state, unless --async.

    Example: toolchest-wes run wc --input inputs=data/ --output-path out/
    """
    tool = session.client.tools[name]
    info = tool.info
    values = input_values(info, inputs)
    run = tool(**values, tags=parse_pairs(tags, "--tag"), is_async=True)
    if is_async:
        if session.as_json:
            echo_json({"run_id": run.run_id})
        else:
            click.echo(run.run_id)
        return
    warn(f"run {run.run_id} of {info.name} {info.version} (Ctrl-C cancels it)")
    with detach_on_interrupt(run, cancel=True):
        finish_run(session, run, timeout, on_stdout=True)
        if output_path is not None:
            written = run.download(output_path)
            warn(f"downloaded {len(written)} file(s) into {output_path}")


def input_values(info: ToolInfo, pairs: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` options as the tool's inputs: numbers and booleans by the input's type,
    a repeated name (or an array input) as a list. A value that does not convert stays a
    string, for the input check to name."""
    by_name = {item.name: item for item in info.inputs}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, value = next(iter(parse_pairs([pair], "--input").items()))
        item = by_name.get(key)
        converted = _convert(value, item) if item else value
        if key in values or (item and "[]" in item.type):
            previous = values.get(key, [])
            values[key] = [*(previous if isinstance(previous, list) else [previous]), converted]
        else:
            values[key] = converted
    return values


def _convert(value: str, item: ToolInput) -> Any:
    base = item.type.removesuffix("?").removesuffix("[]")
    if base in _NUMBERS:
        try:
            return _NUMBERS[base](value)
        except ValueError:
            return value
    if base == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


TOOL_COMMANDS = [tools, run_tool]
