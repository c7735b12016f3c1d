"""TrsApi: the read-only TRS 2.0.1 operations over the workflow catalog.

One method per operationId of ``openapi/tool_registry_service.openapi.yaml``, in snake_case
(``toolsIdVersionsGet`` -> ``tools_id_versions_get``); connexion passes path and query
parameters by their spec names (``id``, ``type``, ``toolClass``).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Response, request

from toolchest_wes.catalog.catalog import Catalog
from toolchest_wes.catalog.manifest import CatalogTool, CatalogVersion
from toolchest_wes.core.errors import NotFoundError
from toolchest_wes.server import trs_render as render
from toolchest_wes.server.spec import TRS_BASE_PATH

__all__ = ["MAX_LIMIT", "TrsApi"]

#: The largest page of ``GET /tools``.
MAX_LIMIT = 1000
_PLAIN = "PLAIN_"


class TrsApi:
    """The handlers connexion calls for ``/ga4gh/trs/v2``."""

    def __init__(self, catalog: Catalog | None, *, public_url: str | None = None) -> None:
        self.catalog = catalog
        self.public_url = public_url

    def _base(self) -> str:
        root = self.public_url or request.url_root.rstrip("/")
        return root + TRS_BASE_PATH

    def _tools(self) -> list[CatalogTool]:
        return self.catalog.tools() if self.catalog else []

    def _tool(self, tool_id: str) -> CatalogTool:
        found = self.catalog.tool(tool_id) if self.catalog else None
        # By id only, as TRS names tools; a name or alias is no id.
        if found is None or tool_id not in (found.id, found.trs_id):
            raise NotFoundError(f"the catalog has no tool {tool_id!r}")
        return found

    def _version(self, tool_id: str, version_id: str) -> tuple[CatalogTool, CatalogVersion]:
        entry = self._tool(tool_id)
        version = entry.version(version_id)
        if version is None:
            known = ", ".join(v.id for v in entry.versions)
            raise NotFoundError(f"the tool {tool_id!r} has no version {version_id!r} ({known})")
        return entry, version

    def _typed(
        self, tool_id: str, version_id: str, descriptor_type: str
    ) -> tuple[CatalogTool, CatalogVersion, bool]:
        entry, version = self._version(tool_id, version_id)
        plain = descriptor_type.startswith(_PLAIN)
        if descriptor_type.removeprefix(_PLAIN) != version.workflow_type:
            raise NotFoundError(
                f"{tool_id} {version_id} is written in {version.workflow_type}, "
                f"not {descriptor_type.removeprefix(_PLAIN)}"
            )
        return entry, version, plain

    # -- operations ------------------------------------------------------------------------

    def get_service_info(self) -> dict[str, Any]:
        """GET /service-info."""
        return render.service_info(self.catalog.label if self.catalog else None)

    def tool_classes_get(self) -> list[dict[str, str]]:
        """GET /toolClasses."""
        return [render.tool_class(name) for name in render.TOOL_CLASSES]

    def tools_get(self, limit: int = MAX_LIMIT, offset: str | None = None, **query: Any) -> Any:
        """GET /tools: the tools that match every filter given, one page of them."""
        matching = [t for t in self._tools() if _matches(t, query)]
        limit = max(1, min(limit, MAX_LIMIT))
        # An offset this registry never handed out starts past the end: an empty page.
        start = int(offset) if offset and offset.isdigit() else (0 if not offset else len(matching))
        page = matching[start : start + limit]
        base = self._base()
        headers = {
            "self_link": _page_link(base, start, limit),
            "current_offset": str(start),
            "current_limit": str(limit),
            "last_page": _page_link(base, max(0, (len(matching) - 1) // limit * limit), limit),
        }
        if start + limit < len(matching):
            headers["next_page"] = _page_link(base, start + limit, limit)
        return [render.tool(base, t) for t in page], 200, headers

    def tools_id_get(self, id: str) -> dict[str, Any]:
        """GET /tools/{id}."""
        return render.tool(self._base(), self._tool(id))

    def tools_id_versions_get(self, id: str) -> list[dict[str, Any]]:
        """GET /tools/{id}/versions."""
        entry = self._tool(id)
        return [render.tool_version(self._base(), entry, v) for v in entry.versions]

    def tools_id_versions_version_id_get(self, id: str, version_id: str) -> dict[str, Any]:
        """GET /tools/{id}/versions/{version_id}."""
        entry, version = self._version(id, version_id)
        return render.tool_version(self._base(), entry, version)

    def tools_id_versions_version_id_type_descriptor_get(
        self, id: str, version_id: str, type: str
    ) -> Any:
        """GET /tools/{id}/versions/{version_id}/{type}/descriptor: the primary descriptor."""
        return self.tools_id_versions_version_id_type_descriptor_relative_path_get(
            id, version_id, type, None
        )

    def tools_id_versions_version_id_type_descriptor_relative_path_get(
        self, id: str, version_id: str, type: str, relative_path: str | None
    ) -> Any:
        """GET /tools/{id}/versions/{version_id}/{type}/descriptor/{relative_path}."""
        entry, version, plain = self._typed(id, version_id, type)
        file = version.primary if relative_path is None else version.file(relative_path)
        if file is None:
            raise NotFoundError(f"{id} {version_id} has no file {relative_path!r}")
        if plain:
            # Passed through: connexion's validation would parse a JSON or YAML file served
            # as text and then find it is not the string the spec says.
            return Response(iter([file.content]), mimetype="text/plain", direct_passthrough=True)
        return render.file_wrapper(self._base(), entry, version, file)

    def tools_id_versions_version_id_type_tests_get(
        self, id: str, version_id: str, type: str
    ) -> list[dict[str, Any]]:
        """GET /tools/{id}/versions/{version_id}/{type}/tests: the default inputs."""
        _entry, version, _plain = self._typed(id, version_id, type)
        return [render.test_wrapper(f) for f in version.tests]

    def tools_id_versions_version_id_type_files_get(
        self, id: str, version_id: str, type: str, format: str | None = None
    ) -> Any:
        """GET /tools/{id}/versions/{version_id}/{type}/files, or all of them as a zip."""
        entry, version, _plain = self._typed(id, version_id, type)
        if format == "zip":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in version.files:
                    archive.writestr(file.path, file.content)
            # Passed through, because the spec gives the zip a JSON schema, which connexion's
            # response validation would apply to it.
            return Response(
                iter([buffer.getvalue()]),
                mimetype="application/zip",
                headers={
                    "Content-Disposition": f'attachment; filename="{entry.id}-{version_id}.zip"'
                },
                direct_passthrough=True,
            )
        return [render.tool_file(f) for f in version.files]

    def tools_id_versions_version_id_containerfile_get(
        self, id: str, version_id: str
    ) -> list[dict[str, Any]]:
        """GET /tools/{id}/versions/{version_id}/containerfile: catalog tools have none."""
        self._version(id, version_id)
        raise NotFoundError(f"{id} {version_id} has no container specification")

    def tools_by_path(self, rest: str) -> Any:
        """GET /tools/ID/…, where ID is a Dockstore-style id (``#workflow/github.com/org/repo``).

        Such an id arrives percent-encoded (``%23workflow%2Fgithub.com%2F…``), but the WSGI
        server decodes ``%2F`` before routing, so in ``rest`` the id's slashes and the path's
        look alike. The request as sent (gunicorn's ``RAW_URI``, Werkzeug's ``REQUEST_URI``)
        still tells them apart; a client that sent the id's slashes unencoded is answered by
        the catalog's own ids: the longest one the path starts with is the tool.
        """
        tool_id, parts = _split_raw(request.environ) or self._split_by_catalog(rest)
        match parts:
            case []:
                return self.tools_id_get(tool_id)
            case ["versions"]:
                return self.tools_id_versions_get(tool_id)
            case ["versions", version_id]:
                return self.tools_id_versions_version_id_get(tool_id, version_id)
            case ["versions", version_id, "containerfile"]:
                return self.tools_id_versions_version_id_containerfile_get(tool_id, version_id)
            case ["versions", version_id, kind, "descriptor"]:
                return self.tools_id_versions_version_id_type_descriptor_get(
                    tool_id, version_id, kind
                )
            case ["versions", version_id, kind, "descriptor", *path] if path:
                return self.tools_id_versions_version_id_type_descriptor_relative_path_get(
                    tool_id, version_id, kind, "/".join(path)
                )
            case ["versions", version_id, kind, "tests"]:
                return self.tools_id_versions_version_id_type_tests_get(tool_id, version_id, kind)
            case ["versions", version_id, kind, "files"]:
                return self.tools_id_versions_version_id_type_files_get(
                    tool_id, version_id, kind, request.args.get("format")
                )
        raise NotFoundError(f"the TRS API has no operation at {'/'.join(parts)!r} of {tool_id}")

    def _split_by_catalog(self, rest: str) -> tuple[str, list[str]]:
        ids = [t.trs_id for t in self._tools() if t.trs_id]
        tool_id = max(
            (i for i in ids if rest == i or rest.startswith(i + "/")), key=len, default=None
        )
        if tool_id is None:
            raise NotFoundError(f"the catalog has no tool {rest.split('/versions/')[0]!r}")
        return tool_id, [p for p in rest[len(tool_id) :].split("/") if p]


def _split_raw(environ: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The tool id and the decoded segments after it, from the request as sent, when the
    id came in one percent-encoded segment; ``None`` when that cannot be told."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    path = urlsplit(raw).path if "://" in raw else raw.partition("?")[0]
    prefix = f"{TRS_BASE_PATH}/tools/"
    if not path.startswith(prefix):
        return None
    first, *rest = path[len(prefix) :].split("/")
    tool_id = unquote(first)
    if "/" not in tool_id:
        return None
    return tool_id, [unquote(p) for p in rest if p]


def _page_link(base: str, offset: int, limit: int) -> str:
    return f"{base}/tools?offset={offset}&limit={limit}"


def _matches(entry: CatalogTool, query: dict[str, Any]) -> bool:
    """Whether a tool passes every filter of ``GET /tools`` that was given."""
    checks: dict[str, Callable[[Any], bool]] = {
        "id": lambda v: v in (entry.id, entry.trs_id),
        "alias": lambda v: v in entry.aliases,
        "toolClass": lambda v: entry.latest.tool_class == v,
        "descriptorType": lambda v: any(x.workflow_type == v for x in entry.versions),
        # Catalog tools name no container images, so no image filter matches them.
        "registry": lambda v: False,
        "name": lambda v: False,
        "organization": lambda v: entry.organization == v,
        "toolname": lambda v: v in (entry.name, entry.id),
        "description": lambda v: v.lower() in entry.description.lower(),
        "author": lambda v: v in entry.authors,
        "checker": lambda v: not v,  # none is a checker workflow
    }
    return all(checks[k](v) for k, v in query.items() if v is not None and k in checks)
