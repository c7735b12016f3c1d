"""Load the WES spec (with the extension document laid over it) and the TRS spec."""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "BASE_PATH",
    "EXTENSION_FILE",
    "TRS_BASE_PATH",
    "TRS_FILE",
    "WES_FILE",
    "load_spec",
    "load_trs_spec",
]

WES_FILE = "workflow_execution_service.openapi.yaml"
EXTENSION_FILE = "toolchest_extensions.openapi.yaml"
BASE_PATH = "/ga4gh/wes/v1"
TRS_FILE = "tool_registry_service.openapi.yaml"
TRS_BASE_PATH = "/ga4gh/trs/v2"

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _read(name: str) -> dict[str, Any]:
    text = resources.files("toolchest_wes.openapi").joinpath(name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{name} is not an OpenAPI document")
    return data


def _localise_refs(node: Any) -> Any:
    """Turn ``workflow_execution_service.openapi.yaml#/x`` references into ``#/x``."""
    if isinstance(node, dict):
        return {
            k: (
                v.split("#", 1)[1].join(("#", ""))
                if k == "$ref" and isinstance(v, str) and v.startswith(WES_FILE + "#")
                else _localise_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_localise_refs(v) for v in node]
    return node


def load_spec() -> dict[str, Any]:
    """The WES 1.1.0 document with the toolchest-wes extensions laid over it.

    Raises:
        ValueError: The extension redefines a WES operation or a component.
    """
    spec = _read(WES_FILE)
    ext = _localise_refs(_read(EXTENSION_FILE))
    paths: dict[str, Any] = spec["paths"]
    for path, item in ext.get("paths", {}).items():
        if path not in paths:
            paths[path] = copy.deepcopy(item)
            continue
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            base_op = paths[path].get(method)
            if base_op is None:
                paths[path][method] = copy.deepcopy(operation)
                continue
            if base_op.get("operationId") != operation.get("operationId"):
                raise ValueError(f"extension changes the operationId of {method.upper()} {path}")
            base_op.setdefault("parameters", []).extend(
                copy.deepcopy(operation.get("parameters", []))
            )
            responses = base_op.setdefault("responses", {})
            for code, response in operation.get("responses", {}).items():
                responses.setdefault(str(code), copy.deepcopy(response))
    components: dict[str, Any] = spec.setdefault("components", {})
    for section, entries in ext.get("components", {}).items():
        target = components.setdefault(section, {})
        for name, value in entries.items():
            if name in target:
                raise ValueError(f"extension redefines components/{section}/{name}")
            target[name] = value
    return spec


def load_trs_spec() -> dict[str, Any]:
    """The TRS 2.0.1 document, as served over the workflow catalog.

    Its operations' ``security`` (an API key in ``Authorization``) is dropped: connexion
    would answer 401 to every request without one, and the catalog is public and read-only
    (``server/auth.py`` lets TRS requests through, as any public TRS registry does).
    """
    spec = _read(TRS_FILE)
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in _METHODS:
                operation.pop("security", None)
    return spec
