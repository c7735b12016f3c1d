"""``toolchest-wes token create|list|revoke``: manage the API tokens of ``--auth tokens``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from toolchest_wes.server.tokens import TokenFile

__all__ = ["token"]


def _token_file(data_dir: Path | None) -> TokenFile:
    # Imported here so that `toolchest-wes --help` does not load the server side.
    from toolchest_wes.config import default_data_dir
    from toolchest_wes.server.tokens import TokenFile

    return TokenFile((data_dir or default_data_dir()) / "tokens.json")


_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TOOLCHEST_WES_DATA_DIR",
    help="The server's data directory, which holds tokens.json.  "
    "[default: ~/.local/share/toolchest-wes]",
)


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (for `serve --auth tokens`).

    The server reads the token file again when it changes: new and revoked tokens take
    effect at once, without a restart.
    """


@token.command()
@click.argument("user")
@click.option("--admin", is_flag=True, help="The token's user sees and may cancel every run.")
@_data_dir_option
def create(user: str, admin: bool, data_dir: Path | None) -> None:
    """Create a token for USER and print it once, as the last line.

    Only a hash is stored: keep the token, it cannot be shown again.
    """
    from toolchest_wes.server.tokens import TokenFileError

    tokens = _token_file(data_dir)
    try:
        entry, secret = tokens.create(user, admin=admin)
    except (ValueError, TokenFileError) as exc:
        raise click.ClickException(str(exc)) from None
    role = "admin " if entry.admin else ""
    click.echo(f"created {role}token {entry.id} for {entry.user} in {tokens.path}")
    click.echo("send it as 'Authorization: Bearer <token>'; it is shown only now:")
    click.echo(secret)


@token.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@_data_dir_option
def list_tokens(as_json: bool, data_dir: Path | None) -> None:
    """List the tokens: id, user, role and creation time (never the tokens)."""
    from toolchest_wes.server.tokens import TokenFileError

    try:
        entries = _token_file(data_dir).entries()
    except TokenFileError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        rows = [
            {"id": e.id, "user": e.user, "admin": e.admin, "created": e.created} for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for e in entries:
        click.echo(f"{e.id}  {e.created}  {'admin' if e.admin else 'user '}  {e.user}")


@token.command()
@click.argument("token_id")
@_data_dir_option
def revoke(token_id: str, data_dir: Path | None) -> None:
    """Revoke the token with id TOKEN_ID (as `token list` shows it)."""
    from toolchest_wes.server.tokens import TokenFileError

    try:
        gone = _token_file(data_dir).revoke(token_id)
    except TokenFileError as exc:
        raise click.ClickException(str(exc)) from None
    if gone is None:
        raise click.ClickException(f"no token with id {token_id!r}; see `toolchest-wes token list`")
    click.echo(f"revoked token {gone.id} of {gone.user}")
