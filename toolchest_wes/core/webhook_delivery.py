"""The webhook delivery loop: sends queued deliveries, at least once, with backoff.

Every API process runs one. A delivery is claimed
for a while before it is sent, so two loops seldom send it twice; when they do (a process
died after sending and before removing it), the event id lets the receiver drop the copy.
A delivery leaves the outbox on a 2xx answer; anything else (an error status, a redirect, a
refused host, no answer) reschedules it after ``backoff_s * 2**attempts`` (at most
``backoff_max_s``), until ``retry_window_s`` after it was queued, when it is dropped with a
warning. The outbox holds back a run's next delivery to a URL until the one before it is
removed, so each receiver gets a run's events in order.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import httpx

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhooks,
    sign,
)
from toolchest_wes.store.outbox import Delivery

__all__ = ["DeliveryLoop", "DeliveryPolicy"]

logger = logging.getLogger(__name__)

_BATCH = 10


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timing of deliveries; the settings ``webhook_*`` give it."""

    retry_window_s: float = 86400.0
    backoff_s: float = 5.0
    backoff_max_s: float = 3600.0
    timeout_s: float = 10.0
    poll_s: float = 1.0

    def next_try(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** (attempts - 1)))


class DeliveryLoop:
    """A thread that sends what the outbox holds; :meth:`run_once` is one pass."""

    def __init__(self, webhooks: Webhooks, policy: DeliveryPolicy) -> None:
        self.webhooks = webhooks
        self.policy = policy
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    def start(self) -> None:
        """Start the thread."""
        self._client = httpx.Client(timeout=self.policy.timeout_s, follow_redirects=False)
        self._thread = threading.Thread(target=self._loop, name="webhook-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; deliveries not sent stay in the outbox."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.policy.timeout_s + 5)
        if self._client is not None:
            self._client.close()
        self.webhooks.outbox.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                logger.warning("webhook delivery pass failed", exc_info=True)
                sent = 0
            if not sent:
                self._stop.wait(self.policy.poll_s)

    def run_once(self, now: float | None = None) -> int:
        """Try every due delivery once; returns how many were tried."""
        now = time.time() if now is None else now
        while self.webhooks.drain() > 0:
            pass
        # Held a little longer than one attempt can take, for each delivery in the batch.
        hold = (self.policy.timeout_s + 1) * _BATCH
        due = self.webhooks.outbox.claim_due(now, _BATCH, hold)
        for delivery in due:
            if self._stop.is_set():
                break
            self._attempt(delivery)
        return len(due)

    def _attempt(self, delivery: Delivery) -> None:
        outbox = self.webhooks.outbox
        error = self._send(delivery)
        if error is None:
            outbox.done(delivery.delivery_id)
            return
        attempts = delivery.attempts + 1
        retry = time.time() + self.policy.next_try(attempts)
        if retry - delivery.first_at > self.policy.retry_window_s:
            logger.warning(
                "webhook dropped after %d attempts event=%s url=%s: %s",
                attempts,
                delivery.event_id,
                delivery.url,
                error,
            )
            outbox.done(delivery.delivery_id)
            return
        logger.info(
            "webhook attempt %d failed event=%s url=%s: %s",
            attempts,
            delivery.event_id,
            delivery.url,
            error,
        )
        outbox.retry_at(delivery.delivery_id, retry, attempts)

    def _send(self, delivery: Delivery) -> str | None:
        """``None`` if the receiver took it, else why not."""
        secret = self.webhooks.secret_of(delivery.subscriber)
        if secret is None:
            return "no secret signs it any longer (the subscription was removed)"
        try:
            # Checked again now: a name may resolve elsewhere than at submit.
            self.webhooks.policy.check(delivery.url, what="webhook")
        except BadRequestError as exc:
            return str(exc)
        body = delivery.body.encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "toolchest-wes-webhooks",
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
            EVENT_ID_HEADER: delivery.event_id,
        }
        client = self._client or httpx.Client(timeout=self.policy.timeout_s)
        try:
            response = client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            if client is not self._client:
                client.close()
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
