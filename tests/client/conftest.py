"""A real server on a loopback port (in this process, both modes) for the SDK and CLI tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from toolchest_wes.client import Journal, WesClient


class LiveServer:
    """An app served over HTTP by a werkzeug thread, so clients talk real HTTP to it."""

    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def make_live(make_app: Callable[..., Any]) -> Iterator[Callable[..., LiveServer]]:
    """Start live servers over apps from ``make_app``; stopped at teardown."""
    servers: list[LiveServer] = []

    def make(settings: Any = None) -> LiveServer:
        app = make_app(settings)
        server = LiveServer(app)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def live(make_live: Callable[..., LiveServer]) -> LiveServer:
    """A live server in the test's mode (embedded or distributed)."""
    return make_live()


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Journal:
    """A journal in the test's own folder; the default location points there too."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return Journal()


@pytest.fixture
def wes(live: LiveServer, journal: Journal) -> Iterator[WesClient]:
    """An SDK client of the live server."""
    with WesClient(live.url, journal=journal) as client:
        yield client
