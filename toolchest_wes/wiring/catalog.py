"""The workflow catalog from settings (``--catalog``), read once at startup."""

from __future__ import annotations

from toolchest_wes.catalog.catalog import STARTER, Catalog
from toolchest_wes.config import Settings

__all__ = ["build_catalog"]


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
