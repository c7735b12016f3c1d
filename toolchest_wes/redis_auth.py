"""Putting a Redis password into a Redis URL, for the clients that read it only from there."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["with_password"]

_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def with_password(url: str | None, password: str) -> str | None:
    """``url`` with ``password``, unless it is not a Redis URL or already carries one."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES or parts.password is not None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = quote(parts.username or "", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
