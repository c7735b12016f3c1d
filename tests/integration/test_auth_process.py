"""`toolchest-wes token create` and `toolchest-wes serve --auth tokens`, as real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, EXAMPLES
from tests.processes import bearer_token, clean_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HELLO = EXAMPLES / "hello" / "hello.cwl"


@contextlib.contextmanager
def serve(data_dir: Path, *args: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env()
    metrics = data_dir.parent / f"metrics-{port}"
    metrics.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    command = [sys.executable, "-m", "toolchest_wes.cli.main", "serve", "--port", str(port)]
    with open(data_dir.parent / f"server-{port}.log", "ab") as log:
        proc = subprocess.Popen(
            [*command, "--data-dir", str(data_dir), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, "server exited during startup"
            assert time.monotonic() < deadline, "server did not answer /health in 60 s"
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_tokens_from_the_cli_authenticate_requests_to_the_server(tmp_path):
    data = tmp_path / "data"
    alice = bearer_token(data, "alice")
    bob = bearer_token(data, "bob")

    with serve(data, "--auth", "tokens") as url:
        assert httpx.get(f"{url}{API}/service-info").status_code == 200
        refused = httpx.get(f"{url}{API}/runs")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="toolchest-wes"'
        assert refused.json()["status_code"] == 401

        response = httpx.post(
            f"{url}{API}/runs",
            headers=alice,
            data={
                "workflow_type": "CWL",
                "workflow_type_version": "v1.2",
                "workflow_url": "hello.cwl",
                "workflow_params": json.dumps({"message": "with a token"}),
            },
            files=[("workflow_attachment", ("hello.cwl", HELLO.read_bytes()))],
            timeout=30,
        )
        assert response.status_code == 200, response.text
        run_id = response.json()["run_id"]
        deadline = time.monotonic() + 60
        while (
            state := httpx.get(f"{url}{API}/runs/{run_id}/status", headers=alice).json()["state"]
        ) not in {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}:
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state == "COMPLETE"

        log = httpx.get(f"{url}{API}/runs/{run_id}", headers=alice).json()
        stdout_url = log["run_log"]["stdout"]
        output_url = log["outputs"]["greeting"]["location"]
        assert httpx.get(stdout_url, headers=alice).status_code == 200
        download = httpx.get(output_url, headers=alice)
        assert (download.status_code, download.content) == (200, b"with a token\n")
        assert httpx.get(output_url).status_code == 401
        assert httpx.get(output_url, headers=bob).status_code == 404
        assert httpx.get(f"{url}{API}/runs", headers=bob).json()["runs"] == []

        # A token created while the server runs works at once, without a restart.
        carol = bearer_token(data, "carol")
        assert httpx.get(f"{url}{API}/runs", headers=carol).status_code == 200
