"""A named tool as the client sees it: read from the server's TRS API, its inputs from the
CWL descriptor, and the call's keyword arguments turned into checked inputs.

Shared by the blocking and the asyncio faces (``tools.py``); no I/O of its own except the
``Op`` generators, which the faces drive.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from toolchest_wes.client._core import Core
from toolchest_wes.client._http import Op
from toolchest_wes.client.exceptions import InputTypeError, NotFoundError, UnexpectedResponseError
from toolchest_wes.cwl_inputs import fields, input_problems, top_process

__all__ = [
    "CALL_OPTIONS",
    "ToolInfo",
    "ToolInput",
    "describe_tool",
    "list_tools",
    "tool_params",
    "tool_signature",
]

_WES_PATH = "/ga4gh/wes/v1"
_TRS_PATH = "/ga4gh/trs/v2"
#: Keyword arguments of a tool call that are not the tool's inputs.
CALL_OPTIONS = ("output_path", "is_async", "timeout", "tags")


@dataclass(frozen=True)
class ToolInput:
    """One input of a tool: its name, CWL type (as written), whether it is required, its
    default and its description."""

    name: str
    type: str
    required: bool
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class ToolInfo:
    """A catalog tool: what ``wes.tools`` lists, and with ``inputs`` what a call needs.

    Attributes:
        id: The tool's TRS id.
        name: The Python name it is called by (``wes.tools.<name>``).
        description: What it does.
        version: The version a call runs (the last the registry lists).
        workflow_type: ``CWL``.
        workflow_type_version: Such as ``v1.2``.
        url: The ``trs://`` URL a run names it by.
        inputs: The inputs (after ``describe_tool``; empty in a listing).
        outputs: The output names (after ``describe_tool``).
    """

    id: str
    name: str
    description: str
    version: str
    workflow_type: str
    workflow_type_version: str
    url: str
    inputs: tuple[ToolInput, ...] = ()
    outputs: tuple[str, ...] = ()
    document: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form (``--json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "workflow_type": self.workflow_type,
            "workflow_type_version": self.workflow_type_version,
            "url": self.url,
            "inputs": [vars(i) for i in self.inputs],
            "outputs": list(self.outputs),
        }

    def help_text(self) -> str:
        """The tool's description, inputs and call options, as ``help()`` shows them."""
        lines = [self.description or self.name, "", f"{self.url} ({self.workflow_type})", ""]
        lines.append("Inputs:")
        for item in self.inputs or ():
            need = "required" if item.required else f"default {json.dumps(item.default)}"
            lines.append(
                f"    {item.name} ({item.type}, {need}){': ' + item.doc if item.doc else ''}"
            )
        if self.outputs:
            lines += ["", "Outputs:", *(f"    {name}" for name in self.outputs)]
        lines += [
            "",
            "Call options:",
            "    output_path: a folder to download the outputs into once the run ends.",
            "    is_async: return the Run at once instead of waiting for it.",
            "    timeout: seconds to wait at most.",
            "    tags: tags to keep with the run.",
            "",
            "A File input takes a local path (a File[] input also a folder: every file in",
            "it); local files are attached. Waiting, Ctrl-C cancels the run.",
        ]
        return "\n".join(lines)


def trs_root(core: Core) -> str:
    """The TRS API of the server a client talks to."""
    return core.base.removesuffix(_WES_PATH) + _TRS_PATH


def _host(core: Core) -> str:
    return urlsplit(core.base).netloc


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponseError(f"{response.url} sent no JSON") from None


def _info(core: Core, tool: Mapping[str, Any]) -> ToolInfo:
    versions = tool.get("versions") or []
    if not versions:
        raise UnexpectedResponseError(f"the tool {tool.get('id')!r} has no versions")
    version = versions[-1]
    kind = (version.get("descriptor_type") or ["CWL"])[0]
    kind_version = ((version.get("descriptor_type_version") or {}).get(kind) or ["v1.2"])[0]
    tool_id = str(tool["id"])
    return ToolInfo(
        id=tool_id,
        name=str(tool.get("name") or tool_id),
        description=str(tool.get("description") or ""),
        version=str(version["id"]),
        workflow_type=str(kind),
        workflow_type_version=str(kind_version),
        url=f"trs://{_host(core)}/{quote(tool_id, safe='')}/{quote(str(version['id']), safe='')}",
    )


def list_tools(core: Core) -> Op[list[ToolInfo]]:
    """GET /tools of the server's TRS API: every tool of its catalog."""
    response = yield from core.get(f"{trs_root(core)}/tools")
    return [_info(core, tool) for tool in _json(response)]


def describe_tool(core: Core, name: str) -> Op[ToolInfo]:
    """The tool called ``name`` (its Python name or its id), with its inputs and outputs.

    Raises:
        NotFoundError: The catalog has no such tool.
    """
    tools = yield from list_tools(core)
    found = next((t for t in tools if name in (t.name, t.id)), None)
    if found is None:
        known = ", ".join(t.name for t in tools) or "none"
        raise NotFoundError(404, f"the server's catalog has no tool {name!r} (it has: {known})")
    tool_id, version = quote(found.id, safe=""), quote(found.version, safe="")
    base = f"{trs_root(core)}/tools/{tool_id}/versions/{version}"
    response = yield from core.get(f"{base}/PLAIN_{found.workflow_type}/descriptor")
    try:
        document = yaml.safe_load(response.text)
    except yaml.YAMLError:
        document = None
    process = top_process(document, "") or {}
    inputs = tuple(_input(name, spec) for name, spec in fields(process.get("inputs")))
    outputs = tuple(name for name, _ in fields(process.get("outputs")))
    return ToolInfo(**{**vars(found), "inputs": inputs, "outputs": outputs, "document": document})


def _input(name: str, spec: Mapping[str, Any]) -> ToolInput:
    kind = spec.get("type")
    return ToolInput(
        name=name,
        type=_type_text(kind),
        required="default" not in spec and not _optional(kind),
        default=spec.get("default"),
        doc=str(spec.get("doc") or "").strip(),
    )


def _optional(kind: Any) -> bool:
    if isinstance(kind, str):
        return kind.endswith("?") or kind == "null"
    return isinstance(kind, list) and "null" in kind


def _type_text(kind: Any) -> str:
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return " | ".join(_type_text(k) for k in kind)
    if isinstance(kind, Mapping):
        if kind.get("type") == "array":
            return f"{_type_text(kind.get('items'))}[]"
        return str(kind.get("name") or kind.get("type") or "Any")
    return "Any"


def tool_signature(info: ToolInfo) -> inspect.Signature:
    """The call's signature: each input, then the call options, all keyword-only."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(
            item.name,
            keyword,
            default=inspect.Parameter.empty if item.required else item.default,
            annotation=item.type,
        )
        for item in info.inputs
        if item.name.isidentifier() and item.name not in CALL_OPTIONS
    ]
    params += [
        inspect.Parameter("output_path", keyword, default=None, annotation="str | Path | None"),
        inspect.Parameter("is_async", keyword, default=False, annotation="bool"),
        inspect.Parameter("timeout", keyword, default=None, annotation="float | None"),
        inspect.Parameter("tags", keyword, default=None, annotation="dict[str, str] | None"),
    ]
    return inspect.Signature(params)


def tool_params(info: ToolInfo, values: Mapping[str, Any]) -> dict[str, Any]:
    """The input object of a call: keyword arguments checked against the tool's inputs, and
    local paths given to File and Directory inputs made into File and Directory objects.

    Raises:
        InputTypeError: An unknown or missing input, or one of the wrong type; each problem
            names the input.
    """
    by_name = {item.name: item for item in info.inputs}
    problems = [
        f'input "{name}": {info.name} has no such input (its inputs: {", ".join(by_name)})'
        for name in values
        if name not in by_name
    ]
    if problems:
        raise InputTypeError(info.name, problems)
    params = {name: _local_objects(value, by_name[name].type) for name, value in values.items()}
    problems = input_problems(info.document, "", params)
    if problems:
        raise InputTypeError(info.name, problems)
    return params


def _local_objects(value: Any, kind: str) -> Any:
    """A path given where the type wants a File or Directory, as a File or Directory object;
    a folder given to a File array, as every file in it."""
    base = kind.removesuffix("?")
    if isinstance(value, list | tuple):
        if base == "File[]":  # each a file or a folder of files
            return [f for v in value for f in _local_objects(v, base)]
        return [_local_objects(v, base.removesuffix("[]")) for v in value]
    if not isinstance(value, str | Path):
        return [value] if base == "File[]" and isinstance(value, Mapping) else value
    path = Path(value)
    if base == "File[]" and path.is_dir():
        return [
            _file(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")
        ]
    if base == "File[]":
        return [_file(path)]
    if base == "File":
        return _file(path)
    if base in ("Directory", "Directory[]"):
        directory = {"class": "Directory", "path": str(path)}
        return [directory] if base.endswith("[]") else directory
    return value


def _file(path: Path) -> dict[str, str]:
    return {"class": "File", "path": str(path)}
