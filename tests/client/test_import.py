"""The client package stands alone: importing it loads no server code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
    assert ours == {"cli", "client", "cwl_inputs", "models"}


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


CLIENT_DIR = Path(client.__file__).parent
CLIENT_MODULES = sorted(p.stem for p in CLIENT_DIR.glob("*.py") if p.stem != "__init__")


def test_every_client_module_can_be_imported_first() -> None:
    """A fresh interpreter imports each module on its own: an import cycle between two of them
    would fail for the one imported first."""
    for name in CLIENT_MODULES:
        done = subprocess.run(
            [sys.executable, "-c", f"import toolchest_wes.client.{name}"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{name}: {done.stderr}"


def _client_imports(module: str) -> set[str]:
    """The client modules ``module`` imports anywhere (in functions too, where a cycle hides),
    leaving out ``if TYPE_CHECKING:`` blocks, which never run."""
    tree = ast.parse((CLIENT_DIR / f"{module}.py").read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "toolchest_wes.client":
                # ``from toolchest_wes.client import exceptions`` names a submodule.
                found |= {a.name if a.name in CLIENT_MODULES else "__init__" for a in node.names}
            elif node.module.startswith("toolchest_wes.client."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {
                a.name.split(".")[2]
                for a in node.names
                if a.name.startswith("toolchest_wes.client.")
            }
    return found - {module}


def test_client_modules_import_each_other_without_cycles() -> None:
    graph = {name: _client_imports(name) for name in CLIENT_MODULES}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"import cycle: {' -> '.join([*visiting, name])}"
        if name in done or name not in graph:
            return
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in CLIENT_MODULES:
        visit(name)
