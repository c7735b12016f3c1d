"""Helpers shared by the benchmark scripts (run them as ``python bench/<script>.py``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from toolchest_wes.store.base import StateStore

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "hello.cwl"
API = "/ga4gh/wes/v1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post_hello(
    client: httpx.Client, message: str = "bench", tags: dict[str, str] | None = None
) -> httpx.Response:
    """POST the hello-world example, with ``tags`` if given; the response, whatever it is."""
    data = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "hello.cwl",
        "workflow_params": json.dumps({"message": message}),
    }
    if tags:
        data["tags"] = json.dumps(tags)
    return client.post(
        f"{API}/runs",
        data=data,
        files=[("workflow_attachment", ("hello.cwl", HELLO.read_bytes()))],
    )


def submit_hello(client: httpx.Client, message: str = "bench") -> str:
    """POST the hello-world example; returns the run id."""
    response = post_hello(client, message)
    response.raise_for_status()
    return str(response.json()["run_id"])


def list_all_runs(client: httpx.Client) -> list[dict[str, Any]]:
    """Every run of GET /runs, following next_page_token to the end."""
    runs: list[dict[str, Any]] = []
    token = ""
    while True:
        response = client.get(f"{API}/runs", params={"page_size": 1000, "page_token": token})
        response.raise_for_status()
        page = response.json()
        runs += page["runs"]
        token = page["next_page_token"]
        if not token:
            return runs


def middle_token(store: StateStore, page_size: int, **filters: Any) -> str | None:
    """The token of the page halfway down a store's listing."""
    tokens: list[str] = []
    token = None
    while True:
        token = store.list_runs(page_size=page_size, page_token=token, **filters).next_page_token
        if token is None:
            break
        tokens.append(token)
    return tokens[len(tokens) // 2] if tokens else None


@contextmanager
def embedded_server(data_dir: Path, code: Path | None = None) -> Iterator[str]:
    """A `toolchest-wes serve` process on a free port, without submit limits; yields its URL.

    ``code`` is a checkout whose code the server runs (``PYTHONPATH``) with this virtualenv's
    libraries; by default the installed package.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
    env["TOOLCHEST_WES_LOG_LEVEL"] = "WARNING"
    # The benchmarks submit far faster than one user may by default.
    env["TOOLCHEST_WES_SUBMIT_RATE"] = "0"
    env["TOOLCHEST_WES_MAX_ACTIVE_RUNS_PER_USER"] = "0"
    if code is not None:
        env["PYTHONPATH"] = str(code)
    argv = [sys.executable, "-m", "toolchest_wes.cli.main", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--data-dir", str(data_dir)],
        env=env,
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the server ({code or 'installed'}) did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
