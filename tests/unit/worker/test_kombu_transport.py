"""The Redis transport fix: closing a channel after kombu tore its transport down is a lost
connection (ignored while closing), not an AttributeError that ends the worker.

This reproduces what the consumer leaves behind after a lost Redis connection (see the
module docstring of ``toolchest_wes.worker.kombu_transport``): a default channel holding an
unacknowledged delivery, still open, whose transport ``Connection.collect()`` tore down.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import kombu
import pytest
import redis

from toolchest_wes.worker.kombu_transport import TRANSPORT

STOCK = "redis"


@pytest.fixture
def queue_name(redis_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = f"kt-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(redis_server.url)
    client.delete(name, f"_kombu.binding.{name}")
    tags = [t for t, p in client.hgetall("unacked").items() if json.loads(p)[2] == name]
    if tags:
        client.hdel("unacked", *tags)
        client.zrem("unacked_index", *tags)
    client.close()


def _torn_down_with_a_delivery(url: str, transport: str, queue_name: str) -> kombu.Connection:
    with kombu.Connection(url) as producer:
        producer.SimpleQueue(queue_name).put({"run": 1})
    conn = kombu.Connection(url, transport=transport)
    delivered: list[kombu.Message] = []
    queue = kombu.Queue(queue_name, kombu.Exchange(queue_name), queue_name)
    consumer = conn.Consumer([queue], callbacks=[lambda _body, m: delivered.append(m)])
    consumer.qos(prefetch_count=1)
    consumer.consume()
    conn.drain_events(timeout=5)
    assert len(delivered) == 1  # unacknowledged: the QoS restores it when the channel closes
    # What Connection.collect() does last, after closing the channels failed midway.
    conn._do_close_transport()
    return conn


def test_stock_kombu_still_has_the_bug(redis_server, queue_name: str) -> None:  # type: ignore[no-untyped-def]
    """If this fails, kombu fixed it: remove toolchest_wes/worker/kombu_transport.py."""
    conn = _torn_down_with_a_delivery(redis_server.url, STOCK, queue_name)
    with pytest.raises(AttributeError, match="hostname"):
        conn.maybe_close_channel(conn._default_channel)


def test_a_torn_down_transport_is_a_lost_connection(  # type: ignore[no-untyped-def]
    redis_server,
    queue_name: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Earlier tests may have configured logging with disable_existing_loggers.
    logger = logging.getLogger("toolchest_wes.worker.kombu_transport")
    monkeypatch.setattr(logger, "disabled", False)
    caplog.set_level(logging.WARNING, logger=logger.name)
    conn = _torn_down_with_a_delivery(redis_server.url, TRANSPORT, queue_name)

    # What Celery's reconnect path calls; it ignores connection errors, and only those.
    conn.maybe_close_channel(conn._default_channel)
    conn.close()

    assert "already torn down" in caplog.text
    # The delivery was not restored: it stays in kombu's unacknowledged hash, where the
    # reconcile loop finds a QUEUED run's message once it is older than the grace period.
    client = redis.Redis.from_url(redis_server.url)
    try:
        ours = [
            tag
            for tag, payload in client.hgetall("unacked").items()
            if json.loads(payload)[2] == queue_name
        ]
        assert len(ours) == 1
    finally:
        client.close()
