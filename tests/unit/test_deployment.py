"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Every command they run must name an entry point, module or attribute that exists, so the
files cannot drift from the code. The same topology runs as real processes in
tests/integration/test_distributed_processes.py.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from toolchest_wes.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def check_command(argv: list[str]) -> None:
    """The program and what it loads exist in this package."""
    program, *args = argv
    if program == "gunicorn":
        config = args[args.index("-c") + 1]
        assert config.startswith("python:")
        importlib.import_module(config.removeprefix("python:"))
        module, _, attr = args[-1].partition(":")
        assert attr, "gunicorn needs module:attribute"
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        assert re.search(rf"^{attr}\s*=", Path(spec.origin).read_text(), re.M)
    elif program == "celery":
        module = args[args.index("-A") + 1]
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        assert re.search(r"^app\s*=", Path(spec.origin).read_text(), re.M)
        assert "worker" in args
    elif program == "toolchest-wes":
        context = click.Context(cli)
        command = cli.get_command(context, args[0])
        assert command is not None, f"no toolchest-wes {args[0]}"
        command.make_context(args[0], args[1:])  # the options parse
    elif program in ("redis-server", "redis-cli", "python", "CMD"):
        return
    else:
        pytest.fail(f"unknown program {program!r}")


def test_compose_has_the_services_and_the_shared_volume() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "api", "worker"}
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["healthcheck"]
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert "ports" not in services["worker"], "workers scale with --scale worker=N"
    assert services["api"]["volumes"] == services["worker"]["volumes"] == ["runs:/data"]
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["TOOLCHEST_WES_REDIS_URL"] == "redis://redis:6379/0"
        assert env["TOOLCHEST_WES_DATA_DIR"] == "/data"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_commands_name_real_entry_points(service: str) -> None:
    check_command(compose()["services"][service]["command"])


def test_dockerfile_is_slim_non_root_and_runs_a_real_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user and user.group(1) not in ("root", "0")
    cmd = re.search(r"^CMD (\[.*\])", text, re.M)
    assert cmd
    check_command(yaml.safe_load(cmd.group(1)))
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for name in shlex.split(copied):
            assert (ROOT / name).exists(), f"Dockerfile copies missing {name}"


def test_root_gunicorn_conf_reads_the_package_settings() -> None:
    text = (ROOT / "gunicorn.conf.py").read_text()
    assert "from toolchest_wes.server.gunicorn_conf import *" in text


def _unit(name: str) -> dict[str, str]:
    """The ``Key=value`` lines of a systemd unit in ``deploy/`` (last one wins)."""
    values: dict[str, str] = {}
    for line in (ROOT / "deploy" / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_systemd_worker_unit_runs_a_real_command_and_restarts_it() -> None:
    unit = _unit("toolchest-wes-worker.service")
    program, *args = shlex.split(unit["ExecStart"].replace("%H", "host"))
    assert Path(program).name == "toolchest-wes"
    check_command(["toolchest-wes", *args])
    assert unit["Restart"] in ("on-failure", "always")
    # The command forwards SIGTERM to Celery; the whole group would take runs' engines too.
    assert unit["KillMode"] == "mixed"


def test_compose_restarts_every_service() -> None:
    services = compose()["services"]
    assert {s["restart"] for s in services.values()} == {"unless-stopped"}
