"""Reading catalog manifests: the starter catalog, and mistakes named by file and field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from toolchest_wes.catalog.catalog import starter_dir
from toolchest_wes.catalog.manifest import FileKind, ManifestError, load_manifest

MANIFEST = """\
id: count
description: Count things.
tags: [text]
versions:
  - id: "1.0"
    workflow_type: cwl
    workflow_type_version: v1.2
    primary_descriptor: main.cwl
    tests: [test.json]
"""

TOOL = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: wc\ninputs: []\noutputs: []\n"


def make_entry(root: Path, manifest: str = MANIFEST, name: str = "count") -> Path:
    folder = root / name
    (folder / "1.0" / "lib").mkdir(parents=True)
    (folder / "1.0" / "main.cwl").write_text(TOOL)
    (folder / "1.0" / "lib" / "step.cwl").write_text(TOOL)
    (folder / "1.0" / "test.json").write_text(json.dumps({"n": 1}))
    (folder / "manifest.yaml").write_text(manifest)
    return folder / "manifest.yaml"


def test_an_entry_has_its_files_kinds_and_checksums(tmp_path: Path) -> None:
    tool = load_manifest(make_entry(tmp_path), "org")

    assert (tool.id, tool.name, tool.organization, tool.tags) == (
        "count",
        "count",
        "org",
        ("text",),
    )
    version = tool.latest
    assert (version.workflow_type, version.tool_class) == ("CWL", "CommandLineTool")
    kinds = {f.path: f.kind for f in version.files}
    assert kinds == {
        "main.cwl": FileKind.PRIMARY,
        "lib/step.cwl": FileKind.SECONDARY,
        "test.json": FileKind.TEST,
    }
    assert version.primary.sha256 == hashlib.sha256(TOOL.encode()).hexdigest()
    assert version.inputs == {"n": 1}
    assert version.file("/lib/step.cwl") is not None
    assert tool.version("2.0") is None


def test_a_dashed_id_gets_a_python_name(tmp_path: Path) -> None:
    path = make_entry(tmp_path, MANIFEST.replace("id: count", "id: sort-uniq"))
    assert load_manifest(path, "org").name == "sort_uniq"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("id: count\n", ""), "id"),
        (("id: count", "id: '../x'"), "id"),
        (("id: count", "id: count\nname: 'not a name'"), "name"),
        (("primary_descriptor: main.cwl", "primary_descriptor: gone.cwl"), "versions[0].files"),
        (("primary_descriptor: main.cwl", "primary_descriptor: ../x.cwl"), "primary_descriptor"),
        (("workflow_type: cwl", "workflow_type: COBOL"), "versions[0].workflow_type"),
        (("    tests: [test.json]", "    tests: [main.cwl, nope.json]"), "versions[0].files"),
        (("tags: [text]", "tags: text"), "tags"),
        (("tags: [text]", "colour: red"), "colour"),
        (('  - id: "1.0"', '  - id: "1.0"\n    folder: ..'), "versions[0].folder"),
        (('  - id: "1.0"', '  - id: "2.0"'), "versions[0].folder"),
    ],
)
def test_a_mistake_names_the_file_and_field(
    tmp_path: Path, change: tuple[str, str], field: str
) -> None:
    path = make_entry(tmp_path, MANIFEST.replace(*change))

    with pytest.raises(ManifestError) as caught:
        load_manifest(path, "org")

    assert str(path) in str(caught.value)
    assert field in str(caught.value)


def test_a_test_file_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    path = make_entry(tmp_path)
    (path.parent / "1.0" / "test.json").write_text("[1, 2]")

    with pytest.raises(ManifestError, match=r"versions\[0\]\.tests: test.json must hold"):
        load_manifest(path, "org")


def test_a_manifest_that_is_no_mapping_is_named(tmp_path: Path) -> None:
    path = make_entry(tmp_path, "- a list\n")
    with pytest.raises(ManifestError, match=r"\(file\): must be a mapping"):
        load_manifest(path, "org")


def test_the_starter_catalog_reads() -> None:
    tools = {p.parent.name: load_manifest(p, "org") for p in starter_dir().glob("*/manifest.yaml")}

    assert {"hello", "wc", "sort-uniq", "sha256sum", "gzip", "gunzip"} <= set(tools)
    assert all(t.description for t in tools.values())
    assert tools["wc"].latest.inputs["inputs"][0]["class"] == "File"
