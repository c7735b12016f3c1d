"""The client package stands alone: importing it loads no server code."""

from __future__ import annotations

import subprocess
import sys

import toolchest_wes.client as client

SERVER_MODULES = ("flask", "connexion", "celery", "redis", "cwltool", "schema_salad", "kombu")


def test_importing_the_client_loads_no_server_code() -> None:
    code = (
        "import sys, toolchest_wes.client\n"
        f"print(','.join(m for m in {SERVER_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_public_names_are_exported() -> None:
    assert sorted(client.__all__) == client.__all__
    for name in client.__all__:
        assert getattr(client, name) is not None
    for name in ("WesClient", "AsyncWesClient", "Run", "RunGroup", "State", "print_runs"):
        assert name in client.__all__
