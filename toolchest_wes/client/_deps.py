"""Turn a local CWL workflow and its inputs into what a WES ``POST /runs`` sends.

:func:`bundle_workflow` reads the workflow and every CWL document it references (``run:``,
``$import``, ``$include``, ``$mixin``, ``$schemas``, File and Directory defaults), and the File
and Directory objects of the inputs, with the secondary files that the input types name beside
them (see :mod:`toolchest_wes.client._secondary`). It returns a :class:`Bundle`: the files to
send as ``workflow_attachment`` parts, each named by its path relative to the deepest folder
that holds them all, the ``workflow_url`` relative to that folder, and the inputs with every
local location rewritten to its attachment name (as a relative URI). The documents are parsed
as plain YAML, so the client needs neither cwltool nor schema-salad.

Documents are sent unchanged: a reference inside one should be a relative path, as an
absolute path or ``file://`` URL there still names that place on the server's machine (the
file is attached all the same, under its relative name).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import yaml

from toolchest_wes.client._secondary import secondary_names, wanted_secondary_files
from toolchest_wes.client.exceptions import InputFileError, InputTypeError, WesClientError
from toolchest_wes.cwl_inputs import input_problems

__all__ = ["Bundle", "BundleError", "bundle_workflow", "check_input_types", "is_registry_id"]

_FILE_CLASSES = ("File", "Directory")
#: Keys whose string value names another document that is parsed and scanned in turn.
_PARSED_REFS = ("run", "$import", "$mixin")
#: Keys whose string value names a file that is sent as it is.
_RAW_REFS = ("$include",)
#: Keys of a File or Directory that name places on the client's machine only.
_LOCAL_ONLY_KEYS = ("path", "dirname")


class BundleError(WesClientError, ValueError):
    """A CWL document or job file that the bundle needs is not valid YAML or JSON."""


@dataclass(frozen=True)
class Bundle:
    """What to send: workflow_url relative to the attachments, rewritten params, files to attach.

    Attributes:
        workflow_url: The workflow's path relative to the attachments' common root, with its
            ``#fragment`` if it had one (``"wf/main.cwl#main"``); an http(s) URL unchanged.
        workflow_params: The inputs, with every local File or Directory ``location`` rewritten
            to its attachment name, percent-encoded as a relative URI (``"in/a%20b.txt"``), and
            ``path``/``dirname`` dropped.
        attachments: ``(name, local_path)`` pairs sorted by name, without duplicates. ``name``
            is relative to the common root with ``/`` between folders; ``local_path`` is
            absolute (a symbolic link keeps its own path and is read through).
    """

    workflow_url: str
    workflow_params: dict[str, Any]
    attachments: tuple[tuple[str, Path], ...]


def bundle_workflow(
    workflow: str | Path,
    inputs: Mapping[str, Any] | str | Path | None = None,
    *,
    attachments: Sequence[str | Path] = (),
    cwl: bool = True,
) -> Bundle:
    """Collect a CWL workflow, the files it and its inputs need, and the rewritten inputs.

    Args:
        workflow: A local path to a CWL document, optionally with a ``#fragment``
            (``"packed.cwl#main"``), or a ``file://`` URL to one, or an ``http(s)`` URL. A
            remote workflow is neither attached nor scanned; only its inputs are bundled.
        inputs: The input object as a mapping (relative paths in it resolve against the
            current folder), or the path of a YAML or JSON job file (relative paths resolve
            against the job file's folder), or ``None`` for no inputs. The mapping is not
            changed.
        attachments: More files or folders to send as they are (a folder with everything
            under it), named relative to the common root like the others.
        cwl: Whether the workflow is CWL. Another language's workflow (a Snakefile) is
            attached as it is, without looking into it; ``attachments`` add what it needs.

    Returns:
        The :class:`Bundle` to submit.

    Raises:
        InputFileError: A file that the workflow, its inputs or ``attachments`` name is
            missing or unreadable; the message names the file and what referred to it.
        BundleError: A CWL document or the job file is not valid YAML or JSON, or the job
            file does not hold a mapping.
    """
    collector = _Collector()
    workflow_path, fragment = _workflow_location(workflow)
    if workflow_path is not None and not cwl:
        collector.add_file(workflow_path, "the workflow argument")
    elif workflow_path is not None:
        collector.scan_document(workflow_path, "the workflow argument")
    params, base, source = _load_inputs(inputs)
    rewritten = {
        key: collector.scan_value(value, base, f"input {key}", source)
        for key, value in params.items()
    }
    if workflow_path is not None and cwl:
        collector.add_secondary_files(workflow_path, fragment, params, base)
    for extra in attachments:
        collector.add_path(_absolute(Path(extra)), "attachments=")
    root = collector.root()
    for obj, path in collector.pending:
        # ``location`` is a URI reference: unencoded, a name such as "A:B" would read as the
        # scheme "A", and "#" or "?" would cut the name short.
        obj["location"] = quote(_name(path, root))
    if workflow_path is None:
        workflow_url = str(workflow)
    else:
        workflow_url = _name(workflow_path, root) + (f"#{fragment}" if fragment else "")
    named = {_name(path, root): path for path in collector.files}
    return Bundle(
        workflow_url=workflow_url,
        workflow_params=rewritten,
        attachments=tuple(sorted(named.items())),
    )


def check_input_types(workflow: str | Path, params: Mapping[str, Any]) -> None:
    """Check ``params`` against the input types of a local workflow (see ``cwl_inputs``).

    A remote workflow is not read; the server checks it.

    Raises:
        InputTypeError: An input does not fit its declared type, or a required one is missing.
    """
    workflow_path, fragment = _workflow_location(workflow)
    if workflow_path is None:
        return
    document = _load_yaml(workflow_path, "the workflow argument")
    problems = input_problems(
        document, fragment, params, document_path=workflow_path, load=_load_yaml
    )
    if problems:
        raise InputTypeError(str(workflow), problems)


class _Collector:
    """Walks documents and inputs, gathering the local files and folders they need."""

    def __init__(self) -> None:
        #: Every local file to attach, in the order found (dict keeps it and drops repeats).
        self.files: dict[Path, None] = {}
        #: Folders named by Directory objects or ``attachments=``; the root must hold them.
        self.dirs: list[Path] = []
        #: Rewritten File/Directory copies whose ``location`` becomes an attachment name.
        self.pending: list[tuple[dict[str, Any], Path]] = []
        self._documents: set[Path] = set()

    def root(self) -> Path | None:
        """The deepest folder holding every file and, strictly, every named folder."""
        anchors = [str(path.parent) for path in (*self.files, *self.dirs)]
        return Path(os.path.commonpath(anchors)) if anchors else None

    def scan_document(self, path: Path, referrer: str) -> None:
        """Attach the CWL document ``path`` and, once, everything it references."""
        if path in self._documents:
            return
        self._documents.add(path)
        self.add_file(path, referrer)
        self._scan_node(_load_yaml(path, referrer), path)

    def _scan_node(self, node: Any, document: Path) -> None:
        if isinstance(node, list):
            for item in node:
                self._scan_node(item, document)
            return
        if not isinstance(node, Mapping):
            return
        if node.get("class") in _FILE_CLASSES:
            # A File or Directory literal in a document (a default, an InitialWorkDir entry)
            # resolves against the document's folder, which the attachments keep.
            where = f"{node['class']} literal"
            self._scan_object(node, document.parent, where, f"CWL document {document}")
            return
        for key, value in node.items():
            if key in _PARSED_REFS and isinstance(value, str):
                self._follow(value, document, key, parse=True)
            elif key in _RAW_REFS and isinstance(value, str):
                self._follow(value, document, key, parse=False)
            elif key == "$schemas" and isinstance(value, list):
                for ref in value:
                    if isinstance(ref, str):
                        self._follow(ref, document, key, parse=False)
            else:
                self._scan_node(value, document)

    def _follow(self, ref: str, document: Path, key: str, *, parse: bool) -> None:
        target, _fragment = _split_fragment(ref)
        if not target:  # "#main": a process in the same document
            return
        path = _local_path(target, document.parent, unquoted=True)
        if path is None:
            return  # remote documents are fetched by the server's engine
        referrer = f"{key}: {ref!r} in {document}"
        if parse:
            self.scan_document(path, referrer)
        else:
            self.add_file(path, referrer)

    def scan_value(self, value: Any, base: Path, where: str, source: str) -> Any:
        """A copy of an input value with its local File/Directory objects collected."""
        if isinstance(value, list):
            return [
                self.scan_value(item, base, f"{where}[{i}]", source) for i, item in enumerate(value)
            ]
        if not isinstance(value, Mapping):
            return value
        if value.get("class") in _FILE_CLASSES:
            return self._scan_object(value, base, where, source)
        return {key: self.scan_value(v, base, f"{where}.{key}", source) for key, v in value.items()}

    def _scan_object(
        self, obj: Mapping[str, Any], base: Path, where: str, source: str
    ) -> dict[str, Any]:
        out = dict(obj)
        for key in ("secondaryFiles", "listing"):
            if isinstance(obj.get(key), list):
                out[key] = self.scan_value(obj[key], base, f"{where}.{key}", source)
        # CWL resolves ``location`` first; ``path`` is the older, plain-path spelling.
        is_uri = isinstance(obj.get("location"), str)
        ref = obj["location"] if is_uri else obj.get("path")
        if not isinstance(ref, str) or ref.startswith("_:"):
            return out  # a literal: contents or listing only
        path = _local_path(ref, base, unquoted=is_uri)
        if path is None:
            return out  # http, s3, gs, ...: the engine fetches it
        referrer = f"{where} in {source}"
        for key in _LOCAL_ONLY_KEYS:
            out.pop(key, None)
        self.pending.append((out, path))
        if obj["class"] == "File":
            self.add_file(path, referrer)
        elif "listing" in obj:
            _check(path, referrer, directory=True)
            self.dirs.append(path)
        else:
            self.add_path(path, referrer, directory=True)
        return out

    def add_secondary_files(
        self, workflow: Path, fragment: str, params: Mapping[str, Any], base: Path
    ) -> None:
        """Attach the secondary files the workflow's input types name, where they exist."""
        document = _load_yaml(workflow, "the workflow argument")
        for wanted in wanted_secondary_files(document, workflow, fragment, params, _load_yaml):
            file = wanted.file
            is_uri = isinstance(file.get("location"), str)
            ref = file["location"] if is_uri else file.get("path")
            if not isinstance(ref, str) or ref.startswith("_:"):
                continue
            folder = workflow.parent if wanted.in_document else base
            primary = _local_path(ref, folder, unquoted=is_uri)
            if primary is None or not primary.parent.is_dir():
                continue
            basename = file.get("basename")
            if not isinstance(basename, str) or not basename or "/" in basename:
                basename = primary.name
            listing = _lister(primary.parent)
            for pattern in wanted.patterns:
                for name in secondary_names(basename, pattern, listing):
                    candidate = _absolute(primary.parent / name)
                    # A missing file is left for the engine to report, with its own message,
                    # and only when the pattern makes it required.
                    if candidate != primary and candidate.exists():
                        referrer = f"secondaryFiles {pattern!r} of {primary} in {workflow}"
                        self.add_path(candidate, referrer)

    def add_file(self, path: Path, referrer: str) -> None:
        """Attach one file after checking that it can be read."""
        _check(path, referrer, directory=False)
        self.files[path] = None

    def add_path(self, path: Path, referrer: str, *, directory: bool | None = None) -> None:
        """Attach a file, or a folder with every file under it (following links, once)."""
        if directory is None:
            directory = path.is_dir()
        if not directory:
            self.add_file(path, referrer)
            return
        _check(path, referrer, directory=True)
        self.dirs.append(path)
        seen: set[str] = set()
        for folder, subdirs, names in os.walk(path, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:  # a link back up the tree
                subdirs.clear()
                continue
            seen.add(real)
            subdirs.sort()
            for name in sorted(names):
                self.add_file(Path(folder, name), f"{referrer} (under folder {path})")


def _lister(folder: Path) -> Callable[[], list[str]]:
    """Lists ``folder``'s files once, when first asked."""
    names: list[str] = []

    def listing() -> list[str]:
        if not names:
            names.extend(entry.name for entry in os.scandir(folder) if entry.is_file())
        return names

    return listing


def is_registry_id(workflow: str | Path) -> bool:
    """Whether ``workflow`` is a Dockstore-style id (``#workflow/github.com/org/repo:1.0``),
    which the server resolves against its TRS registry: nothing local to attach.

    The server's ``catalog.reference`` reads these ids in full; the client-only distribution
    ships without it, so this only tells them from a local path.
    """
    return isinstance(workflow, str) and workflow.startswith(("#workflow/", "#tool/"))


def _workflow_location(workflow: str | Path) -> tuple[Path | None, str]:
    """The local workflow path (``None`` when remote) and its fragment."""
    text = str(workflow)
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https", "trs") or is_registry_id(workflow):
        return None, ""
    if scheme == "file":
        target, fragment = _split_fragment(text)
        return _local_path(target, Path.cwd(), unquoted=True), fragment
    if "#" in text and not Path(text).exists():
        target, fragment = _split_fragment(text)
        return _absolute(Path(target)), fragment
    return _absolute(Path(text)), ""


def _load_inputs(
    inputs: Mapping[str, Any] | str | Path | None,
) -> tuple[Mapping[str, Any], Path, str]:
    """The input mapping, the folder its relative paths resolve against, and its description."""
    if inputs is None:
        return {}, Path.cwd(), "the inputs"
    if isinstance(inputs, Mapping):
        return inputs, Path.cwd(), "the inputs"
    path = _absolute(Path(inputs))
    loaded = _load_yaml(path, "the inputs argument")
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, Mapping):
        raise BundleError(
            f"job file {path} holds a {type(loaded).__name__}; it must be a mapping of input "
            "names to values"
        )
    return loaded, path.parent, f"job file {path}"


def _load_yaml(path: Path, referrer: str) -> Any:
    """Parse a YAML or JSON file, naming it and its referrer in every error."""
    _check(path, referrer, directory=False)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path} (named by {referrer}) is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise InputFileError(
            f"{path} cannot be read: {exc.strerror}; it is named by {referrer}"
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BundleError(f"{path} (named by {referrer}) is not valid YAML: {exc}") from exc


def _check(path: Path, referrer: str, *, directory: bool) -> None:
    """Raise :class:`InputFileError` unless ``path`` is a readable file or folder."""
    what = "folder" if directory else "file"
    if not path.exists():
        broken = " (a broken symbolic link)" if path.is_symlink() else ""
        raise InputFileError(f"{what} {path} does not exist{broken}; it is named by {referrer}")
    if path.is_dir() != directory:
        found = "a folder" if path.is_dir() else "not a folder"
        raise InputFileError(f"{path} is {found}, expected a {what}; it is named by {referrer}")
    if not os.access(path, os.R_OK | (os.X_OK if directory else 0)):
        raise InputFileError(f"{what} {path} cannot be read; it is named by {referrer}")


def _split_fragment(ref: str) -> tuple[str, str]:
    target, _, fragment = ref.partition("#")
    return target, fragment


def _local_path(ref: str, base: Path, *, unquoted: bool) -> Path | None:
    """The absolute path a relative path, absolute path or ``file://`` URL names.

    Returns ``None`` for a URL with any other scheme. ``unquoted`` says whether a plain path
    may be percent-encoded (CWL ``location`` is a URI, ``path`` is not); the literal name is
    tried first, so a file named ``a%20b`` still works.
    """
    parts = urlsplit(ref)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _absolute(Path(unquote(parts.path)))
    if scheme:
        return None
    literal = _absolute(base / ref)
    if unquoted and not literal.exists() and not literal.is_symlink():
        decoded = _absolute(base / unquote(ref))
        if decoded.exists():
            return decoded
    return literal


def _absolute(path: Path) -> Path:
    """An absolute, normalised path that keeps symbolic links (named by the link's path)."""
    return Path(os.path.abspath(path))


def _name(path: Path, root: Path | None) -> str:
    assert root is not None  # a path was collected, so the root exists
    return path.relative_to(root).as_posix()
