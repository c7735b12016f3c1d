"""Per-user submit limits in Redis, shared by every API process of a distributed server.

Keys, under the store's prefix ``p``:

=========================== ====== ==========================================================
``p:rate:<user key>``       HASH   a token bucket: ``tokens`` and ``at`` (Redis server time, s);
                                   expires once it would be full again
``p:submit-lock:<user key>`` STRING held while one submission counts the user's active runs
                                   and stores the new run (redis-py ``Lock``, with a TTL)
=========================== ====== ==========================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError

from toolchest_wes.store.base import StoreUnavailableError

__all__ = ["RedisRateLimiter", "RedisUserLocks"]

# One script call: refill by the time elapsed on the Redis clock (the same for every API
# process), then take a token or say how long until one is there.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)
#: A lock left by a process that died frees itself after this long.
_LOCK_TTL_S = 10.0
#: How long a submission waits for another submission of the same user.
_LOCK_WAIT_S = 10.0


class RedisRateLimiter:
    """Token buckets in Redis (a ``RateLimiter``)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_TOKEN_BUCKET)

    def acquire(self, key: str, rate_per_s: float, burst: int) -> float:
        """Take one token for ``key``: 0 if taken, else the seconds until one is available."""
        try:
            wait = self._script(keys=[f"{self._prefix}:rate:{key}"], args=[rate_per_s, burst])
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"Redis is not answering: {exc}") from exc
        return float(wait)


class RedisUserLocks:
    """Per-key locks in Redis (``UserLocks``), held across every API process."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock for the block; ``StoreUnavailableError`` if it cannot be had."""
        lock = self._client.lock(
            f"{self._prefix}:submit-lock:{key}",
            timeout=_LOCK_TTL_S,
            blocking_timeout=_LOCK_WAIT_S,
        )
        try:
            acquired = lock.acquire()
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"Redis is not answering: {exc}") from exc
        if not acquired:
            raise StoreUnavailableError("another submission of the same user holds the lock")
        try:
            yield
        finally:
            try:
                lock.release()
            except (LockError, *_UNAVAILABLE):
                # Expired or unreachable: the TTL frees it either way.
                pass
