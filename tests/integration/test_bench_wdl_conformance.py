"""bench/wdl_conformance.py and the WDL runner it puts on the suite's PATH: how that runner
reads toil-wdl-runner's arguments and picks the files to attach, and a few WDL conformance
tests through the server's Toil engine end to end (the whole suite is a benchmark)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.processes import BENCH, run_bench

sys.path.insert(0, str(BENCH))
import wdl_conformance
import wdl_wes_runner

ROOT = Path(__file__).resolve().parents[2]
# Read at import: the autouse fixture of tests/conftest.py hides TOOLCHEST_WES_* from tests.
_NAMED_VENV = os.environ.get("TOOLCHEST_WES_TOIL_VENV")


def test_toil_options_with_a_value_are_not_taken_for_the_workflow() -> None:
    # run.py writes `toil-wdl-runner --outputDialect miniwdl --logDebug WDL -m R -i I`.
    argv = ["--wes", "http://h", "--outputDialect", "miniwdl", "--logDebug", "w.wdl"]
    args = wdl_wes_runner.parse_args([*argv, "-m", "r.json", "-i", "{}", "--container=docker"])
    assert args.workflow == Path("w.wdl")
    assert args.results == Path("r.json")
    assert args.inputs == "{}"


def test_strings_naming_local_files_are_attached_under_their_relative_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "tests" / "t").mkdir(parents=True)
    (tmp_path / "tests" / "t" / "in.txt").write_text("x")
    inputs = {"wf.f": "tests/t/in.txt", "wf.s": "/path/to/file.txt", "wf.n": [1, "tests/t/in.txt"]}
    params, files = wdl_wes_runner.input_files(inputs, tmp_path)
    assert params == inputs  # already relative to the attachments' root
    assert files == [tmp_path / "tests" / "t" / "in.txt"] * 2


def test_imported_files_are_attached_with_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "main.wdl").write_text('version 1.0\nimport "sub/lib.wdl" as lib\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lib.wdl").write_text('version 1.0\nimport "https://x/y.wdl"\n')
    files = wdl_wes_runner.workflow_files(tmp_path / "main.wdl")
    assert files == [tmp_path / "main.wdl", tmp_path / "sub" / "lib.wdl"]


def test_a_test_with_a_task_in_an_imported_file_needs_a_container(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.wdl").write_text('version 1.0\nimport "b.wdl"\nworkflow a {}\n')
    (tmp_path / "t" / "b.wdl").write_text("version 1.0\ntask echo {\n  command {}\n}\n")
    (tmp_path / "t" / "c.wdl").write_text("version 1.0\nworkflow c {}\n")
    test = {"inputs": {"dir": "t", "wdl": "a.wdl"}}
    assert wdl_conformance.needs_container(test, tmp_path)
    test = {"inputs": {"dir": "t", "wdl": "c.wdl"}}
    assert not wdl_conformance.needs_container(test, tmp_path)


@pytest.mark.integration
@pytest.mark.slow
def test_wdl_tests_through_the_toil_engine_end_to_end(tmp_path: Path) -> None:
    venv = Path(_NAMED_VENV) if _NAMED_VENV else ROOT / ".venv-toil"
    if not (venv / "bin" / "toil-wdl-runner").exists():
        if _NAMED_VENV:
            pytest.fail(f"TOOLCHEST_WES_TOIL_VENV={_NAMED_VENV} has no toil-wdl-runner")
        pytest.skip(f"no Toil virtualenv at {venv} (see .ci/run)")
    if not (wdl_conformance.DEFAULT_WDL_DIR / "conformance.yaml").is_file():
        pytest.skip(f"the WDL conformance tests are not in {wdl_conformance.DEFAULT_WDL_DIR}")
    summary = tmp_path / "summary.json"
    # A task that writes a File output, a File input, and a workflow that must fail.
    tests = "stdout_output,sub_file,range_fail"
    argv = ["--runner", "toolchest", "--versions", "1.1", "--subset", "all", "--tests", tests]
    result = run_bench(
        "wdl_conformance.py", *argv, "--toil-venv", str(venv), "--json", str(summary)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wdl-conformance toolchest embedded 1.1: 3 passed, 0 failed" in result.stdout
    written = json.loads(summary.read_text())
    # Each has a task: Toil run directly would need a container runtime for it.
    assert set(written["container"]["1.1"]) == {"stdout_output", "sub_file", "range_fail"}
    assert written["results"][0]["passed"] == ["range_fail", "stdout_output", "sub_file"]
