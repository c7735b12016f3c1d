"""Reading one tool version, every descriptor file of it, from a remote TRS 2 registry."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import httpx

from toolchest_wes.catalog.manifest import CatalogFile, FileKind

__all__ = ["MAX_TOOL_BYTES", "RegistryError", "RemoteVersion", "fetch_version"]

#: The most a tool's files may weigh together; a registry sending more is refused.
MAX_TOOL_BYTES = 16 * 1024 * 1024
_MAX_FILES = 500
#: The files a run needs: its descriptors and other files, not tests or container recipes.
_RUN_FILES = (FileKind.PRIMARY, FileKind.SECONDARY, FileKind.OTHER)
_SHA256 = ("sha-256", "sha256")


class RegistryError(ValueError):
    """The registry is unreachable, or lacks the tool or version; the message names which."""


class RemoteVersion:
    """A version read from a registry: its workflow type and version, and its files."""

    def __init__(
        self, workflow_type: str, type_version: str, primary: str, files: list[CatalogFile]
    ) -> None:
        self.workflow_type = workflow_type
        self.workflow_type_version = type_version
        self.primary_descriptor = primary
        self.files = tuple(files)


def fetch_version(
    base_url: str,
    tool_id: str,
    version_id: str,
    *,
    timeout_s: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> RemoteVersion:
    """Read ``tool_id`` at ``version_id`` and every descriptor file of it from ``base_url``.

    Each file whose listing gives a SHA-256 checksum is checked against it. ``transport``
    stands in for the network (tests of a registry's wrong answers).

    Raises:
        RegistryError: The registry cannot be reached or answers an error, lacks the tool
            or the version, or sends files that are too large or do not match their checksum.
    """
    version_url = (
        f"{base_url}/tools/{quote(tool_id, safe='')}/versions/{quote(version_id, safe='')}"
    )
    where = f"the TRS registry {base_url}"
    # No redirects: the URL policy judged the registry's host, not where it might send us.
    with httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport) as client:
        version = _json(client, version_url, where, f"tool {tool_id!r} version {version_id!r}")
        types = version.get("descriptor_type") or []
        if not isinstance(types, list) or not types:
            raise RegistryError(f"{where} gives no descriptor type for {tool_id} {version_id}")
        kind = "CWL" if "CWL" in types else str(types[0])
        versions = (version.get("descriptor_type_version") or {}).get(kind) or [""]
        listing = _json(client, f"{version_url}/{kind}/files", where, f"the files of {tool_id}")
        if not isinstance(listing, list) or len(listing) > _MAX_FILES:
            raise RegistryError(f"{where} sent no usable file listing for {tool_id} {version_id}")
        files: list[CatalogFile] = []
        total = 0
        for entry in listing:
            if not isinstance(entry, dict) or entry.get("file_type") not in _RUN_FILES:
                continue
            path = str(entry.get("path", "")).lstrip("/")
            response = _get(
                client, f"{version_url}/PLAIN_{kind}/descriptor/{quote(path, safe='')}", where, path
            )
            content = response.content
            total += len(content)
            if total > MAX_TOOL_BYTES:
                raise RegistryError(
                    f"{where}: {tool_id} {version_id} is over {MAX_TOOL_BYTES} bytes"
                )
            digest = hashlib.sha256(content).hexdigest()
            expected = entry.get("checksum") or {}
            if expected.get("type") in _SHA256 and expected.get("checksum") != digest:
                raise RegistryError(f"{where}: {path} does not match its sha-256 checksum")
            files.append(CatalogFile(path, str(entry["file_type"]), content, digest))
    primaries = [f.path for f in files if f.kind == FileKind.PRIMARY]
    if len(primaries) != 1:
        raise RegistryError(f"{where} lists {len(primaries)} primary descriptors for {tool_id}")
    return RemoteVersion(kind, str(versions[0]), primaries[0], files)


def _get(client: httpx.Client, url: str, where: str, what: str) -> httpx.Response:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise RegistryError(f"{where} is not reachable: {exc}") from None
    if response.status_code == 404:
        raise RegistryError(f"{where} has no {what}")
    if response.status_code != 200:
        raise RegistryError(f"{where} answered {response.status_code} for {what}")
    return response


def _json(client: httpx.Client, url: str, where: str, what: str) -> Any:
    response = _get(client, url, where, what)
    try:
        return response.json()
    except ValueError:
        raise RegistryError(f"{where} sent no JSON for {what}") from None
