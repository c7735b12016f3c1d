"""Named tools as workflows: a ``workflow_url`` that names a catalog or TRS tool becomes its
files, attached to the submission as if the client had sent them.

Everything is read before anything is staged, so a tool that cannot be read leaves nothing
behind: the submission is refused with a 400 that names the registry, tool or version.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from toolchest_wes.catalog.catalog import Catalog
from toolchest_wes.catalog.manifest import CatalogFile, FileKind
from toolchest_wes.catalog.reference import BadReferenceError, ToolReference, parse_reference
from toolchest_wes.catalog.remote import RegistryError, RemoteVersion
from toolchest_wes.core.errors import BadRequestError, ForbiddenError
from toolchest_wes.core.submission import RunSubmission
from toolchest_wes.core.workspace import Attachment

__all__ = ["TAG_PREFIX", "TOOL_FOLDER", "FetchVersion", "ResolvedTool", "ToolResolver"]

#: The folder of the run's attachments that holds a named tool's files.
TOOL_FOLDER = "tool"
#: Tags of a run of a named tool: which tool, version and descriptor ran.
TAG_PREFIX = "toolchest_wes.tool"

#: Reads a version from a remote registry: (TRS base URL, tool id, version id).
FetchVersion = Callable[[str, str, str], RemoteVersion]
#: Refuses a URL the http(s) URL policy does not allow (raises ``BadRequestError``).
CheckUrl = Callable[[str], None]


@dataclass(frozen=True)
class ResolvedTool:
    """A tool version read in full: where from, its type and its files."""

    reference: ToolReference
    registry: str
    workflow_type: str
    workflow_type_version: str
    primary_descriptor: str
    files: tuple[CatalogFile, ...]

    @property
    def checksum(self) -> str:
        """The primary descriptor's digest, as ``sha-256:<hex>``."""
        primary = next(f for f in self.files if f.path == self.primary_descriptor)
        return f"sha-256:{primary.sha256}"

    def tags(self) -> dict[str, str]:
        """The run's record of exactly what ran."""
        return {
            f"{TAG_PREFIX}": self.reference.tool_id,
            f"{TAG_PREFIX}_version": self.reference.version_id,
            f"{TAG_PREFIX}_registry": self.registry,
            f"{TAG_PREFIX}_checksum": self.checksum,
            f"{TAG_PREFIX}_url": self.reference.url,
        }


@dataclass
class ToolResolver:
    """Turns tool references into files, from this server's catalog or allowed registries.

    Attributes:
        catalog: This server's catalog (``None``: switched off).
        own_hosts: The hosts (``host`` or ``host:port``) that name this server in a TRS
            reference, so its own catalog is read without a request.
        allowed_hosts: The remote registries' hosts a reference may name (``--trs-allow``).
        default_registry: The TRS base URL of Dockstore-style ids (``--trs-registry``).
        catalog_only: Refuse (403) every workflow that is not a tool of the catalog.
        fetch: Reads a remote version (``catalog.remote.fetch_version``).
        check_url: The http(s) URL policy, applied to a remote registry before it is read.
    """

    catalog: Catalog | None
    fetch: FetchVersion
    check_url: CheckUrl
    own_hosts: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()
    default_registry: str | None = None
    catalog_only: bool = False

    def apply(self, sub: RunSubmission) -> ResolvedTool | None:
        """Attach the files of the tool ``sub.workflow_url`` names, and point it at them.

        Fills in an unset ``workflow_type`` and ``workflow_type_version`` from the tool and
        adds tags that record the tool, version, registry and checksum.

        Raises:
            BadRequestError: A reference without its tool or version; a registry not
                allowed, unreachable, or without the tool or version; a type that is not
                the tool's.
            ForbiddenError: ``catalog_only`` and the workflow is not a catalog tool.
        """
        try:
            reference = parse_reference(sub.workflow_url or "")
        except BadReferenceError as exc:
            raise BadRequestError(str(exc)) from None
        if reference is None:
            if self.catalog_only:
                raise ForbiddenError(
                    f"this server runs only the tools of its catalog, and workflow_url "
                    f"{sub.workflow_url!r} names none; give trs://HOST/TOOL/VERSION of a "
                    "tool listed at /ga4gh/trs/v2/tools"
                )
            return None
        resolved = self._resolve(reference, sub.host)
        self._fill_type(sub, resolved)
        sub.attachments = [
            *sub.attachments,
            *(Attachment(f"{TOOL_FOLDER}/{f.path}", io.BytesIO(f.content)) for f in resolved.files),
        ]
        sub.workflow_url = f"{TOOL_FOLDER}/{resolved.primary_descriptor}"
        sub.tags = {**sub.tags, **resolved.tags()}
        return resolved

    def _resolve(self, reference: ToolReference, request_host: str) -> ResolvedTool:
        if reference.host in self.own_hosts or (request_host and reference.host == request_host):
            return self._local(reference)
        if self.catalog_only:
            raise ForbiddenError(
                f"this server runs only the tools of its own catalog, not {reference.url!r} "
                f"from {reference.host or 'another registry'}"
            )
        base = reference.base_url or self.default_registry
        if base is None:
            raise BadRequestError(
                f"workflow_url {reference.url!r} is a registry id, but this server has no "
                "default TRS registry (the operator sets --trs-registry)"
            )
        host = reference.host or _host_of(base)
        if host not in self.allowed_hosts and host.split(":")[0] not in self.allowed_hosts:
            allowed = ", ".join(sorted(self.allowed_hosts)) or "none"
            raise BadRequestError(
                f"workflow_url {reference.url!r}: the TRS registry {host} is not one this "
                f"server reads tools from (allowed: {allowed}; the operator sets --trs-allow)"
            )
        self.check_url(base)
        try:
            remote = self.fetch(base, reference.tool_id, reference.version_id)
        except RegistryError as exc:
            raise BadRequestError(f"workflow_url {reference.url!r}: {exc}") from None
        return ResolvedTool(
            reference,
            base,
            remote.workflow_type,
            remote.workflow_type_version,
            remote.primary_descriptor,
            remote.files,
        )

    def _local(self, reference: ToolReference) -> ResolvedTool:
        entry = self.catalog.tool(reference.tool_id) if self.catalog else None
        if entry is None:
            raise BadRequestError(
                f"workflow_url {reference.url!r}: this server's catalog has no tool "
                f"{reference.tool_id!r}"
            )
        version = entry.version(reference.version_id)
        if version is None:
            known = ", ".join(v.id for v in entry.versions)
            raise BadRequestError(
                f"workflow_url {reference.url!r}: the tool {entry.id!r} has no version "
                f"{reference.version_id!r} (it has {known})"
            )
        return ResolvedTool(
            reference,
            "catalog",
            version.workflow_type,
            version.workflow_type_version,
            version.primary_descriptor,
            tuple(f for f in version.files if f.kind != FileKind.TEST),
        )

    @staticmethod
    def _fill_type(sub: RunSubmission, resolved: ResolvedTool) -> None:
        if sub.workflow_type and sub.workflow_type.upper() != resolved.workflow_type:
            raise BadRequestError(
                f"workflow_type {sub.workflow_type!r} does not match the tool "
                f"{resolved.reference.tool_id!r}, which is {resolved.workflow_type}"
            )
        sub.workflow_type = sub.workflow_type or resolved.workflow_type
        sub.workflow_type_version = sub.workflow_type_version or resolved.workflow_type_version


def _host_of(base_url: str) -> str:
    return urlsplit(base_url).netloc.rpartition("@")[2].lower()
