"""The receiving side: EventListener (behind ``toolchest-wes events``) over real HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from toolchest_wes.client.webhooks import EventListener, sign


def _post(port: int, body: bytes, secret: str) -> int:
    timestamp = str(int(time.time()))
    headers = {
        "X-Toolchest-Wes-Timestamp": timestamp,
        "X-Toolchest-Wes-Signature": sign(secret, timestamp, body),
    }
    return httpx.post(f"http://127.0.0.1:{port}/", content=body, headers=headers).status_code


def test_signed_events_are_passed_on_and_others_refused() -> None:
    got: list[tuple[dict[str, Any], bool]] = []
    listener = EventListener(0, lambda event, ok: got.append((event, ok)), secret="k")
    listener.start()
    try:
        body = json.dumps({"id": "evt_1", "state": "COMPLETE"}).encode()
        assert _post(listener.port, body, "k") == 204
        assert _post(listener.port, body, "not-k") == 401
        assert got == [({"id": "evt_1", "state": "COMPLETE"}, True)]
    finally:
        listener.stop()


def test_without_a_secret_everything_is_passed_on_unverified() -> None:
    got: list[tuple[dict[str, Any], bool]] = []
    listener = EventListener(0, lambda event, ok: got.append((event, ok)))
    listener.start()
    try:
        assert _post(listener.port, b'{"id": "evt_2"}', "whatever") == 204
        assert got == [({"id": "evt_2"}, False)]
    finally:
        listener.stop()
