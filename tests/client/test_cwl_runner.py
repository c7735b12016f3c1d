"""``toolchest-wes cwl-runner`` against a real server: the cwl-runner interface over WES."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.cli.cwl_runner import localize
from toolchest_wes.cli.main import cli
from toolchest_wes.client import Journal, State, WesClient

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"
TWO_STEP = EXAMPLES / "two-step" / "count-lines.cwl"
TWO_STEP_JOB = EXAMPLES / "two-step" / "count-lines.json"


def cwl_runner(live: Any, *args: str) -> Result:
    return CliRunner().invoke(cli, ["cwl-runner", "--wes", live.url, *args], catch_exceptions=False)


def local_file(entry: dict[str, Any], outdir: Path) -> Path:
    """The local copy an output File names, checked to be in ``outdir``."""
    assert entry["class"] == "File"
    assert entry["location"].startswith("file://")
    path = Path(entry["path"])
    assert Path(entry["location"][len("file://") :]) == path
    assert path.parent == outdir.resolve()
    assert path.is_file() and path.stat().st_size == entry["size"]
    return path


def test_hello_prints_the_output_object_with_local_files(
    live: Any, journal: Journal, tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    result = cwl_runner(live, f"--outdir={outdir}", "--quiet", str(HELLO), str(HELLO_JOB))
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) == {"greeting"}
    greeting = output["greeting"]
    assert greeting["basename"] == "hello.txt" and greeting["checksum"].startswith("sha1$")
    path = local_file(greeting, outdir)
    assert path.read_text() == "Hello from toolchest-wes\n"
    assert "INFO" not in result.stderr  # --quiet: no engine log


def test_two_step_with_the_log_on_stderr(live: Any, journal: Journal, tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    result = cwl_runner(live, "--outdir", str(outdir), str(TWO_STEP), str(TWO_STEP_JOB))
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert local_file(output["sorted"], outdir).read_text().split() == [
        "apple",
        "apple",
        "fig",
        "pear",
        "pear",
        "pear",
    ]
    counts = local_file(output["count"], outdir).read_text().split()
    assert counts == ["2", "apple", "1", "fig", "3", "pear"]
    assert "Final process status is success" in result.stderr


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_file_urls_and_cwltool_flags_are_accepted(
    live: Any, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cwl_runner(
        live,
        "--debug",
        "--basedir",
        str(tmp_path),
        "--quiet",
        HELLO.as_uri(),
        HELLO_JOB.as_uri(),
    )
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert local_file(output["greeting"], tmp_path).name == "hello.txt"  # --outdir: the cwd


def test_failing_workflow_exits_non_zero_with_the_reason(
    live: Any, journal: Journal, tmp_path: Path
) -> None:
    result = cwl_runner(live, "--quiet", f"--outdir={tmp_path}", str(CWL / "fail.cwl"))
    assert result.exit_code == 1  # cwltool's permanent failure
    assert result.stdout == ""
    assert "EXECUTOR_ERROR" in result.stderr and "something went wrong" in result.stderr
    assert "task 'fail.cwl' exited with 3" in result.stderr


def test_secondary_files_the_input_types_name_reach_the_engine(
    live: Any, journal: Journal, tmp_path: Path
) -> None:
    """The job lists no secondaryFiles; the tool's types name them, as cwltool finds them."""
    for name in ("r.txt", "r.txt.idx", "l1.bam", "l1.bai", "l1.bam.md5", "l2.bam", "l2.bai"):
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / name).write_text(f"{name}\n")
    job = tmp_path / "job.json"
    lanes = [{"class": "File", "location": "data/l1.bam"}, {"class": "File", "path": "data/l2.bam"}]
    reads = {"class": "File", "location": "data/r.txt"}
    job.write_text(json.dumps({"sample": {"label": "s", "main": {"reads": reads, "lanes": lanes}}}))
    outdir = tmp_path / "out"

    result = cwl_runner(live, f"--outdir={outdir}", "--quiet", str(CWL / "secondary.cwl"), str(job))

    assert result.exit_code == 0, result.stderr
    found = local_file(json.loads(result.stdout)["found"], outdir).read_text().splitlines()
    assert found == ["r.txt.idx", "l1.bai", "l2.bai", "dict of the reference"]


def test_input_names_that_read_as_uris_keep_their_names(
    live: Any, journal: Journal, tmp_path: Path
) -> None:
    """A colon would make "A:Gln2Cys" the URI scheme "A" and the file "Gln2Cys" on the server."""
    # Beside the tool, the first input is named "A:Gln2Cys" on the server, colon first.
    tool = Path(shutil.copy(CWL / "names.cwl", tmp_path))
    names = ["A:Gln2Cys", "x@y,z+1.txt", "Grüße.txt"]
    for name in names:
        (tmp_path / name).write_text(f"{name}\n")
    job = tmp_path / "job.json"
    # The job's own locations are URIs too: the colon comes percent-encoded, as CWL wants it.
    files = [{"class": "File", "location": quote(name)} for name in names]
    job.write_text(json.dumps({"first": files[0], "more": files[1:]}))
    outdir = tmp_path / "out"

    result = cwl_runner(live, f"--outdir={outdir}", "--quiet", str(tool), str(job))

    assert result.exit_code == 0, result.stderr
    printed = local_file(json.loads(result.stdout)["names"], outdir).read_text().splitlines()
    assert printed == [f"{name} {name}" for name in names]


@pytest.mark.parametrize("tool", ["docker-absolute-entry.cwl", "docker-output-dir.cwl"])
def test_tools_that_need_their_container_are_unsupported_without_one(
    live: Any, journal: Journal, tmp_path: Path, tool: str
) -> None:
    """The server runs DockerRequirement tools on the host, except those that would write
    outside their working directory there: an absolute entryname, a dockerOutputDirectory."""
    target = tmp_path / "elsewhere" / "staged.txt"
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"target": str(target)} if "entry" in tool else {}))

    result = cwl_runner(live, f"--outdir={tmp_path}/out", "--quiet", str(CWL / tool), str(job))

    assert result.exit_code == 33, result.stderr  # cwltool's "unsupported requirement"
    assert "without containers" in result.stderr
    assert not target.parent.exists()


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_usage_errors(live: Any, journal: Journal, tmp_path: Path) -> None:
    assert cwl_runner(live).exit_code == 2
    assert cwl_runner(live, "a.cwl", "b.yml", "c.yml").exit_code == 2
    missing = cwl_runner(live, str(tmp_path / "missing.cwl"))
    assert missing.exit_code == 2 and "missing.cwl" in missing.stderr


def test_localize_maps_files_directories_and_secondary_files(tmp_path: Path) -> None:
    base = "http://wes/ga4gh/wes/v1/runs/r1/outputs/"
    (tmp_path / "a.txt").write_text("a")
    outputs = {
        "file": {
            "class": "File",
            "location": base + "a.txt",
            "basename": "a.txt",
            "size": 1,
            "secondaryFiles": [{"class": "File", "location": base + "a.txt.idx"}],
        },
        "dir": {
            "class": "Directory",
            "location": base + "d%20ir",
            "listing": [{"class": "File", "location": base + "d%20ir/b.txt"}],
        },
        "elsewhere": {"class": "File", "location": "s3://bucket/x"},
        "number": 3,
    }
    local = {base + "a.txt": tmp_path / "a.txt", base: tmp_path}
    result = localize(outputs, local)
    assert result["file"]["location"] == (tmp_path / "a.txt").as_uri()
    assert result["file"]["path"] == str(tmp_path / "a.txt")
    assert result["file"]["basename"] == "a.txt" and result["file"]["size"] == 1
    assert result["file"]["secondaryFiles"][0]["path"] == str(tmp_path / "a.txt.idx")
    assert result["dir"]["path"] == str(tmp_path / "d ir") and (tmp_path / "d ir").is_dir()
    assert result["dir"]["listing"][0]["path"] == str(tmp_path / "d ir" / "b.txt")
    assert result["elsewhere"] == {"class": "File", "location": "s3://bucket/x"}
    assert result["number"] == 3
    escaping = localize({"class": "File", "location": base + "../x"}, local)
    assert "path" not in escaping


CONFORMANCE = """\
- id: hello
  doc: One tool, one output file
  tool: {hello}
  job: {hello_job}
  output:
    greeting:
      class: File
      basename: hello.txt
      checksum: sha1${hello_sha1}
      size: 25
      location: hello.txt
  tags: [command_line_tool]
- id: two_step
  doc: A workflow of two steps with an input file
  tool: {two_step}
  job: {two_step_job}
  output:
    sorted:
      class: File
      basename: sorted.txt
      size: 31
      location: sorted.txt
    count:
      class: File
      basename: counts.txt
      size: 39
      location: counts.txt
  tags: [workflow]
- id: failing
  doc: A tool that fails makes the runner exit non-zero
  tool: {fail}
  should_fail: true
  tags: [command_line_tool]
"""


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_cwltest_drives_the_runner(live: Any, journal: Journal, tmp_path: Path) -> None:
    cwltest = shutil.which("cwltest", path=str(Path(sys.executable).parent))
    if cwltest is None:
        pytest.skip("cwltest is not installed")
    runner = Path(sys.executable).parent / "toolchest-wes"
    tests = tmp_path / "conformance.yml"
    tests.write_text(
        CONFORMANCE.format(
            hello=HELLO,
            hello_job=HELLO_JOB,
            hello_sha1=hashlib.sha1(b"Hello from toolchest-wes\n").hexdigest(),
            two_step=TWO_STEP,
            two_step_job=TWO_STEP_JOB,
            fail=CWL / "fail.cwl",
        )
    )
    # cwltest runs TOOL ARGS --outdir=DIR --quiet WORKFLOW JOB for each test.
    command = [cwltest, "--test", str(tests), "--tool", str(runner), "--"]
    done = subprocess.run(
        [*command, "cwl-runner", "--wes", live.url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Test [3/3]" in done.stderr and "All tests passed" in done.stderr


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_or_ctrl_c_cancels_the_run(
    live: Any, journal: Journal, tmp_path: Path, signum: int, code: int
) -> None:
    command = [sys.executable, "-m", "toolchest_wes.cli.main", "cwl-runner", "--wes", live.url]
    process = subprocess.Popen(
        [*command, "--quiet", f"--outdir={tmp_path}", str(CWL / "sleep.cwl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # "toolchest-wes: run ID on URL": the run exists
    run_id = first.split()[2]
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, first + stderr
    assert stdout == "" and f"cancel requested for run {run_id}" in stderr
    with WesClient(live.url, journal=journal) as wes:
        log = wes.wait_for_run(run_id, timeout=60, initial_interval=0.05, raise_on_failure=False)
    assert log.state is State.CANCELED


def test_engine_names_the_servers_engine(live: Any, journal: Journal, tmp_path: Path) -> None:
    outdir = f"--outdir={tmp_path / 'out'}"
    result = cwl_runner(live, outdir, "--quiet", "--engine", "cwltool", str(HELLO), str(HELLO_JOB))
    assert result.exit_code == 0, result.stderr
    run_id = result.stderr.split("toolchest-wes: run ", 1)[1].split()[0]
    with WesClient(live.url, journal=journal) as wes:
        assert wes.get_run_log(run_id).request.workflow_engine == "cwltool"
    result = cwl_runner(live, outdir, "--engine", "nosuch", str(HELLO), str(HELLO_JOB))
    assert result.exit_code != 0
    assert "nosuch" in result.stderr
