"""What a ``POST /runs`` carries, and the checks it must pass before anything is stored."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import yaml

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.params import REMOTE_SCHEMES
from toolchest_wes.core.workspace import (
    PARAMS_NAME,
    Attachment,
    check_attachment_name,
    safe_relative_path,
)
from toolchest_wes.cwl_inputs import Loader, input_problems, summarise
from toolchest_wes.engines.base import WorkflowEngine
from toolchest_wes.engines.registry import EngineRegistry, match_version

__all__ = [
    "RunSubmission",
    "check_input_types",
    "check_workflow_url",
    "fingerprint",
    "resolve_engine",
    "unique_attachments",
]

#: The fastest safe YAML loader this PyYAML has (the C one when it was built with libyaml).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Bytes read at a time when comparing repeated attachments.
_HASH_CHUNK = 1024 * 1024


@dataclass
class RunSubmission:
    """A decoded ``POST /runs`` request. JSON fields are already parsed, nothing is checked."""

    workflow_type: str | None = None
    workflow_type_version: str | None = None
    workflow_url: str | None = None
    workflow_params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    workflow_engine_parameters: dict[str, Any] = field(default_factory=dict)
    workflow_engine: str | None = None
    workflow_engine_version: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    #: The host (``host:port``) the request was sent to: a ``trs://`` reference to it names
    #: this server's own catalog.
    host: str = ""
    #: The request's ``Idempotency-Key``: the same key from the same user within the window
    #: stands for one run.
    idempotency_key: str | None = None


def fingerprint(sub: RunSubmission) -> str:
    """What identifies the request behind an idempotency key: a digest of its fields (JSON
    fields by value, so key order does not count) and of each attachment's name and bytes.

    Not a digest of the body itself, which differs between two sends of one request (a
    multipart boundary is random). Call it before anything changes ``sub``.
    """
    document = {
        "workflow_type": sub.workflow_type,
        "workflow_type_version": sub.workflow_type_version,
        "workflow_url": sub.workflow_url,
        "workflow_params": sub.workflow_params,
        "tags": sub.tags,
        "workflow_engine_parameters": sub.workflow_engine_parameters,
        "workflow_engine": sub.workflow_engine,
        "workflow_engine_version": sub.workflow_engine_version,
        "attachments": sorted([a.name, _digest(a.stream).hex()] for a in sub.attachments),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_engine(registry: EngineRegistry, sub: RunSubmission) -> tuple[WorkflowEngine, str]:
    """The engine for the submission's type, version and engine fields, and the version as
    that engine spells it; 400 otherwise.

    Without ``workflow_engine`` the type's default engine runs it, or the first of its other
    engines that accepts the version.
    """
    supported = "; ".join(f"{t} ({', '.join(v)})" for t, v in registry.supported().items())
    if not sub.workflow_type:
        raise BadRequestError(f"workflow_type is missing; this server supports {supported}")
    names = registry.engine_names(sub.workflow_type)
    if not names:
        raise BadRequestError(
            f"workflow_type {sub.workflow_type!r} is not supported; this server supports "
            f"{supported}"
        )
    candidates = [registry.for_type(sub.workflow_type, name) for name in names]
    if sub.workflow_engine:
        chosen = _named_engine(registry, sub.workflow_type, sub.workflow_engine)
        if chosen is None:
            raise BadRequestError(
                f"workflow_engine {sub.workflow_engine!r} is not available for "
                f"{candidates[0].workflow_type if candidates[0] else sub.workflow_type}; "
                f"this server runs it with {', '.join(repr(n) for n in names)}"
            )
        candidates = [chosen]
    engines = [e for e in candidates if e is not None]
    if not sub.workflow_type_version:
        versions = registry.supported()[engines[0].workflow_type]
        raise BadRequestError(
            f"workflow_type_version is missing; supported {engines[0].workflow_type} "
            f"versions: {', '.join(versions)}"
        )
    for engine in engines:
        version = match_version(sub.workflow_type_version, engine.type_versions)
        if version is not None:
            break
    else:
        accepted = sorted({v for e in engines for v in e.type_versions})
        by = f" by {engines[0].name}" if sub.workflow_engine else ""
        raise BadRequestError(
            f"workflow_type_version {sub.workflow_type_version!r} is not supported for "
            f"{engines[0].workflow_type}{by}; supported versions: {', '.join(accepted)}"
        )
    if sub.workflow_engine_version and sub.workflow_engine_version != engine.version():
        raise BadRequestError(
            f"workflow_engine_version {sub.workflow_engine_version!r} is not available; "
            f"this server has {engine.name} {engine.version()}"
        )
    return engine, version


def _named_engine(registry: EngineRegistry, workflow_type: str, name: str) -> WorkflowEngine | None:
    """The engine a client named: ``toil``, or a program of it such as ``toil-cwl-runner``."""
    engine = registry.for_type(workflow_type, name)
    if engine is None and "-" in name:
        engine = registry.for_type(workflow_type, name.split("-", 1)[0])
    return engine


def unique_attachments(attachments: Sequence[Attachment]) -> list[Attachment]:
    """The attachments with normalised names, each name once.

    Clients may send one file several times, when both the workflow and its inputs name it
    (``toil-wes-cwl-runner`` does): parts with the same name and the same bytes are kept once.

    Raises:
        BadRequestError: An unsafe name; one name sent with different contents; a name that
            is both a file and the folder of another attachment.
    """
    by_name: dict[str, list[Attachment]] = {}
    for attachment in attachments:
        attachment.name = check_attachment_name(attachment.name)
        by_name.setdefault(attachment.name, []).append(attachment)
    for name, parts in by_name.items():
        if len(parts) > 1 and len({_digest(p.stream) for p in parts}) > 1:
            raise BadRequestError(
                f"workflow_attachment {name!r} was sent {len(parts)} times with different "
                "contents; send each file once, or give the files different names"
            )
    names = set(by_name)
    folders = {name.rsplit("/", i)[0] for name in names for i in range(1, name.count("/") + 1)}
    for name in sorted(names & folders | {PARAMS_NAME} & folders):
        raise BadRequestError(
            f"workflow_attachment {name!r} is both a file and the folder of another "
            "attachment; rename one of them"
        )
    return [parts[0] for parts in by_name.values()]


def _digest(stream: BinaryIO) -> bytes:
    """SHA-256 of a stream's content, leaving the stream at its start for staging."""
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(_HASH_CHUNK):
        digest.update(chunk)
    stream.seek(0)
    return digest.digest()


def check_workflow_url(url: str | None, names: list[str]) -> str:
    """An http(s) URL, or the normalised path of an attachment (with any #fragment)."""
    if not url or not url.strip():
        raise BadRequestError(
            "workflow_url is missing; give the path of an attached workflow file or an http(s) URL"
        )
    url = url.strip()
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        raise BadRequestError(
            f"workflow_url {url!r}: file:// URLs are not accepted, as they name files on "
            "the server; attach the workflow and give its relative path"
        )
    if scheme in REMOTE_SCHEMES:
        return url
    if "://" in url:
        raise BadRequestError(
            f"workflow_url {url!r} has an unsupported scheme {scheme!r}; use http, https "
            "or a path relative to the attachments"
        )
    path, sep, fragment = url.partition("#")
    rel = safe_relative_path(path, what="workflow_url")
    if not names:
        raise BadRequestError(
            f"workflow_url {url!r} is a relative path, but no workflow_attachment was "
            "sent; attach the workflow file or give an http(s) URL"
        )
    if rel not in names:
        raise BadRequestError(
            f"workflow_url {url!r} names no attached file; attached: "
            f"{', '.join(sorted(names)[:20])}"
        )
    return rel + sep + fragment


def check_input_types(root: Path, workflow_url: str, params: Mapping[str, Any]) -> None:
    """Check ``params`` against the input types of the staged CWL workflow ``workflow_url``.

    Cheap enough for the request path: one YAML parse of the top-level document (and of the
    type files it ``$import``s from the attachments), no cwltool. A remote workflow, or one
    that does not parse, is left for the engine to judge. See ``toolchest_wes.cwl_inputs``.

    Raises:
        BadRequestError: An input does not fit its declared type, or a required input is
            missing; ``msg`` names each, such as ``input "count": expected int, got string
            "three"``.
    """
    if "://" in workflow_url:
        return
    path, _, fragment = workflow_url.partition("#")
    load = _loader_within(root)
    document = load(root / path, "workflow_url")
    if document is None:
        return
    problems = input_problems(document, fragment, params, document_path=root / path, load=load)
    if problems:
        raise BadRequestError(summarise(problems))


def _loader_within(root: Path) -> Loader:
    """Reads YAML files under ``root`` only; anything else (outside, missing, not YAML) is
    ``None``, so the check lets the types it would describe through."""
    top = root.resolve()

    def load(path: Path, referrer: str) -> Any:
        target = path.resolve()
        if not target.is_relative_to(top) or not target.is_file():
            return None
        try:
            with target.open(encoding="utf-8") as handle:
                return yaml.load(handle, Loader=_YAML_LOADER)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None

    return load
