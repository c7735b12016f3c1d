"""The API token file and the `toolchest-wes token` commands."""

from __future__ import annotations

import hashlib
import json
import stat
import threading

import pytest
from click.testing import CliRunner

from toolchest_wes.cli.main import cli
from toolchest_wes.core.caller import Caller
from toolchest_wes.core.errors import InvalidTokenError
from toolchest_wes.server.auth import TokenAuthenticator
from toolchest_wes.server.tokens import TOKEN_PREFIX, TokenFile, TokenFileError


@pytest.fixture
def tokens(tmp_path):
    return TokenFile(tmp_path / "data" / "tokens.json")


def test_created_token_is_found_and_only_its_hash_is_stored(tokens):
    entry, token = tokens.create("alice")

    assert token.startswith(f"{TOKEN_PREFIX}{entry.id}_")
    assert len(token) > 40
    assert tokens.lookup(token) == entry
    assert tokens.lookup(token + "x") is None
    text = tokens.path.read_text()
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600


def test_list_and_revoke(tokens):
    alice, alice_token = tokens.create("alice")
    root, _ = tokens.create("root", admin=True)

    assert [(e.user, e.admin) for e in tokens.entries()] == [("alice", False), ("root", True)]
    assert tokens.revoke(alice.id) == alice
    assert tokens.revoke(alice.id) is None
    assert tokens.entries() == [root]
    assert tokens.lookup(alice_token) is None


def test_a_reader_sees_changes_made_by_another_writer(tokens):
    reader = TokenFile(tokens.path)
    assert reader.lookup("anything") is None  # no file yet

    entry, token = tokens.create("alice")
    assert reader.lookup(token) == entry

    tokens.revoke(entry.id)
    assert reader.lookup(token) is None

    tokens.path.unlink()
    _, again = tokens.create("bob")
    assert reader.lookup(again).user == "bob"


def test_concurrent_creates_lose_no_token(tokens):
    created = []

    def make(i: int) -> None:
        created.append(tokens.create(f"user{i}")[1])

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    reader = TokenFile(tokens.path)
    assert all(reader.lookup(token) is not None for token in created)
    assert len(reader.entries()) == 8


@pytest.mark.parametrize("user", ["", "a b", "x" * 129, "ünï", "a/b"])
def test_user_names_are_checked(tokens, user):
    with pytest.raises(ValueError, match="user name"):
        tokens.create(user)


@pytest.mark.parametrize("content", ["not json", '{"version": 9, "tokens": []}', '{"tokens": 1}'])
def test_invalid_file_is_reported(tokens, content):
    tokens.path.parent.mkdir(parents=True)
    tokens.path.write_text(content)

    with pytest.raises(TokenFileError, match="not a valid token file"):
        tokens.entries()


def test_a_broken_file_keeps_the_last_good_tokens_in_the_server(tokens):
    entry, token = tokens.create("alice")
    assert tokens.lookup(token) == entry

    tokens.path.write_text("{half written")

    assert tokens.lookup(token) == entry


def test_authenticator_maps_tokens_to_callers(tokens):
    _, alice = tokens.create("alice")
    _, root = tokens.create("root", admin=True)
    _, boss = tokens.create("boss")
    check = TokenAuthenticator(tokens, admin_users=frozenset({"boss"}))

    assert check.authenticate(alice) == Caller("alice")
    assert check.authenticate(root) == Caller("root", is_admin=True)
    assert check.authenticate(boss) == Caller("boss", is_admin=True)
    with pytest.raises(InvalidTokenError, match="unknown or revoked") as caught:
        check.authenticate("tcwes_nope_nope")
    assert "tcwes_nope_nope" not in caught.value.msg


def test_cli_create_prints_the_token_as_the_last_line(tmp_path):
    runner = CliRunner()
    data = tmp_path / "data"

    result = runner.invoke(cli, ["token", "create", "alice", "--data-dir", str(data)])

    assert result.exit_code == 0, result.output
    token = result.output.splitlines()[-1]
    assert token.startswith(TOKEN_PREFIX) and " " not in token
    assert TokenFile(data / "tokens.json").lookup(token).user == "alice"


def test_cli_list_and_revoke(tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("TOOLCHEST_WES_DATA_DIR", str(tmp_path))
    token = runner.invoke(cli, ["token", "create", "root", "--admin"]).output.splitlines()[-1]
    token_id = token.split("_")[1]

    listed = runner.invoke(cli, ["token", "list", "--json"])
    assert listed.exit_code == 0
    (row,) = json.loads(listed.output)
    assert row["id"] == token_id and row["user"] == "root" and row["admin"] is True
    assert token not in listed.output
    assert token_id in runner.invoke(cli, ["token", "list"]).output

    assert runner.invoke(cli, ["token", "revoke", token_id]).exit_code == 0
    missing = runner.invoke(cli, ["token", "revoke", token_id])
    assert missing.exit_code == 1 and "no token with id" in missing.output
    assert json.loads(runner.invoke(cli, ["token", "list", "--json"]).output) == []


def test_cli_refuses_a_bad_user_name(tmp_path):
    result = CliRunner().invoke(cli, ["token", "create", "a b", "--data-dir", str(tmp_path)])

    assert result.exit_code == 1
    assert "user name" in result.output
