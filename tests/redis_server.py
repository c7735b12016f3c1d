"""A real ``redis-server`` for the tests: session fixture ``redis_server``, per-test ``redis_url``.

The server listens on a free loopback port with persistence off (``--save "" --appendonly
no``), a password (``--requirepass``, carried in ``url``, as deployments must have one) and its
own working directory, and is terminated at the end of the session with its
directory removed. ``stop()`` and ``start()`` restart it on the same port, for fault tests.
Tests share the one server and keep apart by key prefix.

Without ``redis-server`` on PATH the Redis tests are skipped, loudly; with ``CI`` or
``TOOLCHEST_WES_REQUIRE_REDIS`` set they fail instead, so CI never passes by skipping them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "AOF_ALWAYS",
    "NO_PERSISTENCE",
    "RedisServer",
    "redis_server",
    "redis_url",
    "start_redis_server",
]

# Read at import (collection time), because the autouse _clean_env fixture deletes every
# TOOLCHEST_WES_* variable before a function-scoped fixture asks for the server.
_REQUIRE_REDIS = bool(os.environ.get("CI") or os.environ.get("TOOLCHEST_WES_REQUIRE_REDIS"))
_START_TIMEOUT_S = 20.0
#: The session server's options: nothing written to disk.
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
#: Every write in the append-only file before Redis acknowledges it, for restart tests.
AOF_ALWAYS = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")
_STOP_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(64)
                if not chunk:
                    return False
                reply += chunk
            return reply == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on a fixed loopback port; restartable."""

    def __init__(
        self, executable: str, directory: Path, persistence: tuple[str, ...] = NO_PERSISTENCE
    ) -> None:
        self.executable = executable
        self.directory = directory
        self.persistence = persistence
        self.password = secrets.token_hex(16)
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<port>/0``."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def url_without_password(self) -> str:
        """``redis://127.0.0.1:<port>/0``, for the password to come from elsewhere."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers PING."""
        if self.running:
            return
        log = self.directory / "redis.log"
        self._proc = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                self.password,
                *self.persistence,
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # A Ctrl-C meant for the caller must not stop Redis before the processes that
            # use it (they are stopped first); stop() ends it.
            start_new_session=True,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers_ping(self.port, self.password):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")
            time.sleep(0.02)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the server (SIGSTOP and SIGCONT freeze and thaw it)."""
        if self._proc is not None:
            self._proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server with ``sig`` (SIGKILL after 10 s) and wait for it to exit."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            try:
                proc.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(_STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` for the whole session (see the module docstring)."""
    executable = shutil.which("redis-server")
    if executable is None:
        message = "redis-server is not on PATH: every Redis-backed test is SKIPPED"
        if _REQUIRE_REDIS:
            pytest.fail(f"{message} (not allowed: CI or TOOLCHEST_WES_REQUIRE_REDIS is set)")
        pytest.skip(f"{message}; install redis-server to run them")
    # Under pytest's base temp, which pytest prunes, in case a killed session leaves it behind.
    directory = tmp_path_factory.mktemp("redis-server")
    server = RedisServer(executable, directory)
    try:
        start_redis_server(server)
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def start_redis_server(server: RedisServer) -> None:
    """Start ``server`` on a free port, choosing another if the first is taken meanwhile."""
    for attempt in range(3):
        try:
            server.start()
            return
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = _free_port()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, restarted first if a test left it stopped. No key prefix."""
    redis_server.start()
    return redis_server.url
