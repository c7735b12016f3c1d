"""The wheel installed into a fresh virtualenv, used as a new user would, far from the checkout.

The servers run from the virtualenv's ``toolchest-wes`` script, in a folder outside the
checkout, with no ``PYTHONPATH`` and no checkout folder on ``PATH``, so a module or data file
that the wheel lacks fails here. Each test runs the README's curl example (``examples/hello``)
to COMPLETE and downloads its output, in embedded mode and in distributed mode on a real
``redis-server``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API
from tests.dists import ROOT, user_env, venv_python
from tests.processes import (
    TERMINAL,
    free_port,
    kill_group,
    run_log,
    spawn,
    submit,
    wait,
    wait_healthy,
)
from tests.redis_server import RedisServer

# Building the wheel and installing its dependencies into the new virtualenv take most of
# the time, once a session; a cold package cache can take minutes.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def env(wheel_venv: Path, tmp_path: Path) -> dict[str, str]:
    """The activated virtualenv's environment; temporary files under the test's folder."""
    values = user_env(wheel_venv)
    # Whatever the processes leave in temporary folders, killed or not, pytest prunes here.
    (tmp_path / "tmp").mkdir()
    values["TMPDIR"] = str(tmp_path / "tmp")
    values["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    return values


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts; each one's whole session is ended at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in reversed(started):
        kill_group(proc)


def test_installed_package_comes_from_the_virtualenv(
    wheel_venv: Path, home: Path, env: dict[str, str]
) -> None:
    # Found, not imported: importing worker.main builds the Celery app, which needs Redis.
    code = (
        "import importlib.util, sys;"
        "print(importlib.util.find_spec('toolchest_wes.worker.main').origin); print(sys.path)"
    )
    result = venv_python(wheel_venv, env, home, code)
    module_file, path = result.stdout.splitlines()
    assert Path(module_file).is_relative_to(wheel_venv)
    assert str(ROOT) not in path


def test_embedded_server_from_the_wheel_runs_hello(
    wheel_venv: Path,
    home: Path,
    env: dict[str, str],
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    args = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    processes.append(spawn(args, env, log_path, program=[_script(wheel_venv)], cwd=home))
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, processes[-1], log_path)
    _run_hello(url, home)


def test_distributed_server_and_worker_from_the_wheel_run_hello(
    wheel_venv: Path,
    home: Path,
    env: dict[str, str],
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    redis_server: RedisServer,
) -> None:
    # The session's Redis is shared with other tests: this one keeps to its own keys.
    common = [
        "--redis",
        redis_server.url,
        "--redis-prefix",
        f"wheel-{uuid.uuid4().hex[:8]}",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    program = [_script(wheel_venv)]
    worker_args = ["worker", "--concurrency", "1", *common]
    processes.append(spawn(worker_args, env, tmp_path / "worker.log", program=program, cwd=home))
    port = free_port()
    log_path = tmp_path / "serve.log"
    serve_args = ["serve", "--port", str(port), "--workers", "1", *common]
    processes.append(spawn(serve_args, env, log_path, program=program, cwd=home))
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, processes[-1], log_path)
    with _log_on_failure(tmp_path / "worker.log"):
        _run_hello(url, home)


def _script(venv: Path) -> str:
    return str(venv / "bin" / "toolchest-wes")


def _run_hello(url: str, home: Path) -> None:
    """The README's curl example: submit, follow to COMPLETE, download hello.txt."""
    params = json.loads((home / "hello.json").read_text())
    run_id = submit(url, home / "hello.cwl", params)
    state = wait(url, run_id, TERMINAL, timeout=120)
    assert state == "COMPLETE", run_log(url, run_id)
    response = httpx.get(f"{url}{API}/runs/{run_id}/outputs/hello.txt", timeout=30)
    assert response.status_code == 200, response.text
    assert response.text == f"{params['message']}\n"


@contextlib.contextmanager
def _log_on_failure(log_path: Path) -> Iterator[None]:
    """Add the tail of a process's log to an assertion that fails inside."""
    try:
        yield
    except AssertionError as exc:
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        raise AssertionError(f"{exc}\n--- {log_path.name} ---\n{tail}") from None
