"""Receiving toolchest-wes webhooks: checking a delivery's signature, and a small listener.

A server signs each delivery with a secret it shares with the receiver: the operator's
``webhook_secret`` for the URL a run names in its ``toolchest_wes.notify_url`` tag, or the
secret of an operator's subscription. The headers are:

- ``X-Toolchest-Wes-Timestamp``: when it was sent, seconds since the epoch;
- ``X-Toolchest-Wes-Signature``: ``sha256=`` and the hex HMAC-SHA256, under the secret, of
  the timestamp, a ``.``, and the raw body;
- ``X-Toolchest-Wes-Event-Id``: the event's id (also the body's ``id``), the same on every
  retry: a receiver that has seen it already answers 2xx and ignores the copy.

Example:
    >>> body = b'{"id":"evt_1"}'
    >>> headers = {"X-Toolchest-Wes-Timestamp": "1700000000",
    ...            "X-Toolchest-Wes-Signature": sign("s3cret", "1700000000", body)}
    >>> verify_signature("s3cret", body, headers, now=1700000010)
    True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "EventListener",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Toolchest-Wes-Signature"
TIMESTAMP_HEADER = "X-Toolchest-Wes-Timestamp"
EVENT_ID_HEADER = "X-Toolchest-Wes-Event-Id"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header of ``body`` sent at ``timestamp``: ``sha256=<hex>``.

    Args:
        secret: The shared secret.
        timestamp: The ``X-Toolchest-Wes-Timestamp`` header.
        body: The raw body.

    Returns:
        The value of ``X-Toolchest-Wes-Signature``.
    """
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """Whether a delivery is signed with ``secret`` and was sent recently.

    Args:
        secret: The shared secret.
        body: The raw body, exactly as received (not re-encoded JSON).
        headers: The request's headers (any case).
        tolerance_s: The most seconds between the timestamp and ``now``, either way, so that
            a captured delivery cannot be replayed later.
        now: The current time (seconds since the epoch); default the clock.

    Returns:
        ``True`` if the signature matches and the timestamp is within the tolerance.
    """
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class EventListener:
    """An HTTP server on loopback (or ``host``) that hands each received event to a callback.

    Deliveries whose signature does not verify (when a secret is given) are answered 401,
    so the server retries them; others get 204.

    Example:
        >>> listener = EventListener(0, lambda event, verified: None)
        >>> listener.start(); listener.port > 0
        True
        >>> listener.stop()
    """

    def __init__(
        self,
        port: int,
        on_event: Callable[[dict[str, Any], bool], None],
        *,
        secret: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        handler = _handler(on_event, secret)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop the background thread's serving and close the socket."""
        self._server.shutdown()
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self._server.server_close()


def _handler(
    on_event: Callable[[dict[str, Any], bool], None], secret: str | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            verified = secret is not None and verify_signature(secret, body, dict(self.headers))
            if secret is not None and not verified:
                self.send_response(401)
                self.end_headers()
                return
            try:
                event = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            on_event(event, verified)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the callback reports what matters."""

    return Handler
