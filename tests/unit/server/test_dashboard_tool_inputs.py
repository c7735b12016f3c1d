"""The inputs of a catalog tool as the dashboard's Submit page builds its form from them."""

from __future__ import annotations

import dataclasses

from toolchest_wes.catalog.manifest import CatalogFile, CatalogVersion, FileKind
from toolchest_wes.server.dashboard import tool_inputs


def test_each_cwl_type_becomes_a_kind_of_field():
    document = b"""
cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  - id: flag
    type: boolean
    label: A flag
  - id: ratio
    type: double?
  - id: mode
    type: {type: enum, symbols: ["#mode/fast", "#mode/slow"]}
    default: fast
  - id: names
    type: string[]
    doc: [First line., Second line.]
  - id: many
    type: {type: array, items: File}
  - id: either
    type: ["null", int, string]
outputs: []
"""
    version = CatalogVersion(
        id="1",
        workflow_type="CWL",
        workflow_type_version="v1.2",
        primary_descriptor="t.cwl",
        files=(CatalogFile("t.cwl", FileKind.PRIMARY, document, ""),),
        tool_class="CommandLineTool",
    )
    found = {item.pop("name"): item for item in tool_inputs(version)}
    assert found["flag"] == {"kind": "boolean", "optional": False, "label": "A flag", "doc": ""}
    assert found["ratio"]["kind"] == "float" and found["ratio"]["optional"]
    assert found["mode"] == {
        "kind": "enum",
        "symbols": ["fast", "slow"],
        "optional": True,
        "label": "",
        "doc": "",
        "default": "fast",
    }
    assert found["names"]["kind"] == "json"
    assert found["names"]["doc"] == "First line.\nSecond line."
    assert found["many"]["kind"] == "File[]"
    assert found["either"]["kind"] == "json" and found["either"]["optional"]
    broken = dataclasses.replace(version, files=(CatalogFile("t.cwl", "", b"a: [", ""),))
    assert tool_inputs(broken) == []
