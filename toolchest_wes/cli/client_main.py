"""The ``toolchest-wes`` command of the client-only distribution, ``toolchest-wes-client``.

It has the client commands of :mod:`toolchest_wes.cli.main`, and in place of the server
commands, which need the server's dependencies, stand-ins that say how to get the server.
This module imports nothing of the server side, so the client distribution can ship it
without them (see ``client-dist/pyproject.toml``).
"""

from __future__ import annotations

from typing import Any

import click

from toolchest_wes import __version__
from toolchest_wes.cli.client_commands import register as register_client_commands

__all__ = ["SERVER_COMMANDS", "SERVER_MISSING", "cli"]

#: The commands of ``toolchest-wes`` that only the full distribution has.
SERVER_COMMANDS = ("serve", "worker", "reconcile", "sweep", "token")
SERVER_MISSING = "the server is not installed here: pip install toolchest-wes"


@click.group()
@click.version_option(__version__, prog_name="toolchest-wes")
def cli() -> None:
    """toolchest-wes: a client for any GA4GH WES server (submit, status, wait, logs, outputs,
    download, list, cwl-runner).

    This is the client-only install; the server commands need `pip install toolchest-wes`.
    """


def _server_command(name: str) -> click.Command:
    """A stand-in for the server command ``name``: whatever the arguments, it says what to
    install and exits 1."""

    def callback(**_: Any) -> None:
        raise click.ClickException(SERVER_MISSING)

    # Every argument is taken and ignored, --help included, so `serve --port 80` and
    # `serve --help` give the message rather than a usage error about the stand-in.
    return click.Command(
        name,
        callback=callback,
        help=f"Not installed here: {SERVER_MISSING.partition(': ')[2]}.",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


for _name in SERVER_COMMANDS:
    cli.add_command(_server_command(_name))
register_client_commands(cli)


if __name__ == "__main__":
    cli()
