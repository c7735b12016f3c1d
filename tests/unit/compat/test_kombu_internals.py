"""The kombu adapter against the installed kombu, and its key layout against a real Redis."""

from __future__ import annotations

import uuid

import kombu
import pytest
import redis
from kombu.transport import redis as kombu_redis

from toolchest_wes.compat import kombu_internals
from toolchest_wes.compat.private_api import PrivateApiChangedError


def test_the_installed_kombu_has_the_layout_read() -> None:
    kombu_internals.verify()


def test_a_renamed_unacked_hash_is_named_with_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kombu_redis.Channel, "unacked_key", "unacked_v2")
    installed = kombu_internals.KOMBU.installed_version()

    with pytest.raises(PrivateApiChangedError) as caught:
        kombu_internals.verify()

    assert str(caught.value) == (
        f"kombu {installed} has kombu.transport.redis.Channel.unacked_key = 'unacked_v2', "
        "not 'unacked'; toolchest-wes supports kombu >=5.3.4,<6"
    )


def test_a_missing_connparams_hook_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(kombu_redis.Channel, "_connparams")

    with pytest.raises(PrivateApiChangedError, match=r"no kombu\.transport\.redis\.Channel\._conn"):
        kombu_internals.verify()


def test_other_priority_queue_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kombu_redis.Channel, "_q_for_pri", lambda self, q, pri: f"{q}:{pri}")

    with pytest.raises(PrivateApiChangedError, match="names the priority queues"):
        kombu_internals.verify()


def test_messages_and_deliveries_are_where_the_layout_says(redis_server) -> None:  # type: ignore[no-untyped-def]
    queue = f"ki-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server.url)
    try:
        with kombu.Connection(redis_server.url) as conn:
            simple = conn.SimpleQueue(queue, no_ack=False)
            simple.put({"n": 1}, priority=0)
            simple.put({"n": 2}, priority=9)
            waiting = [client.llen(key) for key in kombu_internals.queue_keys(queue)]
            assert sum(waiting) == 2 and waiting[0] == 1  # the bare name holds priority 0

            message = simple.get(timeout=5)  # delivered, not acknowledged
            tag = message.delivery_tag
            raw = client.hget(kombu_internals.UNACKED_KEY, tag)
            assert raw is not None
            delivery = kombu_internals.unacked_delivery(raw)
            assert delivery is not None
            body, routing_key = delivery
            assert routing_key == queue and body["properties"]["delivery_tag"] == tag
            assert client.zscore(kombu_internals.UNACKED_INDEX_KEY, tag) is not None
            message.ack()
            simple.get(timeout=5).ack()
            simple.close()
    finally:
        client.delete(queue, *kombu_internals.queue_keys(queue), f"_kombu.binding.{queue}")
        client.close()


@pytest.mark.parametrize("raw", [b"not json", b"42", b'["too", "short"]'])
def test_an_unreadable_delivery_is_none(raw: bytes) -> None:
    assert kombu_internals.unacked_delivery(raw) is None
