"""The workflow catalog (``--catalog``), read once at startup, and the resolver of tool
references (``--trs-allow``, ``--trs-registry``, ``--catalog-only``)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from toolchest_wes.catalog.catalog import STARTER, Catalog
from toolchest_wes.catalog.remote import fetch_version
from toolchest_wes.config import Settings, is_loopback
from toolchest_wes.core.tools import ToolResolver
from toolchest_wes.core.urls import UrlPolicy

__all__ = ["build_catalog", "build_tool_resolver", "own_hosts"]


def build_catalog(settings: Settings) -> Catalog | None:
    """The catalog ``settings`` name, or ``None`` with ``--catalog off``.

    Raises:
        CatalogError: The folder is missing or a manifest is wrong (the message names the
            file and the field), so the server does not start.
    """
    root = settings.catalog_dir
    if root is None:
        return None
    label = STARTER if settings.catalog == STARTER else str(root.resolve())
    return Catalog(root, label=label)


def own_hosts(settings: Settings) -> frozenset[str]:
    """The ``host:port`` names by which TRS references name this server."""
    port = settings.port
    names = {settings.host.lower()}
    if is_loopback(settings.host) or settings.host in ("0.0.0.0", "::"):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    if settings.host in ("0.0.0.0", "::"):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    hosts = {f"{name}:{port}" for name in names}
    if settings.public_url:
        public = urlsplit(settings.public_url)
        hosts |= {public.netloc.lower(), (public.hostname or "").lower()}
    return frozenset(h for h in hosts if h)


def build_tool_resolver(
    settings: Settings, catalog: Catalog | None, url_policy: UrlPolicy
) -> ToolResolver:
    """The resolver of ``trs://``, TRS URL and Dockstore-style ``workflow_url`` values."""
    return ToolResolver(
        catalog,
        fetch=fetch_version,
        check_url=lambda url: url_policy.check(url, what="the TRS registry"),
        own_hosts=own_hosts(settings),
        allowed_hosts=settings.trs_allowed_hosts,
        default_registry=settings.trs_registry.rstrip("/") if settings.trs_registry else None,
        catalog_only=settings.catalog_only,
    )
