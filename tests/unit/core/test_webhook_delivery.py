"""Signatures, backoff and giving up, with a real receiver on loopback where one is needed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.processes import free_port
from tests.webhook_receiver import Receiver
from toolchest_wes.client.webhooks import sign as client_sign
from toolchest_wes.client.webhooks import verify_signature
from toolchest_wes.core.urls import UrlPolicy
from toolchest_wes.core.webhook_delivery import DeliveryLoop, DeliveryPolicy
from toolchest_wes.core.webhooks import Subscription, Webhooks, sign
from toolchest_wes.models import State
from toolchest_wes.store.sqlite_outbox import SqliteOutbox

LOOPBACK = UrlPolicy(allow_private=True)


def _webhooks(tmp_path: Path, url: str, policy: UrlPolicy = LOOPBACK) -> Webhooks:
    hooks = Webhooks(
        SqliteOutbox(tmp_path / "runs.sqlite"), policy, "s", (Subscription(url, "sub", "all"),)
    )
    hooks.base_url = lambda: "https://wes.example"
    hooks.register("r1", {}, "alice")
    return hooks


def test_server_and_client_sign_alike() -> None:
    assert sign("k", "1", b"{}") == client_sign("k", "1", b"{}")


def test_verify_signature_refuses_tampering_and_stale_timestamps() -> None:
    body = b'{"id":"evt_1","state":"COMPLETE"}'
    headers = {
        "x-toolchest-wes-timestamp": "1000",
        "X-Toolchest-Wes-Signature": sign("k", "1000", body),
    }
    assert verify_signature("k", body, headers, now=1000)
    assert not verify_signature("k", body.replace(b"COMPLETE", b"RUNNING"), headers, now=1000)
    assert not verify_signature("other", body, headers, now=1000)
    assert not verify_signature("k", body, headers, now=1000 + 301)
    assert verify_signature("k", body, headers, tolerance_s=600, now=1000 + 301)
    assert not verify_signature("k", body, {}, now=1000)
    assert not verify_signature("k", body, {**headers, "X-Toolchest-Wes-Timestamp": "x"})


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = DeliveryPolicy(backoff_s=1, backoff_max_s=5)
    assert [policy.next_try(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_delivery_is_sent_signed_with_the_subscriptions_secret(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        hooks = _webhooks(tmp_path, receiver.url)
        hooks.record_created("r1", State.QUEUED, time.time())
        assert DeliveryLoop(hooks, DeliveryPolicy(timeout_s=5)).run_once() == 1
        ((headers, body),) = receiver.received
        assert verify_signature("sub", body, headers)
        (event,) = receiver.events()
        assert event["links"]["outputs"] == "https://wes.example/ga4gh/wes/v1/runs/r1/outputs"
        assert event["owner"] == "alice"
        assert hooks.outbox.pending() == 0
    finally:
        receiver.close()


def test_a_failing_delivery_is_rescheduled_then_dropped_after_the_window(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = _webhooks(tmp_path, f"http://127.0.0.1:{free_port()}/")
    hooks.record_created("r1", State.COMPLETE, time.time())
    loop = DeliveryLoop(hooks, DeliveryPolicy(backoff_s=100, retry_window_s=150, timeout_s=2))
    assert loop.run_once() == 1
    assert hooks.outbox.pending() == 1
    (delivery,) = hooks.outbox.claim_due(now=1e12, limit=1, hold_s=0)
    assert delivery.attempts == 1
    with caplog.at_level(logging.WARNING):
        assert loop.run_once(now=1e12) == 1
    assert hooks.outbox.pending() == 0
    assert "webhook dropped after 2 attempts" in caplog.text


def test_a_host_the_policy_refuses_at_send_time_is_not_contacted(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        hooks = _webhooks(tmp_path, receiver.url, UrlPolicy())
        hooks.record_created("r1", State.COMPLETE, time.time())
        DeliveryLoop(hooks, DeliveryPolicy(timeout_s=2)).run_once()
        assert receiver.received == []
        assert hooks.outbox.pending() == 1
    finally:
        receiver.close()
