"""Catalog entries as TRS 2.0.1 documents (``Tool``, ``ToolVersion``, ``FileWrapper``…)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from toolchest_wes import __version__
from toolchest_wes.catalog.manifest import CatalogFile, CatalogTool, CatalogVersion, parse_inputs

__all__ = [
    "CHECKSUM_TYPE",
    "TOOL_CLASSES",
    "file_wrapper",
    "service_info",
    "test_wrapper",
    "tool",
    "tool_file",
    "tool_version",
]

#: The GA4GH Checksum Hash Algorithm Registry's name for SHA-256.
CHECKSUM_TYPE = "sha-256"

TOOL_CLASSES = {
    "CommandLineTool": "One command-line program with its inputs and outputs.",
    "Workflow": "Several steps, each a tool or a workflow, joined by their inputs and outputs.",
}


def tool_class(name: str) -> dict[str, str]:
    """The ``ToolClass`` called ``name``."""
    return {"id": name, "name": name, "description": TOOL_CLASSES[name]}


def _checksum(digest: str) -> dict[str, str]:
    return {"checksum": digest, "type": CHECKSUM_TYPE}


def tool_url(base: str, entry: CatalogTool) -> str:
    """The URL of a tool in this registry."""
    return f"{base}/tools/{quote(entry.served_id, safe='')}"


def version_url(base: str, entry: CatalogTool, version: CatalogVersion) -> str:
    """The URL of one version of a tool."""
    return f"{tool_url(base, entry)}/versions/{quote(version.id, safe='')}"


def tool_version(base: str, entry: CatalogTool, version: CatalogVersion) -> dict[str, Any]:
    """A ``ToolVersion``."""
    return {
        "id": version.id,
        "name": version.id,
        "url": version_url(base, entry, version),
        "author": list(entry.authors),
        "descriptor_type": [version.workflow_type],
        "descriptor_type_version": {version.workflow_type: [version.workflow_type_version]},
        "containerfile": False,
        "images": [],
        # A catalog folder can be edited in place, so no version is guaranteed immutable.
        "is_production": False,
        "verified": False,
        "signed": False,
        "meta_version": version.primary.sha256,
    }


def tool(base: str, entry: CatalogTool) -> dict[str, Any]:
    """A ``Tool`` with its versions."""
    return {
        "id": entry.served_id,
        "url": tool_url(base, entry),
        "name": entry.name,
        "aliases": list(entry.aliases),
        "organization": entry.organization,
        "description": entry.description,
        "toolclass": tool_class(entry.latest.tool_class),
        "has_checker": False,
        "versions": [tool_version(base, entry, v) for v in entry.versions],
    }


def file_wrapper(
    base: str, entry: CatalogTool, version: CatalogVersion, file: CatalogFile
) -> dict[str, Any]:
    """A ``FileWrapper`` holding a descriptor (or another file of a version)."""
    url = (
        f"{version_url(base, entry, version)}/PLAIN_{version.workflow_type}/descriptor/"
        f"{quote(file.path)}"
    )
    return {
        "content": file.content.decode("utf-8", errors="replace"),
        "checksum": [_checksum(file.sha256)],
        "image_type": version.workflow_type,
        "url": url,
    }


def test_wrapper(file: CatalogFile) -> dict[str, Any]:
    """A ``FileWrapper`` holding a test's inputs, as JSON whatever the file's format."""
    return {
        "content": json.dumps(parse_inputs(file.content)),
        "checksum": [_checksum(file.sha256)],
    }


def tool_file(file: CatalogFile) -> dict[str, Any]:
    """A ``ToolFile``: a path of the files listing, its kind and checksum."""
    return {"path": file.path, "file_type": file.kind, "checksum": _checksum(file.sha256)}


def service_info(label: str | None) -> dict[str, Any]:
    """The TRS ``service-info``."""
    described = f"the catalog {label}" if label else "no catalog (it is switched off)"
    return {
        "id": "org.toolchest.wes.trs",
        "name": "toolchest-wes tool registry",
        "type": {"group": "org.ga4gh", "artifact": "trs", "version": "2.0.1"},
        "description": f"The workflow catalog of a toolchest-wes server: {described}.",
        "organization": {"name": "toolchest-wes", "url": "https://pypi.org/project/toolchest-wes/"},
        "version": __version__,
    }
