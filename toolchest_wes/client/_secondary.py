"""The secondary files a CWL process's input types ask for, which a job file need not list.

cwltool, run where the files are, gives each File input of the top-level process the
secondary files its ``secondaryFiles`` patterns name when they exist beside it: the job file
names ``reads.bam`` and the engine finds ``reads.bam.bai``. An engine on a WES server can
only look among the files it was sent, so the client applies the same patterns to the same
inputs first and attaches what it finds. The inputs are left as they are: the attachments keep
their folders, so the engine finds the secondary files beside the primary file by itself.

:func:`wanted_secondary_files` walks the inputs (and the defaults of the inputs left out)
along their declared types: through arrays, unions, records and types named by
``SchemaDefRequirement``, as cwltool does, and only for the top-level process, as cwltool
discovers only there. :func:`secondary_names` turns a File's basename and one pattern into
the names to look for. A plain pattern (``.idx``, ``^.bai``, ``.fai?``) and a parameter
reference to ``self.basename``, ``self.nameroot`` or ``self.nameext`` are evaluated exactly.
Any other expression needs a JavaScript engine, which the client does without; for those,
every file beside the primary file whose name starts with its ``nameroot`` is a candidate
(the engine still decides which of the files sent are secondary files).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchest_wes.cwl_inputs import Loader, fields, named_types, shortname, top_process

__all__ = ["Wanted", "secondary_names", "wanted_secondary_files"]

_EXPRESSION = re.compile(r"\$\(|\$\{")
#: Parameter references that need no JavaScript: the parts of the primary file's name.
_NAME_REFERENCE = re.compile(r"\$\(self\.(basename|nameroot|nameext)\)")


@dataclass(frozen=True)
class Wanted:
    """A File object of the inputs (or of a default) and the patterns that apply to it.

    Attributes:
        file: The File object as the job or the document writes it.
        patterns: The ``secondaryFiles`` patterns, as strings (``"^.bai"``, ``"$(...)"``).
        in_document: Whether the File is a default in the workflow document, whose relative
            locations resolve against the document's folder rather than the job's.
    """

    file: Mapping[str, Any]
    patterns: tuple[str, ...]
    in_document: bool


def wanted_secondary_files(
    document: Any, document_path: Path, fragment: str, inputs: Mapping[str, Any], load: Loader
) -> Iterator[Wanted]:
    """Each File of the top-level process's inputs that has ``secondaryFiles`` patterns.

    Args:
        document: The parsed workflow document.
        document_path: Where it is; ``$import``-ed types resolve against its folder.
        fragment: The process to run in a ``$graph`` document (``""`` for the default).
        inputs: The input object as the job gives it.
        load: Reads an ``$import``-ed document.
    """
    process = top_process(document, fragment)
    if process is None:
        return
    walk = _TypeWalk(named_types(process, document_path, load))
    for name, parameter in fields(process.get("inputs")):
        value = inputs.get(name)
        in_document = value is None
        if in_document:
            value = parameter.get("default")
        patterns = _patterns(parameter.get("secondaryFiles"))
        for file, found in walk.files(value, parameter.get("type"), patterns):
            yield Wanted(file=file, patterns=found, in_document=in_document)


def secondary_names(
    basename: str, pattern: str, siblings: Callable[[], Iterable[str]]
) -> list[str]:
    """The names beside a primary file named ``basename`` that ``pattern`` may mean.

    ``siblings`` lists the primary file's folder; it is called only for an expression the
    client cannot evaluate.
    """
    nameroot, nameext = os.path.splitext(basename)
    if _EXPRESSION.search(pattern):
        parts = {"basename": basename, "nameroot": nameroot, "nameext": nameext}
        evaluated = _NAME_REFERENCE.sub(lambda m: parts[m.group(1)], pattern)
        if not _EXPRESSION.search(evaluated):
            return [evaluated] if evaluated else []
        return sorted(n for n in siblings() if n.startswith(nameroot) and n != basename)
    # A trailing "?" marks an optional pattern (CWL v1.1): found or not, nothing to add.
    return [_substitute(basename, pattern.removesuffix("?"))]


def _substitute(basename: str, pattern: str) -> str:
    """CWL's secondaryFiles rule: each leading ``^`` removes one extension."""
    while pattern.startswith("^"):
        pattern = pattern[1:]
        if "." in basename:
            basename = basename[: basename.rindex(".")]
    return basename + pattern


def _patterns(value: Any) -> tuple[str, ...]:
    """``secondaryFiles`` as pattern strings: a string, a list, or ``{pattern, required}``."""
    items = value if isinstance(value, list) else [value]
    patterns: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("pattern")
        if isinstance(item, str) and item:
            patterns.append(item)
    return tuple(patterns)


class _TypeWalk:
    """Follows a value along its CWL type to the File objects in it."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self._resolving: set[str] = set()

    def files(
        self, value: Any, kind: Any, patterns: tuple[str, ...]
    ) -> Iterator[tuple[Mapping[str, Any], tuple[str, ...]]]:
        """Each File in ``value`` with the patterns of the parameter or field that holds it."""
        if value is None:
            return
        if isinstance(kind, list):  # a union: the value's shape picks the branches that fit
            for branch in kind:
                yield from self.files(value, branch, patterns)
        elif isinstance(kind, str):
            yield from self._named(value, kind, patterns)
        elif isinstance(kind, Mapping):
            yield from self._schema(value, kind, patterns)

    def _named(
        self, value: Any, kind: str, patterns: tuple[str, ...]
    ) -> Iterator[tuple[Mapping[str, Any], tuple[str, ...]]]:
        kind = kind.removesuffix("?")
        if kind.endswith("[]"):
            yield from self._schema(value, {"type": "array", "items": kind[:-2]}, patterns)
        elif kind == "File":
            if isinstance(value, Mapping) and value.get("class") == "File" and patterns:
                yield value, patterns
        else:
            short = shortname(kind)
            schema = self.named.get(short)
            if schema is not None and short not in self._resolving:
                self._resolving.add(short)  # a record type that holds itself
                try:
                    yield from self._schema(value, schema, patterns)
                finally:
                    self._resolving.discard(short)

    def _schema(
        self, value: Any, schema: Mapping[str, Any], patterns: tuple[str, ...]
    ) -> Iterator[tuple[Mapping[str, Any], tuple[str, ...]]]:
        kind = schema.get("type")
        if kind == "array":
            if isinstance(value, list):
                for item in value:
                    yield from self.files(item, schema.get("items"), patterns)
        elif kind == "record":
            if isinstance(value, Mapping) and "class" not in value:
                for name, field in fields(schema.get("fields")):
                    own = _patterns(field.get("secondaryFiles"))
                    yield from self.files(value.get(name), field.get("type"), own)
        elif kind != "enum":
            yield from self.files(value, kind, patterns)
