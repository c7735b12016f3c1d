"""The input check shared by the client and the server: what it judges and what it lets through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from toolchest_wes.cwl_inputs import input_problems, summarise


def problems(inputs: Any, params: dict[str, Any], **document: Any) -> list[str]:
    return input_problems({"class": "CommandLineTool", "inputs": inputs, **document}, "", params)


@pytest.mark.parametrize(
    ("kind", "good", "bad", "expected"),
    [
        ("string", "a", 1, "string, got int 1"),
        ("int", True, 1.0, "int, got float 1.0"),  # as to cwltool, a boolean is an int
        ("long", 2**40, 2**70, "long (from -9223372036854775808 to 9223372036854775807)"),
        ("float", 1, "1", 'float, got string "1"'),
        ("double", 1.5, None, "double, got null"),
        ("boolean", False, 0, "boolean, got int 0"),
        ("File", {"class": "File", "path": "a"}, {"path": "a"}, "File, got an object"),
        ("stdin", {"class": "File"}, "a", 'File, got string "a"'),
        ("Directory", {"class": "Directory"}, {"class": "File"}, "Directory, got a File"),
        ("Any", 0, None, "any value, got null"),
        ("int[]", [1, 2], [1, "2"], 'int, got string "2"'),
        ("string[]?", None, "a", 'array of string, got string "a"'),
        (["null", "int", "string"], "a", 1.5, "int or string, got float 1.5"),
        ({"type": "array", "items": "File"}, [], {}, "array of File, got an object"),
        ({"type": "enum", "symbols": ["#main/x/a", "b"]}, "a", "c", 'one of "a", "b", got'),
    ],
)
def test_each_kind_of_type(kind: Any, good: Any, bad: Any, expected: str) -> None:
    assert problems({"x": {"type": kind}}, {"x": good}) == []
    (found,) = problems({"x": {"type": kind}}, {"x": bad})
    assert found.startswith('input "x') and f"expected {expected}" in found, found


def test_list_form_ids_defaults_and_optional_inputs() -> None:
    inputs = [
        {"id": "#main/count", "type": "int"},
        {"id": "#main/name", "type": "string", "default": "x"},
        {"id": "#main/maybe", "type": "int?"},
    ]
    assert problems(inputs, {"count": 1, "name": None}) == []
    assert problems(inputs, {}) == ['input "count": expected int, got nothing (it is required)']


def test_records_by_name_and_inline() -> None:
    sample = {
        "name": "Sample",
        "type": "record",
        "fields": {"id": "string", "reads": {"type": "int?"}, "inner": "Sample?"},
    }
    requirements = {"SchemaDefRequirement": {"types": [sample]}}
    inputs = {"s": "#Sample"}
    ok = {"s": {"id": "a", "extra": 1, "inner": {"id": "b"}}}
    assert problems(inputs, ok, requirements=requirements) == []
    assert problems(inputs, {"s": {"id": "a", "inner": {}}}, requirements=requirements) == [
        'input "s.inner.id": expected string, got nothing (it is required)'
    ]
    assert problems(inputs, {"s": []}, requirements=requirements) == [
        'input "s": expected an object with fields id, reads, inner, got an array of 0 items'
    ]


def test_what_it_cannot_judge_passes() -> None:
    inputs = {"a": "#Unknown", "b": "sld:string", "c": {"type": {"$import": "t.yml"}}}
    assert problems(inputs, {"a": 1, "b": 2, "c": 3}) == []
    assert problems({"a": "int"}, {"a": 1, "undeclared": "x"}) == []
    assert input_problems("not a document", "", {}) == []
    assert input_problems({"$graph": [{"id": "a"}, {"id": "b"}]}, "", {"x": 1}) == []


def test_imported_types_resolve_through_the_loader(tmp_path: Path) -> None:
    (tmp_path / "types.yml").write_text(
        yaml.safe_dump([{"name": "Mode", "type": "enum", "symbols": ["fast", "slow"]}])
    )
    document = {
        "requirements": [{"class": "SchemaDefRequirement", "types": [{"$import": "types.yml"}]}],
        "inputs": {"mode": "types.yml#Mode"},
    }

    def load(path: Path, referrer: str) -> Any:
        return yaml.safe_load(path.read_text())

    path = tmp_path / "tool.cwl"
    found = input_problems(document, "", {"mode": "medium"}, document_path=path, load=load)
    assert found == ['input "mode": expected one of "fast", "slow", got string "medium"']
    # Without a loader the type is unknown, so anything passes.
    assert input_problems(document, "", {"mode": "medium"}) == []


def test_a_long_list_of_problems_is_cut_short() -> None:
    lines = [f"p{i}" for i in range(12)]
    assert summarise(lines) == "; ".join(lines[:10]) + "; and 2 more"
