"""Tool references a ``workflow_url`` may be: which registry, tool and version they name.

Three forms name one version of a tool in a TRS registry:

- ``trs://HOST/ID/VERSION``, the GA4GH TRS URI (``ID`` percent-encoded if it has a ``/``);
- ``https://HOST/…/ga4gh/trs/v2/tools/ID/versions/VERSION``, the TRS URL of the version
  (anything after it, such as ``/CWL/descriptor``, is ignored);
- a Dockstore-style id, ``#workflow/github.com/org/repo:VERSION`` (or ``#tool/…``), which
  names a tool of the operator's default registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["TRS_PATH", "BadReferenceError", "ToolReference", "parse_reference"]

#: Where a TRS 2 API lives under a server's base URL.
TRS_PATH = "/ga4gh/trs/v2"
_TRS_URL = re.compile(
    r"^(?P<base>https?://[^/]+(?:/[^?#]*?)?" + re.escape(TRS_PATH) + r")/tools/(?P<id>[^/?#]+)"
    r"/versions/(?P<version>[^/?#]+)(?:/[^?#]*)?$"
)
_DOCKSTORE = re.compile(r"^#(?:workflow|tool)/\S+$")


class BadReferenceError(ValueError):
    """A tool reference that cannot name a tool version; the message says what is missing."""


@dataclass(frozen=True)
class ToolReference:
    """One version of a tool in a registry.

    Attributes:
        url: The reference as it was given.
        host: The registry's host (with its port, if any), lower case; ``""`` for the
            default registry of a Dockstore-style id.
        base_url: The registry's TRS base URL (``https://HOST/ga4gh/trs/v2``); ``None`` for
            the default registry.
        tool_id: The tool's id in that registry.
        version_id: The version's id.
    """

    url: str
    host: str
    base_url: str | None
    tool_id: str
    version_id: str


def parse_reference(url: str) -> ToolReference | None:
    """The tool version ``url`` names, or ``None`` when it is no tool reference.

    Raises:
        BadReferenceError: ``url`` has a tool reference's form but lacks its tool or version.
    """
    url = url.strip()
    if url.lower().startswith("trs://"):
        return _trs_uri(url)
    if url.lower().startswith(("http://", "https://")):
        match = _TRS_URL.match(url)
        if match is None:
            return None
        host = (urlsplit(url).netloc.rpartition("@")[2]).lower()
        return ToolReference(
            url, host, match["base"], unquote(match["id"]), unquote(match["version"])
        )
    if _DOCKSTORE.match(url):
        tool_id, sep, version = url.rpartition(":")
        if not sep or not version or "/" in version or not tool_id:
            raise BadReferenceError(
                f"workflow_url {url!r} names no version; write it as {url}:VERSION"
            )
        return ToolReference(url, "", None, tool_id, version)
    return None


def _trs_uri(url: str) -> ToolReference:
    parts = urlsplit(url)
    host = parts.netloc.lower()
    segments = [s for s in parts.path.split("/") if s]
    if not host or len(segments) < 2:
        raise BadReferenceError(
            f"workflow_url {url!r}: a TRS URI is trs://HOST/TOOL_ID/VERSION, such as "
            "trs://wes.example.org/wc/1.0"
        )
    tool_id = unquote("/".join(segments[:-1]))
    scheme = "http" if host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]") else "https"
    return ToolReference(url, host, f"{scheme}://{host}{TRS_PATH}", tool_id, unquote(segments[-1]))
