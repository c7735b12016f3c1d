"""toolchest-wes-client, the client alone: built from ``client-dist/`` as a release builds it
(the sdist from a clean copy of the checkout, the wheel from the sdist), checked file by file
and import by import, then installed into a new virtualenv outside the checkout and used
against a real server, with none of the server's dependencies installed.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dists import (
    PACKAGE,
    ROOT,
    Dists,
    build_dists,
    copy_checkout,
    install_wheel,
    package_files,
    require_build_tool,
    sdist_names,
    user_env,
    venv_python,
    wheel_names,
)
from tests.processes import Server
from toolchest_wes import __version__
from toolchest_wes.cli.client_main import SERVER_COMMANDS, SERVER_MISSING

# Building, and installing the dependencies into the new virtualenv, take most of the time.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

CLIENT_DIST = "client-dist"
# Parts of the package that belong to the server, whatever the client dist's file list says.
SERVER_SIDE = (
    "server/",
    "core/",
    "worker/",
    "runner/",
    "store/",
    "engines/",
    "openapi/",
    "config.py",
    "wiring.py",
    "logconfig.py",
    "redis_auth.py",
    "cli/main.py",
    "cli/token_commands.py",
)
# Dependencies of the server's dependencies, which the client must go without too.
SERVER_TRANSITIVE = ("kombu", "redis", "schema-salad")
# Import names that differ from their distribution's name.
DISTRIBUTION_OF = {"yaml": "pyyaml"}


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def _names(requirements: object) -> dict[str, str]:
    """Requirement strings by their normalized distribution name."""
    assert isinstance(requirements, list)
    found = {}
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match, requirement
        found[re.sub(r"[-_.]+", "-", match[0]).lower()] = requirement
    return found


CLIENT_CONFIG = _toml(ROOT / CLIENT_DIST / "pyproject.toml")
FULL_PROJECT = _toml(ROOT / "pyproject.toml")["project"]
CLIENT_DEPENDENCIES = _names(CLIENT_CONFIG["project"]["dependencies"])


@pytest.fixture(scope="module")
def client_dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The client's sdist and the wheel built from it, from a clean copy of this checkout."""
    require_build_tool()
    work = tmp_path_factory.mktemp("client-dists")
    copy_checkout(work / "source")
    return build_dists(work / "source" / CLIENT_DIST, work / "out")


@pytest.fixture(scope="module")
def client_venv(client_dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv, outside the checkout, with the client wheel and its dependencies."""
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    install_wheel(client_dists.wheel, venv)
    return venv


@pytest.fixture
def env(client_venv: Path, tmp_path: Path) -> dict[str, str]:
    """The activated virtualenv's environment; the journal and config under the test's folder."""
    values = user_env(client_venv)
    values["HOME"] = str(tmp_path)
    values["XDG_STATE_HOME"] = str(tmp_path / "state")
    values["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return values


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The full distribution's embedded server, from this checkout, on a free port."""
    started = Server(tmp_path / "data")
    started.start()
    yield started
    started.kill()


def _expected_files() -> set[str]:
    """The checkout's files that ``[tool.toolchest-wes-client] sources`` names."""
    sources = CLIENT_CONFIG["tool"]["toolchest-wes-client"]["sources"]
    files = package_files()
    expected = {s for s in sources if s in files}
    for folder in set(sources) - expected:
        inside = {f for f in files if f.startswith(f"{folder}/")}
        assert inside, f"{folder} in client-dist/pyproject.toml is neither a file nor a folder"
        expected |= inside
    return expected


def _module(path: str) -> str:
    """``toolchest_wes/cli/main.py`` as ``toolchest_wes.cli.main``."""
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _wheel_modules(wheel: Path) -> dict[str, str]:
    """The modules of a wheel: dotted name to source."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            _module(n): archive.read(n).decode() for n in archive.namelist() if n.endswith(".py")
        }


def _imports(source: str) -> set[str]:
    """Every module an import statement of ``source`` names, lazy and TYPE_CHECKING ones too;
    ``from a import b`` gives ``a`` and ``a.b`` (b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, "relative imports are not used"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def test_client_wheel_has_only_the_client_files(client_dists: Dists) -> None:
    names = wheel_names(client_dists.wheel)
    shipped = {n for n in names if n.startswith(f"{PACKAGE}/")}
    assert shipped == _expected_files()
    server_side = [n for n in shipped if n.removeprefix(f"{PACKAGE}/").startswith(SERVER_SIDE)]
    assert not server_side, f"the client wheel has server modules: {sorted(server_side)}"
    assert {f"{PACKAGE}/client/__init__.py", f"{PACKAGE}/py.typed"} <= shipped
    tops = {n.split("/")[0] for n in names}
    assert tops == {PACKAGE, client_dists.wheel.name.split("-py")[0] + ".dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # The sdist holds what its own build needs, which the wheel's build from it proved.
    assert shipped | {"client_backend.py", "pyproject.toml"} <= sdist_names(client_dists.sdist)


def test_client_wheel_imports_only_itself_and_its_dependencies(client_dists: Dists) -> None:
    modules = _wheel_modules(client_dists.wheel)
    checkout = {_module(f) for f in package_files() if f.endswith(".py")}
    third_party: set[str] = set()
    for module, source in modules.items():
        for name in _imports(source):
            top = name.split(".")[0]
            if top == PACKAGE:
                # A name that is a module of the package must ship (not one inside a module).
                missing = name in checkout and name not in modules
                assert not missing, f"{module} imports {name}, which the client wheel lacks"
            elif top not in sys.stdlib_module_names:
                third_party.add(DISTRIBUTION_OF.get(top, top))
    assert third_party == set(CLIENT_DEPENDENCIES)


def test_client_dependencies_have_the_full_distributions_ranges() -> None:
    full = _names(FULL_PROJECT["dependencies"])
    for name, requirement in CLIENT_DEPENDENCIES.items():
        assert full.get(name) == requirement


def test_both_distributions_have_one_version(client_dists: Dists, dists: Dists) -> None:
    assert _wheel_version(dists.wheel) == _wheel_version(client_dists.wheel) == __version__


def test_client_venv_has_no_server_dependencies(
    client_venv: Path, home: Path, env: dict[str, str]
) -> None:
    server_only = set(_names(FULL_PROJECT["dependencies"])) - set(CLIENT_DEPENDENCIES)
    unwanted = sorted(server_only | set(SERVER_TRANSITIVE))
    code = f"""
import importlib.metadata, importlib.util, json
import toolchest_wes, toolchest_wes.client, toolchest_wes.cli.client_main
installed = []
for name in {unwanted!r}:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        continue
    installed.append(name)
print(json.dumps({{
    "installed": installed,
    "file": toolchest_wes.__file__,
    "server": importlib.util.find_spec("toolchest_wes.server") is not None,
    "version": importlib.metadata.version("toolchest-wes-client"),
}}))
"""
    result = venv_python(client_venv, env, home, code)
    found = json.loads(result.stdout)
    assert "cwltool" in unwanted and "celery" in unwanted and "flask" in unwanted
    assert found["installed"] == [], f"installed in the client's virtualenv: {found}"
    assert Path(found["file"]).is_relative_to(client_venv)
    assert not found["server"]
    assert found["version"] == __version__


def test_command_has_the_client_commands(
    client_venv: Path, home: Path, env: dict[str, str]
) -> None:
    result = _command(client_venv, env, home, "--help")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    wanted = {"submit", "status", "wait", "list", "info", "download", "cancel", "delete", "logs"}
    assert wanted | {"cwl-runner", *SERVER_COMMANDS} <= listed
    version = _command(client_venv, env, home, "--version")
    assert version.returncode == 0 and __version__ in version.stdout


@pytest.mark.parametrize(
    "args",
    [["serve"], ["serve", "--port", "8080", "--help"], ["worker", "--redis", "redis://x"]],
)
def test_server_commands_say_what_to_install(
    client_venv: Path, home: Path, env: dict[str, str], args: list[str]
) -> None:
    result = _command(client_venv, env, home, *args)
    assert result.returncode == 1
    assert SERVER_MISSING in result.stderr


def test_client_command_runs_hello_on_a_real_server(
    client_venv: Path, home: Path, env: dict[str, str], server: Server
) -> None:
    url = ["--url", server.url]
    submitted = _command(client_venv, env, home, "submit", "hello.cwl", "hello.json", *url)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    waited = _command(client_venv, env, home, "wait", run_id, "--timeout", "120", *url)
    assert (waited.returncode, waited.stdout.strip()) == (0, "COMPLETE"), waited.stderr
    # @last: the journal of this client install names the run just submitted.
    fetched = _command(client_venv, env, home, "download", "@last", "out", *url)
    assert fetched.returncode == 0, fetched.stderr
    message = json.loads((home / "hello.json").read_text())["message"]
    assert (home / "out" / "hello.txt").read_text() == f"{message}\n"


def _command(
    venv: Path, env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The virtualenv's ``toolchest-wes ARGS``, from ``cwd``."""
    return subprocess.run(
        [str(venv / "bin" / "toolchest-wes"), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
