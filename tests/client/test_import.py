"""The client package stands alone: importing it loads no server code."""

from __future__ import annotations

import subprocess
import sys

import toolchest_wes.client as client
from toolchest_wes.cli import client_main, main

SERVER_MODULES = ("flask", "connexion", "celery", "redis", "cwltool", "schema_salad", "kombu")


def _loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing ``module``."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_the_client_loads_no_server_code() -> None:
    assert not _loaded_by("toolchest_wes.client") & set(SERVER_MODULES)


def test_the_client_only_command_loads_no_server_code() -> None:
    """What toolchest-wes-client (client-dist/) ships as its ``toolchest-wes``."""
    loaded = _loaded_by("toolchest_wes.cli.client_main")
    assert not loaded & {*SERVER_MODULES, "pydantic_settings"}
    ours = {m.split(".")[1] for m in loaded if m.startswith("toolchest_wes.")}
    assert ours == {"cli", "client", "models"}


def test_the_client_only_command_has_every_command() -> None:
    """Each command of the full ``toolchest-wes`` is there, or a stand-in for a server one."""
    assert set(client_main.cli.commands) == set(main.cli.commands)
    for name in client_main.SERVER_COMMANDS:
        assert client_main.cli.commands[name] is not main.cli.commands[name]
    for name in set(main.cli.commands) - set(client_main.SERVER_COMMANDS):
        assert client_main.cli.commands[name] is main.cli.commands[name]


def test_public_names_are_exported() -> None:
    assert sorted(client.__all__) == client.__all__
    for name in client.__all__:
        assert getattr(client, name) is not None
    for name in ("WesClient", "AsyncWesClient", "Run", "RunGroup", "State", "print_runs"):
        assert name in client.__all__
