"""The Redis token bucket and submit locks, on a real redis-server."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from toolchest_wes.store.base import StoreUnavailableError
from toolchest_wes.store.redis_limits import RedisRateLimiter, RedisUserLocks


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def prefix():
    return f"limits-{uuid.uuid4().hex[:12]}"


def test_bucket_allows_the_burst_then_says_how_long_to_wait(client, prefix):
    limiter = RedisRateLimiter(client, prefix)

    assert [limiter.acquire("u:alice", 1 / 60, 2) for _ in range(2)] == [0, 0]
    wait = limiter.acquire("u:alice", 1 / 60, 2)

    assert 0 < wait <= 60
    assert limiter.acquire("u:bob", 1 / 60, 2) == 0
    assert 0 < client.pttl(f"{prefix}:rate:u:alice") <= 121_000


def test_two_limiters_share_one_bucket(client, redis_url, prefix):
    other = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        first, second = RedisRateLimiter(client, prefix), RedisRateLimiter(other, prefix)
        assert first.acquire("k", 1 / 60, 1) == 0
        assert second.acquire("k", 1 / 60, 1) > 0
    finally:
        other.close()


def test_lock_excludes_other_holders_of_the_same_key(client, prefix):
    locks = RedisUserLocks(client, prefix)
    order: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    def first() -> None:
        with locks.hold("u:alice"):
            entered.set()
            release.wait(10)
            order.append("first")

    def second() -> None:
        with locks.hold("u:alice"):
            order.append("second")

    one = threading.Thread(target=first)
    one.start()
    entered.wait(10)
    two = threading.Thread(target=second)
    two.start()
    with locks.hold("u:bob"):
        order.append("bob")
    release.set()
    one.join(15)
    two.join(15)

    assert order == ["bob", "first", "second"]
    assert client.exists(f"{prefix}:submit-lock:u:alice") == 0


def test_unreachable_redis_is_store_unavailable(prefix):
    with socket_closed_port() as port:
        dead = redis.Redis(port=port, socket_connect_timeout=1, decode_responses=True)
        with pytest.raises(StoreUnavailableError):
            RedisRateLimiter(dead, prefix).acquire("k", 1.0, 1)
        with pytest.raises(StoreUnavailableError), RedisUserLocks(dead, prefix).hold("k"):
            pass


def socket_closed_port():
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield port

    return closed()
