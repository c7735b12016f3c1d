"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Every command they run must name an entry point, module or attribute that exists, so the
files cannot drift from the code. The image installs the wheel its build stage builds;
tests/integration/test_wheel_contents.py builds the sdist from what that stage copies, and
tests/integration/test_wheel_install.py runs the wheel. `docker compose config` (or
`docker-compose config`) checks the compose files where one of them is installed. The same
topologies run as real processes in tests/integration/test_distributed_processes.py (the
shared volume) and tests/integration/test_stored_processes.py (deploy/docker-compose.s3.yml:
a bucket, and no shared folder).
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from tests.dockerfile import build_stage, copied_sources, stages
from toolchest_wes.cli.main import cli
from toolchest_wes.config import Settings

ROOT = Path(__file__).resolve().parents[2]


#: The variant that keeps run files in an S3-compatible bucket instead of a shared volume.
S3_COMPOSE = ROOT / "deploy" / "docker-compose.s3.yml"


def compose(path: Path = ROOT / "docker-compose.yml") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


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


def test_compose_redis_needs_a_password_that_no_command_line_carries() -> None:
    services = compose()["services"]
    redis = services["redis"]["command"]
    assert "--aclfile" in redis
    for name in ("api", "worker"):
        service = services[name]
        assert service["environment"]["TOOLCHEST_WES_REDIS_PASSWORD_FILE"].startswith(
            "/run/secrets/"
        )
        assert "redis_password" in service["secrets"]
    for service in services.values():
        command = " ".join(service.get("command", []))
        assert "requirepass" not in command and "--pass" not in command


@pytest.mark.parametrize("path", [ROOT / "docker-compose.yml", S3_COMPOSE], ids=["shared", "s3"])
@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_commands_name_real_entry_points(service: str, path: Path) -> None:
    check_command(compose(path)["services"][service]["command"])


def test_s3_compose_shares_a_bucket_and_no_volume() -> None:
    services = compose(S3_COMPOSE)["services"]
    assert set(services) == {"redis", "minio", "bucket", "api", "worker"}
    assert "volumes" not in services["worker"], "a worker keeps its scratch to itself"
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    for name in named:
        users = [
            n
            for n, s in services.items()
            if any(v.startswith(f"{name}:") for v in s.get("volumes", []))
        ]
        assert len(users) == 1, f"volume {name} is shared by {users}"
    bucket = " ".join(services["bucket"]["entrypoint"])
    for name in ("api", "worker"):
        service = services[name]
        env = service["environment"]
        settings = Settings(
            **{
                k.removeprefix("TOOLCHEST_WES_").lower(): v
                for k, v in env.items()
                if k.startswith("TOOLCHEST_WES_") and not k.endswith("_FILE")
            }
        )
        assert settings.storage == "s3://toolchest-wes/runs"
        assert f"local/{settings.storage.split('/')[2]}" in bucket
        assert settings.storage_endpoint_url == "http://minio:9000"
        assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/s3_credentials"
        assert "s3_credentials" in service["secrets"]
        assert service["depends_on"]["bucket"]["condition"] == "service_completed_successfully"
        assert not any("SECRET" in k or "PASSWORD=" in str(v) for k, v in env.items())
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD_FILE"].startswith("/run/secrets/")
    declared = set(compose(S3_COMPOSE)["secrets"])
    used = {s for service in services.values() for s in service.get("secrets", [])}
    assert used == declared
    for secret in compose(S3_COMPOSE)["secrets"].values():
        assert (S3_COMPOSE.parent / secret["file"]).resolve().parent == ROOT / "secrets"
    assert services["api"]["build"] == services["worker"]["build"] == ".."


def test_dockerfile_is_slim_non_root_and_runs_a_real_command() -> None:
    final = stages()[-1]
    assert re.fullmatch(r"python:3\.\d+-slim", final.base)
    (user,) = final.args_of("USER")
    assert user not in ("root", "0")
    (cmd,) = final.args_of("CMD")
    check_command(yaml.safe_load(cmd))
    for stage in stages():
        for name in copied_sources(stage):
            assert (ROOT / name).exists(), f"Dockerfile copies missing {name}"


def test_dockerfile_builds_the_wheel_in_its_own_stage() -> None:
    """The build stage copies what the sdist is built from, and builds sdist and wheel."""
    build = build_stage(stages())
    assert re.fullmatch(r"python:3\.\d+-slim", build.base)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    packages = {
        name.split(".")[0]
        for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    needed = {"pyproject.toml", project["readme"], *project["license-files"], *packages}
    assert needed <= set(copied_sources(build))
    assert any(re.search(r"python -m build\b", run) for run in build.args_of("RUN"))


def test_dockerfile_installs_the_built_wheel_not_the_source() -> None:
    all_stages = stages()
    final = all_stages[-1]
    name = build_stage(all_stages).name
    (copy,) = [args for args in final.args_of("COPY") if args.startswith(f"--from={name} ")]
    destination = shlex.split(copy)[-1]
    (install,) = [run for run in final.args_of("RUN") if "pip install" in run]
    assert re.search(rf"pip install .*{re.escape(destination)}/\S+\.whl", install), install
    assert not {"toolchest_wes", "pyproject.toml"} & set(copied_sources(final)), (
        "the final stage installs the wheel only; the source stays in the build stage"
    )


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= ignored, "the build context would carry them"
    for stage in stages():
        for name in copied_sources(stage):
            assert name not in ignored, f".dockerignore hides {name}, which the Dockerfile copies"


@pytest.mark.parametrize("path", [ROOT / "docker-compose.yml", S3_COMPOSE], ids=["shared", "s3"])
def test_compose_file_is_valid_for_docker_compose(tmp_path: Path, path: Path) -> None:
    """``docker compose config`` (or the older ``docker-compose``) accepts the file."""
    command = compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` (the Compose plugin) nor `docker-compose` is installed"
        )
    result = subprocess.run(
        [
            *command,
            "--project-directory",
            str(path.parent),
            "-f",
            str(path),
            "config",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def compose_command() -> list[str] | None:
    """The Compose v2 plugin as ``docker compose``, else the standalone ``docker-compose``."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone is not None else None


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
    stored = compose(S3_COMPOSE)["services"]
    assert {s["restart"] for n, s in stored.items() if n != "bucket"} == {"unless-stopped"}
