"""Check a job's inputs against the types a CWL process declares, without cwltool.

Shared by the client, which checks before it sends a submission, and the server, which checks
before it queues one, so that a wrong input is reported at once and by its name rather than
by the engine at run time, naming an internal file. Only the top-level process is read: its
``inputs``, and the types its ``SchemaDefRequirement`` names. The document is plain YAML, so
the check costs a parse and a walk, and needs neither cwltool nor schema-salad.

The check judges what it knows and lets the rest through, for cwltool to judge at run time:
``string``, ``int``/``long`` (with their ranges), ``float``/``double``, ``boolean``, ``File``
(and ``stdin``), ``Directory``, ``null``, ``Any``, arrays, unions (optional ``?`` types among
them), enums and records, and named types that resolve to those. It never refuses a value
cwltool accepts: as in cwltool, a boolean passes for an int and an int for a float, and a
record may carry fields it does not declare. An unknown type (an expression, an unresolved
name, a ``$import`` it cannot read) accepts anything. A required input (no default, a type
without ``null``) that is missing or null is reported too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Loader",
    "fields",
    "input_problems",
    "named_types",
    "shortname",
    "summarise",
    "top_process",
]

#: Loads a YAML document the walk needs (a ``$import``-ed type), naming what referred to it;
#: may return ``None`` for a document it will not read.
Loader = Callable[[Path, str], Any]

#: Type kinds whose schema may stand in the place of a parameter in the map form.
_SCHEMA_KINDS = ("array", "record", "enum")
#: The id cwltool runs when a ``$graph`` document is given without a fragment.
_DEFAULT_PROCESS = "main"
#: Integer ranges as schema-salad checks them (an ``int`` is 32 bits).
_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_CLASSES = {"File": "File", "stdin": "File", "Directory": "Directory"}
#: Nesting beyond this is let through: a type or value that deep is not worth a slow request.
_MAX_DEPTH = 32
#: Problems one message lists at most.
_MAX_PROBLEMS = 10


def shortname(ref: str) -> str:
    """``#main/record_input/f1`` and ``types.yml#Person`` as ``f1`` and ``Person``."""
    return ref.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def top_process(document: Any, fragment: str) -> Mapping[str, Any] | None:
    """The process cwltool runs: the document, or the ``$graph`` entry the fragment names."""
    if not isinstance(document, Mapping):
        return None
    graph = document.get("$graph")
    if not isinstance(graph, list):
        return document
    processes = [p for p in graph if isinstance(p, Mapping)]
    wanted = shortname(fragment) if fragment else _DEFAULT_PROCESS
    for process in processes:
        if shortname(str(process.get("id", ""))) == wanted:
            return process
    return processes[0] if len(processes) == 1 and not fragment else None


def fields(value: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Input parameters or record fields, from the map form or the list form, by short name.

    A map entry whose value is a type (``name: File``, ``name: {type: array, items: File}``)
    becomes ``{"type": ...}``.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(item, Mapping) or "type" not in item:
                parameter: Mapping[str, Any] = {"type": item}
            elif item["type"] in _SCHEMA_KINDS:
                parameter = {**item, "type": item}
            else:
                parameter = item
            yield shortname(str(key)), parameter
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                key = item.get("id", item.get("name"))
                if isinstance(key, str):
                    yield shortname(key), item


def _requirements(process: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The SchemaDefRequirement entries of ``requirements`` and ``hints``, in either form."""
    for key in ("requirements", "hints"):
        section = process.get(key)
        if isinstance(section, Mapping):
            entry = section.get("SchemaDefRequirement")
            if isinstance(entry, Mapping):
                yield entry
        elif isinstance(section, list):
            for entry in section:
                if isinstance(entry, Mapping) and entry.get("class") == "SchemaDefRequirement":
                    yield entry


def named_types(process: Mapping[str, Any], document_path: Path, load: Loader) -> dict[str, Any]:
    """The types SchemaDefRequirement defines, by short name, ``$import``-ed ones included."""
    named: dict[str, Any] = {}

    def add(value: Any, folder: Path) -> None:
        if isinstance(value, list):
            for item in value:
                add(item, folder)
        elif isinstance(value, Mapping):
            ref = value.get("$import")
            if isinstance(ref, str) and "://" not in ref:
                target = folder / ref.partition("#")[0]
                add(load(target, f"$import: {ref!r} in {document_path}"), target.parent)
            elif isinstance(value.get("name"), str):
                named.setdefault(shortname(value["name"]), value)

    for requirement in _requirements(process):
        add(requirement.get("types"), document_path.parent)
    return named


def input_problems(
    document: Any,
    fragment: str,
    params: Mapping[str, Any],
    *,
    document_path: Path | None = None,
    load: Loader | None = None,
) -> list[str]:
    """What is wrong with ``params`` as inputs of the process ``document`` runs.

    Args:
        document: The parsed workflow document.
        fragment: The process to run in a ``$graph`` document (``""`` for the default).
        params: The input object.
        document_path: Where the document is, for ``$import``-ed types (with ``load``).
        load: Reads an ``$import``-ed document; without it such types accept anything.

    Returns:
        One line per problem, such as ``input "count": expected int, got string "three"``;
        empty when nothing is certainly wrong.
    """
    process = top_process(document, fragment)
    if process is None:
        return []
    if document_path is None or load is None:
        document_path, load = Path(), _load_nothing
    checker = _Checker(named_types(process, document_path, load))
    problems = []
    for name, parameter in fields(process.get("inputs")):
        value = params.get(name)
        if value is None and "default" in parameter:
            continue  # cwltool fills in the default for a missing or null input
        problem = checker.field(params, name, parameter.get("type"), name, 0)
        if problem is not None:
            problems.append(str(problem))
    return problems


def _load_nothing(path: Path, referrer: str) -> None:
    return None


def summarise(problems: list[str]) -> str:
    """The problems as one message, the first few of them."""
    text = "; ".join(problems[:_MAX_PROBLEMS])
    if len(problems) > _MAX_PROBLEMS:
        text += f"; and {len(problems) - _MAX_PROBLEMS} more"
    return text


@dataclass(frozen=True)
class _Problem:
    where: str
    expected: str
    value: Any
    #: The value is not there at all (rather than null).
    missing: bool = False

    def __str__(self) -> str:
        got = "nothing (it is required)" if self.missing else _describe_value(self.value)
        return f'input "{self.where}": expected {self.expected}, got {got}'


class _Checker:
    """Walks a value along its declared type; ``None`` means fine, or not known to be wrong."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named

    def check(self, value: Any, kind: Any, where: str, depth: int) -> _Problem | None:
        if depth > _MAX_DEPTH:
            return None
        if isinstance(kind, list):
            return self._union(value, kind, where, depth)
        if isinstance(kind, str):
            return self._named(value, kind, where, depth)
        if isinstance(kind, Mapping):
            return self._schema(value, kind, where, depth)
        return None

    def field(
        self, holder: Mapping[str, Any], name: str, kind: Any, where: str, depth: int
    ) -> _Problem | None:
        """The problem with ``holder[name]``, an input or a record field, if any."""
        problem = self.check(holder.get(name), kind, where, depth)
        if problem is not None and name not in holder and problem.where == where:
            problem = dataclasses.replace(problem, missing=True)
        return problem

    def _union(self, value: Any, kinds: list[Any], where: str, depth: int) -> _Problem | None:
        found = []
        for kind in kinds:
            problem = self.check(value, kind, where, depth + 1)
            if problem is None:
                return None
            found.append((kind, problem))
        others = [(k, p) for k, p in found if k != "null"]
        if len(others) == 1:
            # An optional type: the one real branch says best what is wrong (which item).
            return others[0][1]
        return _Problem(where, self.describe(kinds, depth), value)

    def _named(self, value: Any, kind: str, where: str, depth: int) -> _Problem | None:
        if kind.endswith("?"):
            return None if value is None else self.check(value, kind[:-1], where, depth + 1)
        if kind.endswith("[]"):
            return self._array(value, kind[:-2], where, depth)
        if kind == "null":
            return None if value is None else _Problem(where, "null", value)
        if kind == "Any":
            return None if value is not None else _Problem(where, "any value", value)
        fits = _SCALARS.get(kind)
        if fits is not None:
            if fits(value):
                return None
            if kind in _RANGES and isinstance(value, int):
                low, high = _RANGES[kind]
                return _Problem(where, f"{kind} (from {low} to {high})", value)
            return _Problem(where, kind, value)
        cls = _CLASSES.get(kind)
        if cls is not None:
            ok = isinstance(value, Mapping) and value.get("class") == cls
            return None if ok else _Problem(where, cls, value)
        schema = self.named.get(shortname(kind))
        if schema is None:
            return None  # unknown to this check
        # A record type may hold itself; the walk still ends, with the value (or at _MAX_DEPTH).
        return self._schema(value, schema, where, depth + 1)

    def _schema(
        self, value: Any, schema: Mapping[str, Any], where: str, depth: int
    ) -> _Problem | None:
        kind = schema.get("type")
        if kind == "array":
            return self._array(value, schema.get("items"), where, depth)
        if kind == "enum":
            symbols = [s for s in schema.get("symbols") or [] if isinstance(s, str)]
            allowed = set(symbols) | {shortname(s) for s in symbols}
            if not symbols or (isinstance(value, str) and value in allowed):
                return None
            return _Problem(where, self.describe(schema, depth), value)
        if kind == "record":
            return self._record(value, schema, where, depth)
        return None

    def _array(self, value: Any, items: Any, where: str, depth: int) -> _Problem | None:
        if not isinstance(value, list):
            return _Problem(where, f"array of {self.describe(items, depth)}", value)
        for i, item in enumerate(value):
            problem = self.check(item, items, f"{where}[{i}]", depth + 1)
            if problem is not None:
                return problem
        return None

    def _record(
        self, value: Any, schema: Mapping[str, Any], where: str, depth: int
    ) -> _Problem | None:
        if not isinstance(value, Mapping):
            return _Problem(where, self.describe(schema, depth), value)
        for name, spec in fields(schema.get("fields")):
            problem = self.field(value, name, spec.get("type"), f"{where}.{name}", depth + 1)
            if problem is not None:
                return problem
        return None

    def describe(self, kind: Any, depth: int = 0) -> str:
        """A type as a reader would say it: ``int``, ``array of File``, ``int or string``."""
        if depth > _MAX_DEPTH:
            return "a value"
        if isinstance(kind, list):
            names = [self.describe(k, depth + 1) for k in kind if k != "null"]
            return " or ".join(dict.fromkeys(names)) or "null"
        if isinstance(kind, str):
            if kind.endswith("?"):
                return self.describe(kind[:-1], depth + 1)
            if kind.endswith("[]"):
                return f"array of {self.describe(kind[:-2], depth + 1)}"
            short = shortname(kind)
            schema = self.named.get(short)
            if schema is not None and kind not in _SCALARS and kind not in _CLASSES:
                return self.describe(schema, depth + 1)
            return _CLASSES.get(kind, kind)
        if isinstance(kind, Mapping):
            if kind.get("type") == "array":
                return f"array of {self.describe(kind.get('items'), depth + 1)}"
            if kind.get("type") == "enum":
                symbols = [shortname(s) for s in kind.get("symbols") or [] if isinstance(s, str)]
                return "one of " + ", ".join(json.dumps(s) for s in symbols[:10])
            if kind.get("type") == "record":
                names = [name for name, _ in fields(kind.get("fields"))]
                return "an object with fields " + ", ".join(names) if names else "an object"
        return "a value"


def _is_int(kind: str) -> Callable[[Any], bool]:
    low, high = _RANGES[kind]
    # bool is an int to cwltool as to Python, so ``true`` passes where an int is wanted.
    return lambda value: isinstance(value, int) and low <= value <= high


_SCALARS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "int": _is_int("int"),
    "long": _is_int("long"),
    "float": lambda value: isinstance(value, int | float),
    "double": lambda value: isinstance(value, int | float),
    "boolean": lambda value: isinstance(value, bool),
}


def _describe_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, int):
        return f"int {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"string {json.dumps(shown, ensure_ascii=False)}"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, Mapping):
        cls = value.get("class")
        if isinstance(cls, str) and cls:
            return f"a {cls[:40]}"
        return "an object"
    return type(value).__name__
