"""Check the File and Directory inputs of ``workflow_params`` against what was attached.

Inputs must be attached files (by relative path) or http(s) URLs. Some clients, such as the
reference ``wes-client``, send absolute ``file://`` locations from the client's machine next to
the attachments they name; those are mapped back onto the attachment whose relative path they
end with. Nothing may name a file on the server.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import quote, unquote, urlparse

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.workspace import safe_relative_path

__all__ = ["REMOTE_SCHEMES", "localise_params"]

#: URL schemes the engine fetches by itself; every other input must be attached.
REMOTE_SCHEMES = ("http", "https")
_LOCATION_KEYS = ("location", "path")


def localise_params(params: dict[str, Any], attachments: Collection[str]) -> dict[str, Any]:
    """A copy of ``params`` whose local File/Directory references are attachment paths.

    Raises:
        BadRequestError: A reference that is neither attached nor an http(s) URL, naming
            where it is in the params.
    """
    names = set(attachments)
    folders = {name.rsplit("/", i)[0] for name in names for i in range(1, name.count("/") + 1)}
    result = _visit(params, "workflow_params", names, folders)
    assert isinstance(result, dict)
    return result


def _visit(value: Any, where: str, names: set[str], folders: set[str]) -> Any:
    if isinstance(value, list):
        return [_visit(v, f"{where}[{i}]", names, folders) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out = {k: _visit(v, f"{where}.{k}", names, folders) for k, v in value.items()}
    kind = value.get("class")
    if kind not in ("File", "Directory"):
        return out
    for key in _LOCATION_KEYS:
        ref = value.get(key)
        if isinstance(ref, str):
            known = names if kind == "File" else folders
            out[key] = _localise(ref, f"{where}.{key}", known, uri=key == "location")
    return out


def _localise(ref: str, where: str, known: set[str], *, uri: bool) -> str:
    """The attachment-relative form of one reference; ``uri`` for a ``location``.

    A ``location`` is a URI reference, which the engine percent-decodes: its decoded form is
    what must stay inside the attachments, and an attachment name put in its place is
    percent-encoded (unencoded, "A:B.txt" reads as the URI scheme "A").
    """
    scheme = urlparse(ref).scheme.lower()
    if scheme in REMOTE_SCHEMES or ref.startswith("_:"):
        return ref
    if scheme == "file" or ref.startswith("/"):
        path = unquote(urlparse(ref).path) if scheme == "file" else ref
        match = _attached_suffix(path, known)
        if match is None:
            raise BadRequestError(
                f"{where} {ref!r} names a file on the server or on your machine that was not "
                "attached; attach the file and refer to it by its relative path"
            )
        return quote(match) if uri else match
    if "://" in ref:
        raise BadRequestError(
            f"{where} {ref!r} has an unsupported scheme; use http, https or a path relative "
            "to the attachments"
        )
    if uri:
        safe_relative_path(unquote(ref), what=where)  # "%2E%2E/x" is "../x" to the engine
    return safe_relative_path(ref, what=where)


def _attached_suffix(path: str, known: set[str]) -> str | None:
    """The longest attached path that ``path`` ends with, on a folder boundary."""
    parts = [p for p in path.split("/") if p]
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if candidate in known:
            return candidate
    return None
