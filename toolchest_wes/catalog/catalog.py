"""The catalog: every tool of a catalog folder, read again when the folder changes."""

from __future__ import annotations

import logging
import os
import threading
import time
from importlib import resources
from pathlib import Path

from toolchest_wes.catalog.manifest import MANIFEST, CatalogTool, ManifestError, load_manifest

__all__ = ["STARTER", "Catalog", "CatalogError", "starter_dir"]

log = logging.getLogger(__name__)

#: The name that stands for the catalog shipped in the package.
STARTER = "starter"


class CatalogError(ValueError):
    """A catalog that cannot be served: two tools with one id or name, or a bad manifest."""


def starter_dir() -> Path:
    """The folder of the catalog shipped with the package."""
    return Path(str(resources.files("toolchest_wes.catalog").joinpath(STARTER)))


def _read(root: Path, organization: str) -> dict[str, CatalogTool]:
    tools: dict[str, CatalogTool] = {}
    names: dict[str, str] = {}
    trs_ids: set[str] = set()
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        tool = load_manifest(manifest, organization)
        if tool.id in tools:
            raise ManifestError(manifest, "id", f"{tool.id!r} is the id of another tool")
        if tool.trs_id in trs_ids:
            raise ManifestError(manifest, "trs_id", f"{tool.trs_id!r} is the id of another tool")
        if tool.trs_id:
            trs_ids.add(tool.trs_id)
        if tool.name in names:
            raise ManifestError(manifest, "name", f"{tool.name!r} names {names[tool.name]} too")
        tools[tool.id] = tool
        names[tool.name] = tool.id
    return tools


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file's path, size and modification time: what changes when the catalog does."""
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            stat = os.stat(os.path.join(directory, name))
            found.append((os.path.join(directory, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


class Catalog:
    """The tools of one folder (one subfolder with a ``manifest.yaml`` per tool).

    The folder is read when the catalog is made (a bad manifest raises there, so a server
    fails at startup) and again, at most every ``rescan_interval_s``, when any file's size or
    modification time has changed. A change that breaks a manifest is logged and the tools
    read before are kept, so a half-edited entry never takes the catalog down.
    """

    def __init__(
        self,
        root: Path,
        *,
        label: str | None = None,
        organization: str = "toolchest-wes",
        rescan_interval_s: float = 1.0,
    ) -> None:
        """Read the catalog in ``root``.

        Args:
            root: The catalog folder.
            label: How service-info names this catalog; default the folder.
            organization: The organization of tools whose manifest names none.
            rescan_interval_s: The least time between two looks for changes.

        Raises:
            CatalogError: ``root`` is not a folder, or a manifest is wrong (the message names
                the file and the field).
        """
        if not root.is_dir():
            raise CatalogError(f"the catalog {root} is not a folder")
        self.root = root
        self.label = label or str(root)
        self._organization = organization
        self._interval = rescan_interval_s
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._signature = _signature(root)
        try:
            self._tools = _read(root, organization)
        except ManifestError as exc:
            raise CatalogError(str(exc)) from exc

    def tools(self) -> list[CatalogTool]:
        """Every tool, by id."""
        self._refresh()
        return sorted(self._tools.values(), key=lambda t: t.id)

    def tool(self, tool_id: str) -> CatalogTool | None:
        """The tool with this id, Dockstore-style id, name or alias, if any."""
        self._refresh()
        found = self._tools.get(tool_id)
        if found is None:
            found = next(
                (t for t in self._tools.values() if tool_id in (t.trs_id, t.name, *t.aliases)),
                None,
            )
        return found

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._interval:
            return
        with self._lock:
            if now - self._checked < self._interval:
                return
            self._checked = now
            signature = _signature(self.root)
            if signature == self._signature:
                return
            try:
                self._tools = _read(self.root, self._organization)
            except ManifestError as exc:
                log.error("catalog change not applied, the last good catalog stays: %s", exc)
            else:
                log.info("catalog %s read again: %d tools", self.label, len(self._tools))
            self._signature = signature
