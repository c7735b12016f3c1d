"""Reading one catalog entry: a tool's ``manifest.yaml`` and the files of its versions.

A manifest names the tool and lists its versions; each version's files sit in a folder of the
tool's folder (the version's id unless ``folder`` says otherwise)::

    id: wc
    name: wc
    description: Count the lines, words and bytes of a text file.
    tags: [text]
    trs_id: "#workflow/github.com/org/wc"   # optional: a Dockstore-style id to serve it under
    versions:
      - id: "1.0"
        workflow_type: CWL
        workflow_type_version: v1.2
        primary_descriptor: wc.cwl
        files: [wc.cwl]          # optional: every file of the folder
        tests: [test.json]       # optional: default inputs, JSON or YAML

Every mistake is a :class:`ManifestError` that names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

__all__ = [
    "DESCRIPTOR_TYPES",
    "MANIFEST",
    "TRS_ID",
    "CatalogFile",
    "CatalogTool",
    "CatalogVersion",
    "FileKind",
    "ManifestError",
    "load_manifest",
    "parse_inputs",
]

MANIFEST = "manifest.yaml"
#: Workflow languages as TRS names them (``DescriptorType``).
DESCRIPTOR_TYPES = ("CWL", "WDL", "NFL", "GALAXY", "SMK")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
#: A Dockstore-style TRS id: ``#workflow/`` or ``#tool/``, then a path of safe segments
#: (``#workflow/github.com/org/repo``); no segment is ``.`` or ``..``.
TRS_ID = re.compile(r"^#(?:workflow|tool)(?:/[A-Za-z0-9_][A-Za-z0-9._-]{0,99}){1,10}$")


class ManifestError(ValueError):
    """A catalog entry that cannot be served; the message names the file and the field."""

    def __init__(self, path: Path, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where}: {problem}")
        self.path = path
        self.where = where


class FileKind:
    """A file's role in a version, as TRS ``ToolFile.file_type`` names it."""

    PRIMARY = "PRIMARY_DESCRIPTOR"
    SECONDARY = "SECONDARY_DESCRIPTOR"
    TEST = "TEST_FILE"
    OTHER = "OTHER"


@dataclass(frozen=True)
class CatalogFile:
    """One file of a version: its path relative to the version's folder, content, digest."""

    path: str
    kind: str
    content: bytes
    sha256: str


@dataclass(frozen=True)
class CatalogVersion:
    """One version of a tool with every file it is made of."""

    id: str
    workflow_type: str
    workflow_type_version: str
    primary_descriptor: str
    files: tuple[CatalogFile, ...]
    tool_class: str
    inputs: dict[str, Any] = field(default_factory=dict)

    def file(self, path: str) -> CatalogFile | None:
        """The file at ``path`` (relative to the version's folder), if the version has it."""
        wanted = str(PurePosixPath(path.lstrip("/")))
        return next((f for f in self.files if f.path == wanted), None)

    @property
    def primary(self) -> CatalogFile:
        """The primary descriptor."""
        found = self.file(self.primary_descriptor)
        assert found is not None  # load_manifest checked it
        return found

    @property
    def tests(self) -> tuple[CatalogFile, ...]:
        """The default inputs, first the one a call without inputs starts from."""
        return tuple(f for f in self.files if f.kind == FileKind.TEST)


@dataclass(frozen=True)
class CatalogTool:
    """A catalog entry: a named tool and its versions, newest last as the manifest lists
    them."""

    id: str
    name: str
    description: str
    organization: str
    versions: tuple[CatalogVersion, ...]
    tags: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    trs_id: str | None = None

    @property
    def served_id(self) -> str:
        """The id the TRS API lists the tool under: its Dockstore-style id, if it has one."""
        return self.trs_id or self.id

    def version(self, version_id: str) -> CatalogVersion | None:
        """The version called ``version_id``, if any."""
        return next((v for v in self.versions if v.id == version_id), None)

    @property
    def latest(self) -> CatalogVersion:
        """The last version the manifest lists."""
        return self.versions[-1]


def load_manifest(path: Path, default_organization: str) -> CatalogTool:
    """The tool described by the manifest at ``path``, with its files read.

    Raises:
        ManifestError: The manifest or one of the files it names is missing or wrong.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(path, "(file)", f"cannot be read: {exc}") from None
    reader = _Reader(path)
    if not isinstance(data, dict):
        raise ManifestError(path, "(file)", "must be a mapping")
    tool_id = reader.text(data, "id", pattern=_ID)
    name = reader.text(data, "name", required=False, pattern=_NAME) or tool_id.replace("-", "_")
    if not _NAME.match(name):
        raise ManifestError(path, "name", f"{name!r} is not a Python identifier; set name")
    versions_data = data.get("versions")
    if not isinstance(versions_data, list) or not versions_data:
        raise ManifestError(path, "versions", "must be a non-empty list")
    versions = tuple(
        _load_version(reader, f"versions[{i}]", item) for i, item in enumerate(versions_data)
    )
    ids = [v.id for v in versions]
    if len(set(ids)) != len(ids):
        raise ManifestError(path, "versions", "two versions have the same id")
    unknown = set(data) - {
        "id", "name", "description", "organization", "versions", "tags", "authors", "aliases",
        "trs_id",
    }  # fmt: skip
    if unknown:
        raise ManifestError(path, sorted(unknown)[0], "unknown field")
    return CatalogTool(
        id=tool_id,
        name=name,
        description=reader.text(data, "description", required=False),
        organization=reader.text(data, "organization", required=False) or default_organization,
        versions=versions,
        tags=reader.strings(data, "tags"),
        authors=reader.strings(data, "authors"),
        aliases=reader.strings(data, "aliases"),
        trs_id=reader.text(data, "trs_id", required=False, pattern=TRS_ID) or None,
    )


def _load_version(reader: _Reader, where: str, data: Any) -> CatalogVersion:
    path = reader.path
    if not isinstance(data, dict):
        raise ManifestError(path, where, "must be a mapping")
    unknown = set(data) - {
        "id", "folder", "workflow_type", "workflow_type_version", "primary_descriptor",
        "files", "tests",
    }  # fmt: skip
    if unknown:
        raise ManifestError(path, f"{where}.{sorted(unknown)[0]}", "unknown field")
    version_id = reader.text(data, "id", where=where, pattern=_ID)
    folder = path.parent / reader.text(
        data, "folder", where=where, required=False, default=version_id
    )
    if not folder.is_dir() or not _inside(folder, path.parent):
        raise ManifestError(path, f"{where}.folder", f"{folder} is not a folder of the tool")
    workflow_type = reader.text(data, "workflow_type", where=where).upper()
    if workflow_type not in DESCRIPTOR_TYPES:
        raise ManifestError(
            path, f"{where}.workflow_type", f"must be one of {', '.join(DESCRIPTOR_TYPES)}"
        )
    primary = reader.relative(data.get("primary_descriptor"), f"{where}.primary_descriptor")
    tests = [reader.relative(t, f"{where}.tests") for t in reader.list(data, "tests", where)]
    listed = reader.list(data, "files", where)
    if listed:
        names = [reader.relative(f, f"{where}.files") for f in listed]
    else:
        names = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
    names = list(dict.fromkeys([primary, *names, *tests]))
    files = []
    for name in names:
        file_path = folder / name
        if not file_path.is_file() or not _inside(file_path, folder):
            raise ManifestError(path, f"{where}.files", f"{name} is not a file of {folder}")
        content = file_path.read_bytes()
        kind = (
            FileKind.PRIMARY
            if name == primary
            else FileKind.TEST
            if name in tests
            else FileKind.SECONDARY
            if PurePosixPath(name).suffix.lower() in _DESCRIPTOR_SUFFIXES
            else FileKind.OTHER
        )
        files.append(CatalogFile(name, kind, content, hashlib.sha256(content).hexdigest()))
    test_files = tuple(f for f in files if f.kind == FileKind.TEST)
    return CatalogVersion(
        id=version_id,
        workflow_type=workflow_type,
        workflow_type_version=reader.text(data, "workflow_type_version", where=where),
        primary_descriptor=primary,
        files=tuple(files),
        tool_class=_tool_class(files[0].content, workflow_type),
        inputs=_test_inputs(path, f"{where}.tests", test_files),
    )


_DESCRIPTOR_SUFFIXES = {".cwl", ".wdl", ".nf", ".smk", ".ga", ".gxwf.yml"}


def _tool_class(primary: bytes, workflow_type: str) -> str:
    """``CommandLineTool`` or ``Workflow``: a CWL document's ``class``, else a workflow."""
    if workflow_type == "CWL":
        try:
            document = yaml.safe_load(primary)
        except yaml.YAMLError:
            document = None
        if isinstance(document, dict) and document.get("class") == "CommandLineTool":
            return "CommandLineTool"
    return "Workflow"


def _test_inputs(path: Path, where: str, tests: tuple[CatalogFile, ...]) -> dict[str, Any]:
    """The first test's inputs: what a call starts from. Every test must parse."""
    found: list[dict[str, Any]] = []
    for test in tests:
        try:
            found.append(parse_inputs(test.content))
        except ValueError as exc:
            raise ManifestError(path, where, f"{test.path} {exc}") from None
    return found[0] if found else {}


def parse_inputs(content: bytes) -> dict[str, Any]:
    """A test file's inputs: a JSON or YAML mapping that JSON can carry.

    Raises:
        ValueError: The content is no such mapping.
    """
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ValueError(f"is not JSON or YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("must hold a mapping of inputs")
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"holds a value JSON cannot carry: {exc}") from None
    return data


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


@dataclass(frozen=True)
class _Reader:
    """Typed field access that names the file and field of every mistake."""

    path: Path

    def text(
        self,
        data: dict[str, Any],
        key: str,
        *,
        where: str = "",
        required: bool = True,
        default: str = "",
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        name = f"{where}.{key}" if where else key
        value = data.get(key)
        if value is None:
            if required:
                raise ManifestError(self.path, name, "is required")
            return default
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or (required and not value.strip()):
            raise ManifestError(self.path, name, "must be a non-empty string")
        if pattern is not None and not pattern.match(value):
            raise ManifestError(self.path, name, f"{value!r} must match {pattern.pattern}")
        return value

    def list(self, data: dict[str, Any], key: str, where: str) -> list[Any]:
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ManifestError(self.path, f"{where}.{key}", "must be a list")
        return value

    def strings(self, data: dict[str, Any], key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ManifestError(self.path, key, "must be a list of strings")
        return tuple(value)

    def relative(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or not value:
            raise ManifestError(self.path, name, "must be a relative path")
        pure = PurePosixPath(value)
        if pure.is_absolute() or ".." in pure.parts or "\\" in value:
            raise ManifestError(self.path, name, f"{value!r} must stay inside the version folder")
        return str(pure)
