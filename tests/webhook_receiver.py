"""A webhook receiver for tests: a threaded http.server on loopback that keeps what it gets,
and the check that a run's events, however they arrived, tell its whole life in order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The states a run that completes goes through, each one event.
LIFECYCLE = ("QUEUED", "INITIALIZING", "RUNNING", "COMPLETE")


class Receiver:
    """Records every POST (headers, raw body); answers ``status`` (204 by default)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.status
                with receiver._changed:
                    if 200 <= status < 300:
                        receiver.received.append((dict(self.headers), body))
                    receiver._changed.notify_all()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def events(self) -> list[dict[str, Any]]:
        """The bodies received, decoded."""
        with self._changed:
            return [json.loads(body) for _, body in self.received]

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Wait until ``done(events)`` holds; fail with what arrived after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                events = [json.loads(body) for _, body in self.received]
                if done(events):
                    return events
                left = deadline - time.monotonic()
                assert left > 0, f"events so far: {events}"
                self._changed.wait(min(left, 0.2))

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def run_events(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The run's events in the order they first arrived, one per event id (at least once:
    copies dropped)."""
    unique: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["run_id"] == run_id:
            unique.setdefault(event["id"], event)
    return list(unique.values())


def assert_whole_life(
    events: list[dict[str, Any]], run_id: str, states: tuple[str, ...] = LIFECYCLE
) -> None:
    """Assert that the run's events (``events`` in the order they arrived) are exactly one
    per state of ``states``, arrived in that order, numbered from 1, each naming the state
    before it: none lost, none out of place."""
    mine = run_events(events, run_id)
    assert [e["state"] for e in mine] == list(states), mine
    assert [e["sequence"] for e in mine] == list(range(1, len(states) + 1)), mine
    assert [e["previous_state"] for e in mine] == [None, *states[:-1]], mine
