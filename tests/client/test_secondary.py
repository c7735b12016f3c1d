"""Secondary files named by the input types, which the job does not list, are attached too."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.client.test_deps import assert_server_accepts, cwltool, names, stage, write
from toolchest_wes.client._deps import bundle_workflow
from toolchest_wes.client._secondary import secondary_names

TYPES = """\
- name: Lane
  type: record
  fields:
    - name: reads
      type: File
      secondaryFiles:
        - pattern: ^.bai
          required: true
        - .md5?
"""


def typed_tool(tmp_path: Path) -> Path:
    """A tool whose input types name secondary files in every way the walk follows."""
    write(tmp_path / "types" / "lane.yml", TYPES)
    return write(
        tmp_path / "tool.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
requirements:
  SchemaDefRequirement:
    types:
      - $import: types/lane.yml
inputs:
  sample:
    type:
      type: record
      fields:
        lanes: {type: array, items: types/lane.yml#Lane}
        table:
          type: File
          secondaryFiles: [$(self.nameroot).dict]
        label: string
  maybe:
    type: ["null", File]
    secondaryFiles: .tbi
  scripted:
    type: File
    secondaryFiles: '${ return self.basename + ".x"; }'
  plain: File
  fallback:
    type: File
    secondaryFiles: .fai
    default: {class: File, location: data/ref.fa}
baseCommand: "true"
outputs: []
""",
    )


def test_input_types_name_secondary_files_in_records_arrays_unions_and_defaults(
    tmp_path: Path,
) -> None:
    tool = typed_tool(tmp_path)
    for name in (
        "l1.bam", "l1.bai", "l1.bam.md5", "l2.bam", "l2.bai",
        "t.csv", "t.dict", "v.vcf", "v.vcf.tbi",
        "s.txt", "s.txt.x", "s.log", "other.txt",
        "p.txt", "p.txt.tbi",
        "ref.fa", "ref.fa.fai",
    ):  # fmt: skip
        write(tmp_path / "data" / name, name)
    params: dict[str, Any] = {
        "sample": {
            "lanes": [
                {"reads": {"class": "File", "location": "data/l1.bam"}},
                {"reads": {"class": "File", "path": str(tmp_path / "data" / "l2.bam")}},
            ],
            "table": {"class": "File", "location": "data/t.csv"},
            "label": "x",
        },
        "maybe": {"class": "File", "location": "data/v.vcf"},
        "scripted": {"class": "File", "location": "data/s.txt"},
        "plain": {"class": "File", "location": "data/p.txt"},
    }
    before = copy.deepcopy(params)
    job = write(tmp_path / "job.json", json.dumps(params))

    bundle = bundle_workflow(tool, job)

    # s.log: the JavaScript pattern cannot be evaluated here, so every file named like the
    # primary file is sent. p.txt.tbi: "plain" has no patterns; "maybe"'s apply only to it.
    assert [n for n in names(bundle) if n.startswith("data/")] == [
        f"data/{name}"
        for name in (
            "l1.bai", "l1.bam", "l1.bam.md5", "l2.bai", "l2.bam",
            "p.txt", "ref.fa", "ref.fa.fai", "s.log", "s.txt", "s.txt.x",
            "t.csv", "t.dict", "v.vcf", "v.vcf.tbi",
        )
    ]  # fmt: skip
    # Attached, not listed: the engine finds them beside the primary file, as it would here.
    assert json.loads(job.read_text()) == before
    assert "secondaryFiles" not in json.dumps(bundle.workflow_params)
    assert_server_accepts(bundle)


def test_only_the_top_level_process_discovers_them_as_cwltool_does(tmp_path: Path) -> None:
    """cwltool looks for secondary files on disk for the inputs of the process it runs only."""
    write(
        tmp_path / "step.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
inputs:
  f: {type: File, secondaryFiles: [.idx]}
baseCommand: "true"
outputs: []
""",
    )
    wf = write(
        tmp_path / "wf.cwl",
        """cwlVersion: v1.2
class: Workflow
inputs: {f: File}
outputs: []
steps:
  s: {run: step.cwl, in: {f: f}, out: []}
""",
    )
    write(tmp_path / "a.txt", "a")
    write(tmp_path / "a.txt.idx", "idx")

    bundle = bundle_workflow(wf, {"f": {"class": "File", "location": str(tmp_path / "a.txt")}})

    assert names(bundle) == ["a.txt", "step.cwl", "wf.cwl"]


def test_packed_document_uses_the_process_it_runs(tmp_path: Path) -> None:
    packed = write(
        tmp_path / "packed.cwl",
        {
            "cwlVersion": "v1.2",
            "$graph": [
                {
                    "id": "#main",
                    "class": "Workflow",
                    "inputs": [
                        {"id": "#main/f", "type": "File", "secondaryFiles": [".idx"]},
                        {"id": "#main/g", "type": "#Pair"},
                    ],
                    "requirements": [
                        {
                            "class": "SchemaDefRequirement",
                            "types": [
                                {
                                    "name": "#Pair",
                                    "type": "record",
                                    "fields": [
                                        {
                                            "name": "#Pair/left",
                                            "type": "File",
                                            "secondaryFiles": "^.crai",
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                    "outputs": [],
                    "steps": [],
                },
                {
                    "id": "#other",
                    "class": "CommandLineTool",
                    "inputs": [{"id": "#other/f", "type": "File", "secondaryFiles": [".bad"]}],
                    "outputs": [],
                },
            ],
        },
    )
    for name in ("a.txt", "a.txt.idx", "a.txt.bad", "b.cram", "b.crai"):
        write(tmp_path / name, name)
    a_txt = {"class": "File", "path": str(tmp_path / "a.txt")}
    b_cram = {"class": "File", "path": str(tmp_path / "b.cram")}

    main = bundle_workflow(packed, {"f": a_txt, "g": {"left": b_cram}})
    other = bundle_workflow(f"{packed}#other", {"f": a_txt})

    assert names(main) == ["a.txt", "a.txt.idx", "b.crai", "b.cram", "packed.cwl"]
    assert names(other) == ["a.txt", "a.txt.bad", "packed.cwl"]


@pytest.mark.parametrize(
    ("basename", "pattern", "expected"),
    [
        ("r.bam", ".bai", ["r.bam.bai"]),
        ("r.bam", "^.bai", ["r.bai"]),
        ("r.vcf.gz", "^^.idx", ["r.idx"]),
        ("noext", "^.idx", ["noext.idx"]),
        ("r.bam", ".md5?", ["r.bam.md5"]),
        ("r.bam", "$(self.nameroot).dict", ["r.dict"]),
        ("r.bam", "$(self.basename).idx$(self.nameext)", ["r.bam.idx.bam"]),
        ("r.bam", "${ return self.basename + '.x' }", ["r.bai", "r.bam.bai"]),
        ("r.bam", "$(self.location).x", ["r.bai", "r.bam.bai"]),
    ],
)
def test_secondary_names(basename: str, pattern: str, expected: list[str]) -> None:
    siblings = ["r.bam", "r.bam.bai", "r.bai", "other.txt"]
    assert secondary_names(basename, pattern, lambda: siblings) == expected


@pytest.mark.integration
def test_cwltool_finds_them_in_the_staged_bundle(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "types" / "lane.yml", TYPES)
    tool = write(
        src / "tool.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
requirements:
  SchemaDefRequirement:
    types:
      - $import: types/lane.yml
inputs:
  lane:
    type:
      type: record
      fields:
        main: types/lane.yml#Lane
baseCommand: cat
arguments: ["$(inputs.lane.main.reads.secondaryFiles[0].path)"]
stdout: out.txt
outputs: {out: stdout}
""",
    )
    write(src / "data" / "l1.bam", "reads\n")
    write(src / "data" / "l1.bai", "index\n")
    inputs = {"lane": {"main": {"reads": {"class": "File", "location": "data/l1.bam"}}}}
    job = write(src / "job.json", json.dumps(inputs))
    bundle = bundle_workflow(tool, job)
    staged, params = stage(bundle, tmp_path / "staged")
    shutil.rmtree(src)  # nothing may still point at the originals

    result = cwltool("--no-container", "--outdir", tmp_path / "out", staged, params)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "out.txt").read_text() == "index\n"
