"""bundle_workflow: which files a local CWL workflow and its inputs need, and how they are named."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolchest_wes.client._deps import Bundle, BundleError, bundle_workflow
from toolchest_wes.client.exceptions import InputFileError, WesClientError
from toolchest_wes.core.params import localise_params
from toolchest_wes.core.submission import check_workflow_url

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def write(path: Path, content: str | dict[str, Any]) -> Path:
    """Write text (or a mapping as YAML) to ``path``, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def names(bundle: Bundle) -> list[str]:
    return [name for name, _ in bundle.attachments]


def assert_server_accepts(bundle: Bundle) -> None:
    """The server's own checks take the workflow_url and params with these attachment names."""
    attached = names(bundle)
    assert check_workflow_url(bundle.workflow_url, attached)
    localise_params(copy.deepcopy(bundle.workflow_params), attached)


def file_tool(name: str = "cat") -> str:
    """A CommandLineTool that cats one File input."""
    return f"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: {name}
inputs:
  text:
    type: File
    inputBinding: {{position: 1}}
stdout: out.txt
outputs:
  out: stdout
"""


# --- scenarios shared by the unit tests and the cwltool checks ------------------------------


def two_step(tmp_path: Path) -> tuple[Path, Path]:
    """The repository's two-step example, copied so that nothing writes into the checkout."""
    dest = tmp_path / "two-step"
    shutil.copytree(EXAMPLES / "two-step", dest)
    return dest / "count-lines.cwl", dest / "count-lines.json"


def sibling_folders(tmp_path: Path) -> tuple[Path, Path]:
    """A workflow in proj/wf, its inputs in proj/data, its job file in proj/jobs."""
    proj = tmp_path / "proj"
    wf = write(
        proj / "wf" / "main.cwl",
        """cwlVersion: v1.2
class: Workflow
inputs:
  text: File
  ref: Directory
outputs:
  out:
    type: File
    outputSource: step/out
steps:
  step:
    run: tools/show.cwl
    in: {text: text, ref: ref}
    out: [out]
""",
    )
    write(
        proj / "wf" / "tools" / "show.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
requirements:
  ShellCommandRequirement: {}
inputs:
  text:
    type: File
    secondaryFiles: [.idx]
  ref: Directory
arguments:
  - shellQuote: false
    valueFrom: >-
      cat $(inputs.text.path) $(inputs.text.path).idx
      $(inputs.ref.path)/a.txt $(inputs.ref.path)/sub/b.txt
stdout: out.txt
outputs:
  out: stdout
""",
    )
    write(proj / "data" / "in.txt", "text\n")
    write(proj / "data" / "in.txt.idx", "index\n")
    write(proj / "data" / "ref" / "a.txt", "a\n")
    write(proj / "data" / "ref" / "sub" / "b.txt", "b\n")
    job = write(
        proj / "jobs" / "job.yml",
        {
            "text": {
                "class": "File",
                "location": "../data/in.txt",
                "secondaryFiles": [{"class": "File", "path": "../data/in.txt.idx"}],
            },
            "ref": {"class": "Directory", "location": "../data/ref"},
        },
    )
    return wf, job


def imports(tmp_path: Path) -> tuple[Path, Path]:
    """run: {$import}, SchemaDefRequirement $import, $include, and a File default."""
    root = tmp_path / "imp"
    wf = write(
        root / "main.cwl",
        """cwlVersion: v1.2
class: Workflow
inputs:
  greeting: File
outputs:
  out:
    type: File
    outputSource: greet/out
steps:
  greet:
    run:
      $import: tools/greet.cwl
    in:
      greeting: greeting
    out: [out]
""",
    )
    write(
        root / "tools" / "greet.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
requirements:
  SchemaDefRequirement:
    types:
      - $import: ../types/person.yml
  InitialWorkDirRequirement:
    listing:
      - entryname: greet.sh
        entry:
          $include: ../scripts/greet.sh
inputs:
  greeting: File
  who:
    type: ../types/person.yml#Person
    default:
      first: world
  signature:
    type: File
    default:
      class: File
      location: ../data/signature.txt
baseCommand: [sh, greet.sh]
arguments: [$(inputs.greeting.path), $(inputs.who.first), $(inputs.signature.path)]
stdout: greeting.txt
outputs:
  out: stdout
""",
    )
    write(
        root / "types" / "person.yml",
        "type: record\nname: Person\nfields:\n  - name: first\n    type: string\n",
    )
    write(root / "scripts" / "greet.sh", 'cat "$1"; echo " $2"; cat "$3"\n')
    write(root / "data" / "signature.txt", "-- the end\n")
    write(root / "data" / "hello.txt", "Hello")
    job = write(
        root / "job.json", json.dumps({"greeting": {"class": "File", "path": "data/hello.txt"}})
    )
    return wf, job


def cycle(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """a.cwl#main runs b.cwl, which runs a.cwl#x."""
    root = tmp_path / "cyc"
    write(
        root / "a.cwl",
        """cwlVersion: v1.2
$graph:
  - id: main
    class: Workflow
    requirements:
      SubworkflowFeatureRequirement: {}
    inputs:
      msg: string
    outputs:
      out:
        type: File
        outputSource: inner/out
    steps:
      inner:
        run: b.cwl
        in: {msg: msg}
        out: [out]
  - id: x
    class: CommandLineTool
    baseCommand: echo
    inputs:
      msg:
        type: string
        inputBinding: {position: 1}
    stdout: out.txt
    outputs:
      out: stdout
""",
    )
    write(
        root / "b.cwl",
        """cwlVersion: v1.2
class: Workflow
inputs:
  msg: string
outputs:
  out:
    type: File
    outputSource: echo/out
steps:
  echo:
    run: a.cwl#x
    in: {msg: msg}
    out: [out]
""",
    )
    return f"{root / 'a.cwl'}#main", {"msg": "round and round"}


# --- the examples ---------------------------------------------------------------------------


def test_hello_example_matches_the_readme() -> None:
    bundle = bundle_workflow(EXAMPLES / "hello" / "hello.cwl", EXAMPLES / "hello" / "hello.json")

    assert bundle.workflow_url == "hello.cwl"
    assert bundle.workflow_params == {"message": "Hello from toolchest-wes"}
    assert bundle.attachments == (("hello.cwl", EXAMPLES / "hello" / "hello.cwl"),)
    assert_server_accepts(bundle)


def test_a_snakefile_is_attached_as_it_is_with_the_files_beside_it() -> None:
    folder = EXAMPLES / "snakemake" / "file-output"
    bundle = bundle_workflow(
        folder / "Snakefile",
        folder / "file-output.json",
        attachments=[folder / "fruit.txt"],
        cwl=False,
    )

    assert bundle.workflow_url == "Snakefile"
    assert bundle.workflow_params == {"input": "fruit.txt"}
    assert names(bundle) == ["Snakefile", "fruit.txt"]


def readme_two_step_parts() -> tuple[str, set[str]]:
    """The workflow_url and attachment names of the README's two-step curl command."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = readme.split("cd examples/two-step", 1)[1].split("```", 1)[0]
    url = re.search(r"-F workflow_url=(\S+)", command)
    assert url is not None
    parts = re.findall(r"workflow_attachment=@([^\s;\"]+)(?:;filename=([^\s\"]+))?", command)
    return url.group(1), {filename or path for path, filename in parts}


def test_two_step_example_sends_what_the_readme_curl_sends() -> None:
    folder = EXAMPLES / "two-step"
    bundle = bundle_workflow(folder / "count-lines.cwl", folder / "count-lines.json")

    url, attached = readme_two_step_parts()
    assert bundle.workflow_url == url == "count-lines.cwl"
    assert set(names(bundle)) == attached
    assert names(bundle) == sorted(attached)
    assert all(path == folder / name for name, path in bundle.attachments)
    # README sends {"path": "fruit.txt"}; the bundle sends the same file as its location.
    assert bundle.workflow_params == {"text": {"class": "File", "location": "fruit.txt"}}
    assert_server_accepts(bundle)


def test_single_tool_with_an_absolute_input_path(tmp_path: Path) -> None:
    tool = write(tmp_path / "tool.cwl", file_tool())
    data = write(tmp_path / "data.txt", "x\n")

    bundle = bundle_workflow(tool, {"text": {"class": "File", "path": str(data)}, "n": 3})

    assert bundle.workflow_url == "tool.cwl"
    assert bundle.workflow_params == {"text": {"class": "File", "location": "data.txt"}, "n": 3}
    assert bundle.attachments == (("data.txt", data), ("tool.cwl", tool))


# --- where the root is and how things are named ---------------------------------------------


def test_root_moves_up_to_hold_a_sibling_folder(tmp_path: Path) -> None:
    wf, job = sibling_folders(tmp_path)
    proj = tmp_path / "proj"

    bundle = bundle_workflow(wf, job)

    assert bundle.workflow_url == "wf/main.cwl"
    assert names(bundle) == [
        "data/in.txt",
        "data/in.txt.idx",
        "data/ref/a.txt",
        "data/ref/sub/b.txt",
        "wf/main.cwl",
        "wf/tools/show.cwl",
    ]
    assert all(path == proj / name for name, path in bundle.attachments)
    assert bundle.workflow_params == {
        "text": {
            "class": "File",
            "location": "data/in.txt",
            "secondaryFiles": [{"class": "File", "location": "data/in.txt.idx"}],
        },
        "ref": {"class": "Directory", "location": "data/ref"},
    }
    assert_server_accepts(bundle)


def test_job_file_paths_resolve_against_its_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = write(tmp_path / "wf" / "tool.cwl", file_tool())
    write(tmp_path / "inputs" / "a.txt", "a\n")
    job = write(tmp_path / "jobs" / "job.yml", "text: {class: File, path: ../inputs/a.txt}\n")
    monkeypatch.chdir(tmp_path / "wf")

    bundle = bundle_workflow("tool.cwl", str(job))

    assert bundle.workflow_url == "wf/tool.cwl"
    assert bundle.workflow_params == {"text": {"class": "File", "location": "inputs/a.txt"}}
    assert bundle.attachments == (
        ("inputs/a.txt", tmp_path / "inputs" / "a.txt"),
        ("wf/tool.cwl", tool),
    )


def test_mapping_paths_resolve_against_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "tool.cwl", file_tool())
    write(tmp_path / "in" / "a.txt", "a\n")
    monkeypatch.chdir(tmp_path / "in")

    bundle = bundle_workflow("../tool.cwl", {"text": {"class": "File", "location": "a.txt"}})

    assert bundle.workflow_url == "tool.cwl"
    assert bundle.workflow_params["text"]["location"] == "in/a.txt"


def test_symlink_is_named_by_its_own_path(tmp_path: Path) -> None:
    tool = write(tmp_path / "run" / "tool.cwl", file_tool())
    target = write(tmp_path / "elsewhere" / "real.txt", "real\n")
    link = tmp_path / "run" / "link.txt"
    link.symlink_to(target)

    bundle = bundle_workflow(tool, {"text": {"class": "File", "path": str(link)}})

    assert bundle.attachments == (("link.txt", link), ("tool.cwl", tool))
    assert bundle.attachments[0][1].read_text() == "real\n"
    assert bundle.workflow_params["text"]["location"] == "link.txt"


def test_extra_attachments_files_and_folders(tmp_path: Path) -> None:
    tool = write(tmp_path / "wf" / "tool.cwl", file_tool())
    readme = write(tmp_path / "wf" / "NOTES.md", "notes\n")
    write(tmp_path / "refs" / "one.fa", ">1\n")
    write(tmp_path / "refs" / "deep" / "two.fa", ">2\n")

    bundle = bundle_workflow(tool, attachments=[readme, tmp_path / "refs"])

    assert bundle.workflow_url == "wf/tool.cwl"
    assert names(bundle) == ["refs/deep/two.fa", "refs/one.fa", "wf/NOTES.md", "wf/tool.cwl"]


# --- what the workflow references -----------------------------------------------------------


def test_import_include_schemadef_and_defaults_are_attached(tmp_path: Path) -> None:
    wf, job = imports(tmp_path)

    bundle = bundle_workflow(wf, job)

    assert bundle.workflow_url == "main.cwl"
    assert names(bundle) == [
        "data/hello.txt",
        "data/signature.txt",
        "main.cwl",
        "scripts/greet.sh",
        "tools/greet.cwl",
        "types/person.yml",
    ]
    assert bundle.workflow_params == {"greeting": {"class": "File", "location": "data/hello.txt"}}
    assert_server_accepts(bundle)


def test_inline_run_fragments_mixins_and_schemas(tmp_path: Path) -> None:
    wf = write(
        tmp_path / "wf.cwl",
        """cwlVersion: v1.2
class: Workflow
$schemas: [schema/local.rdf, https://schema.org/version/latest/schemaorg-current-https.rdf]
inputs: []
outputs: []
steps:
  inline:
    run:
      class: CommandLineTool
      inputs:
        ref:
          type: File
          default: {class: File, location: inline-default.txt}
      outputs: []
      baseCommand: "true"
    in: []
    out: []
  sort:
    run: lib/tools.cwl#sort
    in: []
    out: []
  remote:
    run: https://example.org/tools/remote.cwl
    in: []
    out: []
  mixed:
    run:
      $mixin: lib/mixin.yml
      class: CommandLineTool
      inputs: []
      outputs: []
    in: []
    out: []
""",
    )
    write(tmp_path / "schema" / "local.rdf", "<rdf/>\n")
    write(tmp_path / "inline-default.txt", "d\n")
    write(tmp_path / "lib" / "tools.cwl", "$graph: []\n")
    write(tmp_path / "lib" / "mixin.yml", "baseCommand: 'true'\n")

    bundle = bundle_workflow(wf)

    assert names(bundle) == [
        "inline-default.txt",
        "lib/mixin.yml",
        "lib/tools.cwl",
        "schema/local.rdf",
        "wf.cwl",
    ]


def test_cycles_are_followed_once(tmp_path: Path) -> None:
    workflow, params = cycle(tmp_path)

    bundle = bundle_workflow(workflow, params)

    assert bundle.workflow_url == "a.cwl#main"
    assert names(bundle) == ["a.cwl", "b.cwl"]
    assert bundle.workflow_params == params


def test_self_reference_in_a_packed_document(tmp_path: Path) -> None:
    packed = write(
        tmp_path / "packed.cwl",
        "$graph:\n  - id: main\n    class: Workflow\n    steps:\n      s: {run: '#tool'}\n",
    )

    bundle = bundle_workflow(f"{packed}#main")

    assert bundle.workflow_url == "packed.cwl#main"
    assert bundle.attachments == (("packed.cwl", packed),)


def test_file_urls_for_workflow_and_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = write(tmp_path / "w" / "tool.cwl", file_tool())
    spaced = write(tmp_path / "in" / "a b.txt", "x\n")
    plain = write(tmp_path / "in" / "c.txt", "x\n")
    monkeypatch.chdir(tmp_path)

    bundle = bundle_workflow(
        tool.as_uri() + "#main",
        {
            "text": {"class": "File", "location": spaced.as_uri()},
            "more": [{"class": "File", "location": plain.as_uri(), "basename": "renamed.txt"}],
            "quoted": {"class": "File", "location": "in/a%20b.txt"},
        },
    )

    assert bundle.workflow_url == "w/tool.cwl#main"
    assert bundle.workflow_params == {
        "text": {"class": "File", "location": "in/a%20b.txt"},
        "more": [{"class": "File", "location": "in/c.txt", "basename": "renamed.txt"}],
        "quoted": {"class": "File", "location": "in/a%20b.txt"},
    }
    assert names(bundle) == ["in/a b.txt", "in/c.txt", "w/tool.cwl"]
    assert bundle.attachments[0][1] == spaced


ODD_NAMES = ("A:B.txt", "item #1.txt", "50%.txt", "why?.txt", "a b.txt", "Grüße.txt")


def test_locations_are_percent_encoded_names(tmp_path: Path) -> None:
    """``location`` is a URI: "A:B.txt" unencoded reads as scheme "A", "#1" as a fragment."""
    tool = write(tmp_path / "tool.cwl", file_tool())
    files = [write(tmp_path / "in" / name, name) for name in ODD_NAMES]

    bundle = bundle_workflow(tool, {"files": [{"class": "File", "path": str(f)} for f in files]})

    locations = [f["location"] for f in bundle.workflow_params["files"]]
    assert locations == [
        "in/A%3AB.txt",
        "in/item%20%231.txt",
        "in/50%25.txt",
        "in/why%3F.txt",
        "in/a%20b.txt",
        "in/Gr%C3%BC%C3%9Fe.txt",
    ]
    assert names(bundle) == sorted([*(f"in/{name}" for name in ODD_NAMES), "tool.cwl"])
    assert_server_accepts(bundle)


@pytest.mark.integration
def test_cwltool_reads_the_files_the_encoded_locations_name(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tool = write(src / "tool.cwl", (REPO / "tests" / "cwl" / "names.cwl").read_text())
    for name in ODD_NAMES:
        write(src / "in" / name, f"{name}\n")
    job = write(
        src / "job.json",
        json.dumps(
            {
                "first": {"class": "File", "location": f"in/{ODD_NAMES[0]}"},
                "more": [{"class": "File", "location": f"in/{n}"} for n in ODD_NAMES[1:]],
            }
        ),
    )
    bundle = bundle_workflow(tool, job)
    staged, params = stage(bundle, tmp_path / "staged")
    shutil.rmtree(src)

    out = tmp_path / "out"
    result = cwltool("--relax-path-checks", "--no-container", "--outdir", out, staged, params)

    assert result.returncode == 0, result.stderr
    assert (out / "names.txt").read_text().splitlines() == [f"{n} {n}" for n in ODD_NAMES]


def test_http_workflow_is_passed_through_and_only_inputs_attached(tmp_path: Path) -> None:
    data = write(tmp_path / "x" / "data.txt", "x\n")
    url = "https://example.org/workflows/wf.cwl#main"

    bundle = bundle_workflow(url, {"text": {"class": "File", "path": str(data)}})

    assert bundle.workflow_url == url
    assert bundle.attachments == (("data.txt", data),)
    assert bundle.workflow_params == {"text": {"class": "File", "location": "data.txt"}}


def test_http_workflow_without_local_inputs_attaches_nothing() -> None:
    bundle = bundle_workflow("http://example.org/wf.cwl", {"n": 1})

    assert bundle == Bundle("http://example.org/wf.cwl", {"n": 1}, ())


# --- what the inputs reference --------------------------------------------------------------


def test_remote_locations_and_literals_are_left_alone(tmp_path: Path) -> None:
    tool = write(tmp_path / "tool.cwl", file_tool())
    params = {
        "web": {"class": "File", "location": "https://example.org/a.txt"},
        "plain": {"class": "File", "location": "http://example.org/b.txt", "path": "b.txt"},
        "bucket": [
            {"class": "File", "location": "s3://bucket/c.txt"},
            {"class": "Directory", "location": "gs://bucket/d/"},
        ],
        "literal": {"class": "File", "basename": "e.txt", "contents": "hello"},
        "blank": {"class": "File", "location": "_:abc", "contents": "x"},
        "not_a_file": {"location": "nowhere.txt"},
    }

    bundle = bundle_workflow(tool, params)

    assert bundle.workflow_params == params
    assert bundle.attachments == (("tool.cwl", tool),)


def test_secondary_files_nested_and_fields_kept(tmp_path: Path) -> None:
    tool = write(tmp_path / "tool.cwl", file_tool())
    for name in ("r.bam", "r.bam.bai", "r.bam.bai.md5", "r.dict"):
        write(tmp_path / "reads" / name, name)
    params = {
        "reads": [
            {
                "class": "File",
                "location": "reads/r.bam",
                "path": str(tmp_path / "reads" / "r.bam"),
                "dirname": str(tmp_path / "reads"),
                "basename": "r.bam",
                "checksum": "sha1$0",
                "format": "http://edamontology.org/format_2572",
                "secondaryFiles": [
                    {
                        "class": "File",
                        "location": "reads/r.bam.bai",
                        "secondaryFiles": [{"class": "File", "path": "reads/r.bam.bai.md5"}],
                    },
                    {"class": "File", "location": "https://example.org/r.bam.crai"},
                ],
            }
        ],
        "dict": {"class": "File", "location": "reads/r.dict"},
    }
    job = write(tmp_path / "job.json", json.dumps(params))

    bundle = bundle_workflow(tool, job)

    assert names(bundle) == [
        "reads/r.bam",
        "reads/r.bam.bai",
        "reads/r.bam.bai.md5",
        "reads/r.dict",
        "tool.cwl",
    ]
    assert bundle.workflow_params["reads"] == [
        {
            "class": "File",
            "location": "reads/r.bam",
            "basename": "r.bam",
            "checksum": "sha1$0",
            "format": "http://edamontology.org/format_2572",
            "secondaryFiles": [
                {
                    "class": "File",
                    "location": "reads/r.bam.bai",
                    "secondaryFiles": [{"class": "File", "location": "reads/r.bam.bai.md5"}],
                },
                {"class": "File", "location": "https://example.org/r.bam.crai"},
            ],
        }
    ]
    assert_server_accepts(bundle)


def test_directory_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tool = write(tmp_path / "tool.cwl", file_tool())
    for name in ("whole/a.txt", "whole/sub/b.txt", "whole/sub/deeper/c.txt"):
        write(tmp_path / name, name)
    for name in ("listed/keep.txt", "listed/skip.txt"):
        write(tmp_path / name, name)
    write(tmp_path / "loose.txt", "loose")
    (tmp_path / "whole" / "loop").symlink_to(tmp_path / "whole")
    params = {
        "whole": {"class": "Directory", "location": str(tmp_path / "whole")},
        "listed": {
            "class": "Directory",
            "location": "listed",
            "listing": [{"class": "File", "location": "listed/keep.txt"}],
        },
        "literal": {
            "class": "Directory",
            "basename": "made",
            "listing": [{"class": "File", "location": "loose.txt"}],
        },
    }

    bundle = bundle_workflow(tool, params, attachments=())

    assert names(bundle) == [
        "listed/keep.txt",
        "loose.txt",
        "tool.cwl",
        "whole/a.txt",
        "whole/sub/b.txt",
        "whole/sub/deeper/c.txt",
    ]
    assert bundle.workflow_params == {
        "whole": {"class": "Directory", "location": "whole"},
        "listed": {
            "class": "Directory",
            "location": "listed",
            "listing": [{"class": "File", "location": "listed/keep.txt"}],
        },
        "literal": {
            "class": "Directory",
            "basename": "made",
            "listing": [{"class": "File", "location": "loose.txt"}],
        },
    }


def test_directory_at_the_root_is_never_named_dot(tmp_path: Path) -> None:
    write(tmp_path / "data" / "a.txt", "a")
    bundle = bundle_workflow(
        "https://example.org/wf.cwl",
        {"d": {"class": "Directory", "location": str(tmp_path / "data")}},
    )
    assert bundle.workflow_params == {"d": {"class": "Directory", "location": "data"}}
    assert names(bundle) == ["data/a.txt"]


def test_callers_inputs_are_not_changed(tmp_path: Path) -> None:
    wf, _ = sibling_folders(tmp_path)
    data = tmp_path / "proj" / "data"
    params = {
        "text": {
            "class": "File",
            "path": str(data / "in.txt"),
            "secondaryFiles": [{"class": "File", "location": (data / "in.txt.idx").as_uri()}],
        },
        "ref": {"class": "Directory", "location": str(data / "ref")},
    }
    before = copy.deepcopy(params)

    bundle = bundle_workflow(wf, params)

    assert params == before
    assert bundle.workflow_params["text"]["location"] == "data/in.txt"


# --- errors ---------------------------------------------------------------------------------


def test_missing_run_target_names_the_file_and_the_document(tmp_path: Path) -> None:
    wf = write(tmp_path / "wf.cwl", "class: Workflow\nsteps:\n  s:\n    run: tools/gone.cwl\n")

    with pytest.raises(InputFileError) as info:
        bundle_workflow(wf)

    message = str(info.value)
    assert str(tmp_path / "tools" / "gone.cwl") in message
    assert str(wf) in message and "run" in message
    assert isinstance(info.value, WesClientError) and isinstance(info.value, FileNotFoundError)


def test_missing_input_names_the_input_and_the_job_file(tmp_path: Path) -> None:
    tool = write(tmp_path / "tool.cwl", file_tool())
    job = write(
        tmp_path / "job.yml",
        "text:\n  class: File\n  location: a.txt\n  secondaryFiles:\n"
        "    - {class: File, location: a.txt.idx}\n",
    )
    write(tmp_path / "a.txt", "a")

    with pytest.raises(InputFileError) as info:
        bundle_workflow(tool, job)

    message = str(info.value)
    assert str(tmp_path / "a.txt.idx") in message
    assert "text.secondaryFiles[0]" in message and str(job) in message


@pytest.mark.parametrize(
    ("workflow", "inputs", "attachments", "expected"),
    [
        ("gone.cwl", None, (), "the workflow argument"),
        ("tool.cwl", "gone.yml", (), "the inputs argument"),
        ("tool.cwl", None, ("gone.txt",), "attachments="),
        ("tool.cwl", {"d": {"class": "Directory", "location": "tool.cwl"}}, (), "input d"),
        ("tool.cwl", {"f": {"class": "File", "location": "."}}, (), "input f"),
        ("tool.cwl", {"x": {"class": "File", "location": "broken"}}, (), "broken symbolic link"),
    ],
)
def test_missing_or_wrong_kind_of_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workflow: str,
    inputs: Any,
    attachments: tuple[str, ...],
    expected: str,
) -> None:
    write(tmp_path / "tool.cwl", file_tool())
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(InputFileError, match=re.escape(expected)):
        bundle_workflow(workflow, inputs, attachments=attachments)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = write(tmp_path / "tool.cwl", file_tool())
    secret = write(tmp_path / "secret.txt", "s")
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads every file, so make the check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: p != secret and real_access(p, mode))

    with pytest.raises(InputFileError, match=f"{re.escape(str(secret))} cannot be read"):
        bundle_workflow(tool, {"s": {"class": "File", "path": str(secret)}})


def test_yaml_error_in_a_referenced_document(tmp_path: Path) -> None:
    wf = write(tmp_path / "wf.cwl", "class: Workflow\nsteps:\n  s:\n    run: bad.cwl\n")
    bad = write(tmp_path / "bad.cwl", "class: [CommandLineTool\n")

    with pytest.raises(BundleError) as info:
        bundle_workflow(wf)

    assert str(bad) in str(info.value) and str(wf) in str(info.value)
    assert isinstance(info.value, WesClientError) and isinstance(info.value, ValueError)


def test_job_file_must_hold_a_mapping(tmp_path: Path) -> None:
    tool = write(tmp_path / "tool.cwl", file_tool())
    job = write(tmp_path / "job.yml", "- 1\n- 2\n")
    with pytest.raises(BundleError, match="must be a mapping"):
        bundle_workflow(tool, job)
    empty = write(tmp_path / "empty.yml", "")
    assert bundle_workflow(tool, empty).workflow_params == {}


def test_module_does_not_import_engine_or_server_libraries() -> None:
    code = (
        "import sys, toolchest_wes.client._deps\n"
        "bad = {'cwltool', 'schema_salad', 'flask', 'celery', 'redis'} & set(sys.modules)\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- cwltool runs what was bundled ----------------------------------------------------------


def stage(bundle: Bundle, dest: Path) -> tuple[Path, Path]:
    """Lay the attachments out by name, as the server does, with the params next to them."""
    for name, path in bundle.attachments:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    params = dest / ".params.json"
    params.write_text(json.dumps(bundle.workflow_params), encoding="utf-8")
    return dest / bundle.workflow_url, params


def cwltool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cwltool", "--quiet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
    )


SCENARIOS = {
    "two-step": two_step,
    "sibling-folders": sibling_folders,
    "imports": imports,
    "cycle": cycle,
}


@pytest.mark.integration
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_cwltool_validates_the_staged_bundle(tmp_path: Path, scenario: str) -> None:
    workflow, inputs = SCENARIOS[scenario](tmp_path / "src")
    bundle = bundle_workflow(workflow, inputs)
    staged, _ = stage(bundle, tmp_path / "staged")
    shutil.rmtree(tmp_path / "src")  # nothing may still point at the originals

    result = cwltool("--validate", staged)

    assert result.returncode == 0, result.stderr
    assert "is valid CWL" in result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("scenario", "output", "expected"),
    [
        ("two-step", "counts.txt", ["1 fig", "2 apple", "3 pear"]),
        ("sibling-folders", "out.txt", ["text", "index", "a", "b"]),
        ("imports", "greeting.txt", ["Hello world", "-- the end"]),
    ],
)
def test_cwltool_runs_the_staged_bundle(
    tmp_path: Path, scenario: str, output: str, expected: list[str]
) -> None:
    workflow, inputs = SCENARIOS[scenario](tmp_path / "src")
    bundle = bundle_workflow(workflow, inputs)
    staged, params = stage(bundle, tmp_path / "staged")
    shutil.rmtree(tmp_path / "src")
    outdir = tmp_path / "out"
    result = cwltool("--no-container", "--outdir", outdir, staged, params)

    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in (outdir / output).read_text().splitlines()]
    assert sorted(lines) == sorted(expected)
