"""The SDK against a WES server nobody here wrote: the reference `wes-server` (PyPI wes-service).

The server gets a virtualenv of its own (it pins other versions of connexion), shared with
``scripts/interop.sh``. These tests are skipped only when that package cannot be installed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CWL, EXAMPLES
from tests.processes import free_port
from toolchest_wes.client import RunFailed, State, WesClient, format_runs
from toolchest_wes.client._core import Core
from toolchest_wes.client._http import RetryPolicy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTEROP = Path(
    os.environ.get("INTEROP_DIR") or Path(tempfile.gettempdir()) / "toolchest-wes-interop"
)


def _wes_server() -> Path:
    """The reference server's command, installed first if it is not yet.

    The folder outlives the test run and is shared by every test process (and by
    ``scripts/interop.sh``), so the install is made under a lock: one test process installs,
    the others wait for it and find the server installed.
    """
    INTEROP.mkdir(parents=True, exist_ok=True)
    with (INTEROP / ".install.lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_wes_server(INTEROP / "wesc")


def _install_wes_server(venv: Path) -> Path:
    server = venv / "bin" / "wes-server"
    if server.exists():
        return server
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "wes-service"],
            check=True,
            timeout=600,
            capture_output=True,
        )
    except (subprocess.SubprocessError, OSError) as error:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip(f"wes-service cannot be installed here: {error}")
    return server


@pytest.fixture(scope="module")
def wes_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``wes-server --backend=wes_service.cwl_runner`` on a free port, running our cwltool."""
    server = _wes_server()
    cwltool = shutil.which("cwltool") or str(Path(sys.executable).parent / "cwltool")
    workdir = tmp_path_factory.mktemp("wes-service")
    port = free_port()
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(server),
            "--backend=wes_service.cwl_runner",
            f"--port={port}",
            f"--opt=runner={cwltool}",
            "--opt=extra=--no-container",
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/ga4gh/wes/v1/service-info", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"wes-server did not start: {(workdir / 'server.log').read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        log.close()


@pytest.fixture
def wes(wes_service: str, tmp_path: Path) -> Iterator[WesClient]:
    from toolchest_wes.client import Journal

    with WesClient(wes_service, journal=Journal(tmp_path / "journal.jsonl")) as client:
        yield client


def test_service_info_of_a_wes_1_0_server(wes: WesClient) -> None:
    info = wes.get_service_info()
    assert "CWL" in info.workflow_type_versions
    assert info.supported_wes_versions


def test_submit_wait_and_outputs(wes: WesClient) -> None:
    run = wes.submit(
        EXAMPLES / "hello" / "hello.cwl",
        EXAMPLES / "hello" / "hello.json",
        tags={"suite": "interop"},
    )
    log = run.wait(timeout=120, initial_interval=0.2)
    assert log.state is State.COMPLETE
    outputs = run.outputs()
    assert [f.path for f in outputs] == ["hello.txt"]
    assert outputs[0].size == len("Hello from toolchest-wes\n")
    assert "completed success" in run.logs()


def test_attachments_in_subfolders(wes: WesClient) -> None:
    run = wes.submit(
        EXAMPLES / "two-step" / "count-lines.cwl", EXAMPLES / "two-step" / "count-lines.json"
    )
    run.wait(timeout=120, initial_interval=0.2)
    assert sorted(f.path for f in run.outputs()) == ["counts.txt", "sorted.txt"]


def test_a_failed_run_raises_with_its_stderr(wes: WesClient) -> None:
    run = wes.submit(CWL / "fail.cwl")
    with pytest.raises(RunFailed) as info:
        run.wait(timeout=120, initial_interval=0.2)
    assert info.value.state is State.EXECUTOR_ERROR


def test_listing_with_the_workflows_key_tags_and_lookup(wes: WesClient) -> None:
    run = wes.submit(
        EXAMPLES / "hello" / "hello.cwl", EXAMPLES / "hello" / "hello.json", tags={"pick": "me"}
    )
    run.wait(timeout=120, initial_interval=0.2)
    assert run.run_id in [r.run_id for r in wes.list_runs()]
    assert [r.run_id for r in wes.list_runs(tags={"pick": "me"})] == [run.run_id]
    assert run.run_id in format_runs(wes.runs(5))
    # The lookup a retried submit makes finds the run by its request id tag.
    assert wes.journal is not None
    entry = wes.journal.last(wes.url)
    assert entry is not None
    core = Core(wes.url, None, RetryPolicy())
    assert wes._drive(core.find_request(entry.request_id)) == run.run_id
