"""A real S3-compatible server for the tests: moto's standalone server on a free loopback port.

Session fixture ``moto_server`` starts ``python -m moto.server`` once and stops it at the end;
``new_bucket()`` makes a bucket of its own for each test, so tests keep apart by bucket.
Fixture ``moto_bucket`` is such a bucket, with the AWS settings in the test's environment.
``stop()`` and ``start()`` take it down and bring it back on the same port, for fault tests.
``env`` holds the AWS settings every client of it needs (fake credentials, the endpoint).

Without moto installed (the ``dev`` extra) the S3 tests are skipped, loudly; with ``CI``
set they fail instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.redis_server import _free_port

__all__ = ["MotoServer", "moto_bucket", "moto_server"]

_REQUIRE = bool(os.environ.get("CI"))
_START_TIMEOUT_S = 30.0


class MotoServer:
    """One moto server process; restartable on the same port."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The AWS settings of a client of this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> None:
        """Start the server and wait until it answers."""
        if self._proc is not None and self._proc.poll() is None:
            return
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1)
                return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def new_bucket(self) -> str:
        """Create a bucket with a new name; its name."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        response = httpx.put(f"{self.endpoint_url}/{name}", timeout=10)
        response.raise_for_status()
        return name


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real moto S3 server for the whole session (see the module docstring)."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        message = "moto[server] or boto3 is not installed: every S3 test is SKIPPED"
        if _REQUIRE:
            pytest.fail(f"{message} (not allowed under CI)")
        pytest.skip(f"{message}; pip install -e '.[dev]'")
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    for attempt in range(3):
        try:
            server.start()
            break
        except RuntimeError:
            # The free port was taken meanwhile by another process: try another.
            if attempt == 2:
                raise
            server.port = _free_port()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket of the (running) moto server, its settings in the environment; its name."""
    moto_server.start()
    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    return moto_server.new_bucket()
