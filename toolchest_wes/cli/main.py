"""The ``toolchest-wes`` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from toolchest_wes import __version__
from toolchest_wes.config import ContainerRuntime, Settings

__all__ = ["cli"]


@click.group()
@click.version_option(__version__, prog_name="toolchest-wes")
def cli() -> None:
    """toolchest-wes: a GA4GH WES 1.1 server that runs CWL workflows."""


@cli.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on.  [default: 8080]")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run records and run directories are kept.  [default: ~/.local/share/toolchest-wes]",
)
@click.option("--max-concurrent-runs", type=int, help="Runs executed at once.")
@click.option(
    "--container-runtime",
    type=click.Choice([c.value for c in ContainerRuntime]),
    help="How tools with a DockerRequirement run.  [default: auto]",
)
@click.option("--public-url", help="Base URL clients reach this server at, behind a proxy.")
@click.option("--threads", type=int, help="Request threads.  [default: 16]")
@click.option("--log-level", help="DEBUG, INFO, WARNING or ERROR.  [default: INFO]")
def serve(**flags: Any) -> None:
    """Start the WES server (embedded mode: SQLite store and a local run pool).

    Every option can also be set as an environment variable: TOOLCHEST_WES_ and the option
    name in capitals, such as TOOLCHEST_WES_PORT=9000. Options win over the environment.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise click.UsageError(_validation_message(exc)) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # gunicorn workers build their own Settings from the environment, so the flags travel
    # there; the same names work for anyone who starts gunicorn directly.
    env = dict(os.environ)
    for key, value in given.items():
        env[f"TOOLCHEST_WES_{key.upper()}"] = str(value)
    env["TOOLCHEST_WES_DATA_DIR"] = str(settings.data_dir.resolve())
    click.echo(
        f"toolchest-wes {__version__}: http://{settings.host}:{settings.port}/ga4gh/wes/v1 "
        f"(data in {settings.data_dir.resolve()})",
        err=True,
    )
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:toolchest_wes.server.gunicorn_conf",
        "toolchest_wes.server.wsgi:app",
    ]
    os.execve(sys.executable, argv, env)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        parts.append(f"--{where.replace('_', '-')}: {error['msg']}")
    return "; ".join(parts)


def main() -> None:
    """Run the CLI."""
    cli()


if __name__ == "__main__":
    main()
