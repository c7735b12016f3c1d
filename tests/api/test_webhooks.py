"""Webhooks of run state changes, to a real HTTP receiver on loopback, in both modes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import API, EXAMPLES, Wes
from tests.processes import free_port
from tests.webhook_receiver import Receiver, assert_whole_life
from toolchest_wes.client.webhooks import verify_signature
from toolchest_wes.models import State

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"
SECRET = "s3cret"
NOTIFY = "toolchest_wes.notify_url"
FAST = {
    "webhook_secret": SECRET,
    "allow_private_webhooks": True,
    "webhook_backoff_s": 0.05,
    "webhook_backoff_max_s": 0.2,
    "webhook_poll_s": 0.05,
    "webhook_timeout_s": 2,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooked(make_app: Callable[..., Any], make_settings: Callable[..., Any]) -> Wes:
    app = make_app(make_settings(**FAST))
    return Wes(app.app.test_client())


def _ended(run_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(e["run_id"] == run_id and e["state"] == "COMPLETE" for e in events)


def test_every_state_change_is_posted_in_order_and_signed(hooked: Wes, receiver: Receiver) -> None:
    tags = {NOTIFY: receiver.url, "toolchest_wes.notify_on": "all"}
    run_id = hooked.submit(HELLO, {"message": "hi"}, tags=tags)
    assert hooked.wait(run_id) is State.COMPLETE
    events = receiver.wait_for(_ended(run_id))
    assert_whole_life(events, run_id)
    assert len({e["id"] for e in events}) == 4
    last = events[-1]
    assert last["links"]["run_log"] == f"http://localhost{API}/runs/{run_id}"
    assert last["links"]["status"].endswith(f"/runs/{run_id}/status")
    assert last["time"].endswith("Z")
    assert "owner" in last
    for headers, body in receiver.received:
        assert verify_signature(SECRET, body, headers)
        assert not verify_signature("wrong", body, headers)
        assert not verify_signature(SECRET, body.replace(b"}", b" }", 1), headers)
        assert headers["X-Toolchest-Wes-Event-Id"].startswith("evt_")


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_terminal_is_the_default(hooked: Wes, receiver: Receiver) -> None:
    run_id = hooked.submit(HELLO, {"message": "hi"}, tags={NOTIFY: receiver.url})
    assert hooked.wait(run_id) is State.COMPLETE
    events = receiver.wait_for(_ended(run_id))
    assert [e["state"] for e in events] == ["COMPLETE"]
    assert events[0]["previous_state"] == "RUNNING"


def test_a_receiver_that_is_down_gets_every_event_once_it_is_up(hooked: Wes) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    run_id = hooked.submit(
        HELLO, {"message": "hi"}, tags={NOTIFY: url, "toolchest_wes.notify_on": "all"}
    )
    assert hooked.wait(run_id) is State.COMPLETE
    receiver = Receiver(port)
    try:
        events = receiver.wait_for(_ended(run_id))
        assert_whole_life(events, run_id)
    finally:
        receiver.close()


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_receiver_answering_errors_is_retried(hooked: Wes, receiver: Receiver) -> None:
    receiver.status = 503
    run_id = hooked.submit(HELLO, {"message": "hi"}, tags={NOTIFY: receiver.url})
    assert hooked.wait(run_id) is State.COMPLETE
    receiver.status = 200
    events = receiver.wait_for(_ended(run_id))
    assert [e["state"] for e in events] == ["COMPLETE"]


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_loopback_notify_url_is_refused_unless_allowed(
    make_app: Callable[..., Any], make_settings: Callable[..., Any]
) -> None:
    app = make_app(make_settings(webhook_secret=SECRET))
    wes = Wes(app.app.test_client())
    url = "http://127.0.0.1:9/hook"
    body = wes.submit(HELLO, {"message": "hi"}, tags={NOTIFY: url}, expect=400)
    assert url in body["msg"]
    assert "TOOLCHEST_WES_WEBHOOK_ALLOWED_HOSTS" in body["msg"]


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_notify_url_on_a_server_without_webhooks_is_refused(wes: Wes) -> None:
    body = wes.submit(HELLO, {"message": "hi"}, tags={NOTIFY: "https://example.org/"}, expect=400)
    assert "TOOLCHEST_WES_WEBHOOK_SECRET" in body["msg"]


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_an_unknown_notify_on_is_refused(hooked: Wes, receiver: Receiver) -> None:
    tags = {NOTIFY: receiver.url, "toolchest_wes.notify_on": "sometimes"}
    body = hooked.submit(HELLO, {"message": "hi"}, tags=tags, expect=400)
    assert "toolchest_wes.notify_on" in body["msg"]


def test_operator_subscriptions_get_every_run_with_their_own_secret(
    make_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    receiver: Receiver,
    tmp_path: Any,
) -> None:
    other = Receiver()
    try:
        subs = tmp_path / "hooks.yaml"
        subs.write_text(
            f"- {{url: '{receiver.url}', secret: first, events: all}}\n"
            f"- {{url: '{other.url}', secret: second}}\n"
        )
        settings = make_settings(**{**FAST, "webhook_secret": None}, webhooks_file=subs)
        wes = Wes(make_app(settings).app.test_client())
        run_id = wes.submit(HELLO, {"message": "hi"})
        assert wes.wait(run_id) is State.COMPLETE
        everything = receiver.wait_for(lambda events: len(events) >= 4)
        assert sorted(e["state"] for e in everything) == sorted(
            ["QUEUED", "INITIALIZING", "RUNNING", "COMPLETE"]
        )
        assert [e["state"] for e in other.wait_for(_ended(run_id))] == ["COMPLETE"]
        assert all(verify_signature("first", b, h) for h, b in receiver.received)
        assert all(verify_signature("second", b, h) for h, b in other.received)
    finally:
        other.close()


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_service_info_describes_webhooks_without_any_subscriptions_url_or_secret(
    make_app: Callable[..., Any], make_settings: Callable[..., Any], wes: Wes, tmp_path: Any
) -> None:
    import jsonschema

    from toolchest_wes.server.spec import load_spec

    schema = load_spec()["components"]["schemas"]["ToolchestWesWebhooks"]
    off = wes.client.get(f"{API}/service-info").json["toolchest_wes_webhooks"]
    jsonschema.validate(off, schema)
    assert off["enabled"] is False
    assert off["run_webhooks"] is False

    subs = tmp_path / "hooks.yaml"
    subs.write_text("- {url: 'http://127.0.0.1:9/private-hook', secret: sub-secret}\n")
    settings = make_settings(**FAST, webhooks_file=subs, webhook_retry_window_s=600)
    response = make_app(settings).app.test_client().get(f"{API}/service-info")
    info = response.json["toolchest_wes_webhooks"]
    jsonschema.validate(info, schema)
    assert info["enabled"] and info["run_webhooks"] and info["server_subscriptions"]
    assert info["tags"] == {"notify_url": NOTIFY, "notify_on": "toolchest_wes.notify_on"}
    assert info["notify_on"] == ["all", "terminal"]
    assert info["signature"]["header"] == "X-Toolchest-Wes-Signature"
    assert info["signature"]["algorithm"] == "HMAC-SHA256"
    assert info["retry_window_s"] == 600
    for hidden in ("private-hook", "sub-secret", SECRET):
        assert hidden not in response.get_data(as_text=True)
