"""State stores: the embedded SQLite store and (in distributed mode) the Redis store.

:func:`store_from_url` picks the store from a URL. Each adapter module is imported only when
its scheme is used, so the embedded mode never imports a Redis client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from toolchest_wes.store.base import StateStore

__all__ = ["store_from_url"]

logger = logging.getLogger(__name__)


def _sqlite_store(rest: str) -> StateStore:
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


#: URL scheme -> (factory given the text after "://", the URL forms to name in errors).
_SCHEMES: dict[str, tuple[Callable[[str], StateStore], str]] = {
    "sqlite": (_sqlite_store, "sqlite:///path.db, sqlite://:memory:"),
}


def store_from_url(url: str) -> StateStore:
    """Open the state store that ``url`` names.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
            ``sqlite://:memory:`` (a private database, for tests).

    Raises:
        ValueError: The scheme is not supported or the URL is malformed. The message never
            repeats the URL, which may hold a password.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower() if sep else ""
    entry = _SCHEMES.get(scheme)
    if entry is None:
        supported = "; ".join(forms for _, forms in _SCHEMES.values())
        named = f"scheme {scheme!r}" if scheme else "a URL without a scheme"
        raise ValueError(f"unsupported state store URL: {named}; supported: {supported}")
    factory, _ = entry
    store = factory(rest)
    logger.debug("opened state store scheme=%s store=%r", scheme, store)
    return store
