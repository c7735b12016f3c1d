"""State stores: the embedded SQLite store and (in distributed mode) the Redis store.

:func:`store_from_url` picks the store from a URL. Each adapter module is imported only when
its scheme is used, so the embedded mode never imports a Redis client.

The Redis key prefix is a keyword argument, not part of the URL: a deployment already sets it
as ``redis_prefix`` (``TOOLCHEST_WES_REDIS_PREFIX``), which the Celery queue names share, and a
Redis URL's query string belongs to redis-py's connection options.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from toolchest_wes.store.base import StateStore

__all__ = ["store_from_url"]

logger = logging.getLogger(__name__)

#: Opens a store given the text after "://", the key prefix and whether to cache states.
_Factory = Callable[[str, str | None, bool], StateStore]


def _sqlite_store(rest: str, prefix: str | None, cache_states: bool) -> StateStore:
    from toolchest_wes.store.embedded_store import MEMORY, EmbeddedStateStore

    if rest == MEMORY:
        return EmbeddedStateStore(MEMORY)
    # sqlite:///runs.db is relative and sqlite:////srv/runs.db absolute: the path is whatever
    # follows the third slash, as in SQLAlchemy. No host, and no query string to misread.
    if not rest.startswith("/") or len(rest) == 1 or "?" in rest or "#" in rest:
        raise ValueError(
            "a SQLite state store URL is sqlite:///relative/path.db, sqlite:////absolute/path.db "
            "or sqlite://:memory:"
        )
    return EmbeddedStateStore(rest[1:])


def _redis_store(scheme: str) -> _Factory:
    def open_(rest: str, prefix: str | None, cache_states: bool) -> StateStore:
        from redis.connection import parse_url

        from toolchest_wes.store.redis_store import DEFAULT_PREFIX, RedisStateStore

        url = f"{scheme}://{rest}"
        try:
            # redis-py parses the URL only when it first connects; parse it now to fail fast.
            options = parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            # redis-py's messages name the bad part, never the URL itself.
            raise ValueError(f"malformed Redis state store URL: {exc}") from exc
        if "prefix" in options:
            raise ValueError(
                "the Redis key prefix is not a URL parameter; pass prefix= "
                "(TOOLCHEST_WES_REDIS_PREFIX)"
            )
        return RedisStateStore(
            url, prefix=DEFAULT_PREFIX if prefix is None else prefix, cache_states=cache_states
        )

    return open_


#: URL scheme -> (factory given the text after "://" and the key prefix, the URL forms to
#: name in errors).
_SCHEMES: dict[str, tuple[_Factory, str]] = {
    "sqlite": (_sqlite_store, "sqlite:///path.db, sqlite://:memory:"),
    "redis": (_redis_store("redis"), "redis://[:password@]host[:port][/db]"),
    "rediss": (_redis_store("rediss"), "rediss://... (TLS)"),
}


def store_from_url(
    url: str, *, prefix: str | None = None, cache_states: bool = False
) -> StateStore:
    """Open the state store that ``url`` names.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
            ``sqlite://:memory:`` (a private database, for tests), or
            ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for TLS).
        prefix: The Redis key prefix (default ``toolchest-wes``); ignored by SQLite stores.
        cache_states: Keep run states in this process, refreshed by the store's change feed
            (Redis only; for API processes that answer status polls).

    Raises:
        ValueError: The scheme is not supported, the URL is malformed, or the prefix is
            empty. The message never repeats the URL, which may hold a password.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower() if sep else ""
    entry = _SCHEMES.get(scheme)
    if entry is None:
        supported = "; ".join(forms for _, forms in _SCHEMES.values())
        named = f"scheme {scheme!r}" if scheme else "a URL without a scheme"
        raise ValueError(f"unsupported state store URL: {named}; supported: {supported}")
    factory, _ = entry
    store = factory(rest, prefix, cache_states)
    logger.debug("opened state store scheme=%s store=%r", scheme, store)
    return store
