"""cwltool_child run for real: forked from a warm zygote, and once as a plain subprocess."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchest_wes.engines.base import LaunchSpec
from toolchest_wes.engines.cwltool_child import IGNORE_DOCKER_ENV, NICE_ENV, TASK_DIR_ENV
from toolchest_wes.engines.process import SubprocessLauncher
from toolchest_wes.engines.warm_launcher import WarmLauncher

ENTRY = "toolchest_wes.engines.cwltool_child"
REPO_ROOT = Path(__file__).resolve().parents[3]

ECHO_TO_FILE = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "baseCommand": "echo",
    "inputs": {"message": {"type": "string", "inputBinding": {"position": 1}}},
    "outputs": {"out": "stdout"},
    "stdout": "out.txt",
}

ECHO = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "baseCommand": "echo",
    "inputs": {"message": {"type": "string", "inputBinding": {"position": 1}}},
    "outputs": {},
}

TWO_STEPS = {
    "cwlVersion": "v1.2",
    "class": "Workflow",
    "inputs": {"message": "string"},
    "outputs": {"out": {"type": "File", "outputSource": "second/out"}},
    "steps": {
        "first": {"in": {"message": "message"}, "out": ["out"], "run": ECHO_TO_FILE},
        "second": {
            "in": {"infile": "first/out"},
            "out": ["out"],
            "run": {
                "cwlVersion": "v1.2",
                "class": "CommandLineTool",
                "baseCommand": "cat",
                "inputs": {"infile": {"type": "File", "inputBinding": {"position": 1}}},
                "outputs": {"out": "stdout"},
                "stdout": "copy.txt",
            },
        },
    },
}

WITH_DOCKER = {
    **ECHO_TO_FILE,
    "requirements": {"DockerRequirement": {"dockerPull": "debian:stable-slim"}},
}

FAILING = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "baseCommand": "false",
    "inputs": {},
    "outputs": {},
}

SLEEP = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "baseCommand": ["sleep", "600"],
    "inputs": {},
    "outputs": {},
}

# Prints the niceness that the engine process passed on to its tools.
NICENESS = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "baseCommand": "nice",
    "inputs": {},
    "outputs": {},
}

WITH_EXTENSION = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "$namespaces": {"cwltool": "http://commonwl.org/cwltool#"},
    "requirements": {"cwltool:ShmSize": {"shmSize": "64m"}},
    "baseCommand": "true",
    "inputs": {},
    "outputs": {},
}


@pytest.fixture(scope="module")
def pythonpath() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        parts = [str(REPO_ROOT)]
        if os.environ.get("PYTHONPATH"):
            parts.append(os.environ["PYTHONPATH"])
        patch.setenv("PYTHONPATH", os.pathsep.join(parts))
        yield


@pytest.fixture(scope="module")
def launcher(pythonpath) -> Iterator[WarmLauncher]:
    made = WarmLauncher([ENTRY])
    made.start_background()
    yield made
    made.close()


@pytest.fixture(scope="module")
def spare_launcher(pythonpath) -> Iterator[WarmLauncher]:
    """A launcher whose zygote keeps a spare child prepared at niceness 10."""
    made = WarmLauncher([ENTRY], spare_nice=10)
    made.start_background()
    yield made
    made.close()


@pytest.fixture(scope="module")
def reuse_launcher(pythonpath) -> Iterator[WarmLauncher]:
    """A launcher whose engine processes take another run once theirs has ended."""
    made = WarmLauncher([ENTRY], reuse=True)
    made.start_background()
    yield made
    made.close()


def children_of(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``, from /proc."""
    found = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat_file.parent.name))
    return found


def prepared_spares(launcher: WarmLauncher) -> set[int]:
    """The pids of the zygote's spares once they are its only children and have prefaulted
    (each lowers its niceness first, then walks the warm-up path)."""
    launcher.start(Run.noop()).wait(120)  # the zygote is up
    zygote = launcher.zygote_pid
    assert zygote is not None
    assert wait_until(lambda: len(children_of(zygote)) == 2)
    # Ready is not visible from outside; a run that comes too early is forked as before.
    time.sleep(2.0)
    return children_of(zygote)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, from /proc."""
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat_file.parent.name))
    return members


def wait_until(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Run:
    def __init__(self, tmp_path: Path, document: dict, params: dict, *flags: str) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.dir = tmp_path
        self.tasks = tmp_path / "tasks"
        workflow = tmp_path / "workflow.cwl"
        workflow.write_text(json.dumps(document))
        job = tmp_path / "params.json"
        job.write_text(json.dumps(params))
        outdir = tmp_path / "outputs"
        self.spec = LaunchSpec(
            argv=["cwltool", *flags, "--outdir", str(outdir), str(workflow), str(job)],
            entry=ENTRY,
            cwd=tmp_path,
            stdout=tmp_path / "stdout",
            stderr=tmp_path / "stderr",
            env={TASK_DIR_ENV: str(self.tasks)},
        )

    @classmethod
    def noop(cls) -> LaunchSpec:
        """A request that is not a run: cwltool prints its version and exits."""
        folder = Path(os.environ.get("TMPDIR", "/tmp"))
        return LaunchSpec(
            argv=["cwltool", "--version"],
            entry=ENTRY,
            cwd=folder,
            stdout=Path(os.devnull),
            stderr=Path(os.devnull),
        )

    @property
    def stderr(self) -> str:
        return (self.dir / "stderr").read_text()

    def outputs(self) -> dict:
        return json.loads((self.dir / "stdout").read_text())

    def task_lines(self) -> list[dict]:
        lines = (self.tasks / "tasks.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def task_log(self, task_id: str, name: str) -> str:
        return (self.tasks / task_id / name).read_text()


def run(launcher, run: Run) -> int | None:
    return launcher.start(run.spec).wait(120)


def test_hello_world(launcher, tmp_path):
    hello = Run(tmp_path, ECHO_TO_FILE, {"message": "hello"})

    assert run(launcher, hello) == 0, hello.stderr

    out = hello.outputs()["out"]
    assert out["basename"] == "out.txt"
    assert Path(out["path"]).read_text() == "hello\n"
    start, end = hello.task_lines()
    assert start["id"] == end["id"] == "1"
    assert start["name"] == "workflow.cwl"
    assert start["cmd"] == ["echo", "hello"]
    assert start["start_time"].endswith("Z")
    assert end["exit_code"] == 0
    assert end["end_time"].endswith("Z")
    # The tool's own stdout file, linked into the task's directory.
    assert hello.task_log("1", "stdout") == "hello\n"


def test_uncaptured_stdout_goes_to_the_task_log(launcher, tmp_path):
    echo = Run(tmp_path, ECHO, {"message": "to the task"})

    assert run(launcher, echo) == 0, echo.stderr

    assert echo.outputs() == {}
    assert echo.task_log("1", "stdout") == "to the task\n"
    assert "to the task" not in echo.stderr.splitlines()


def test_two_step_workflow_has_two_tasks(launcher, tmp_path):
    flow = Run(tmp_path, TWO_STEPS, {"message": "piped"})

    assert run(launcher, flow) == 0, flow.stderr

    assert Path(flow.outputs()["out"]["path"]).read_text() == "piped\n"
    lines = flow.task_lines()
    starts = [line for line in lines if "start_time" in line]
    ends = [line for line in lines if "end_time" in line]
    assert [(s["id"], s["name"]) for s in starts] == [("1", "first"), ("2", "second")]
    assert sorted((e["id"], e["exit_code"]) for e in ends) == [("1", 0), ("2", 0)]
    assert flow.task_log("2", "stdout") == "piped\n"


def test_docker_requirement_ignored_without_containers(launcher, tmp_path):
    tool = Run(tmp_path, WITH_DOCKER, {"message": "no docker"}, "--no-container")
    tool.spec.env[IGNORE_DOCKER_ENV] = "1"

    assert run(launcher, tool) == 0, tool.stderr

    assert Path(tool.outputs()["out"]["path"]).read_text() == "no docker\n"
    assert tool.stderr.count("DockerRequirement ignored") == 1


def absolute_entry(entryname: str) -> dict:
    return {
        **ECHO_TO_FILE,
        "requirements": {
            "DockerRequirement": {"dockerPull": "debian:stable-slim"},
            "InitialWorkDirRequirement": {"listing": [{"entryname": entryname, "entry": "x"}]},
        },
        "inputs": {**ECHO_TO_FILE["inputs"], "where": "string"},
    }


@pytest.mark.parametrize("entryname", ["literal", "$(inputs.where)"])
def test_docker_requirement_not_ignored_for_an_absolute_entry(launcher, tmp_path, entryname):
    where = tmp_path / "host" / "x.txt"
    name = str(where) if entryname == "literal" else entryname
    params = {"message": "m", "where": str(where)}
    tool = Run(tmp_path, absolute_entry(name), params, "--no-container")
    tool.spec.env[IGNORE_DOCKER_ENV] = "1"

    assert run(launcher, tool) == 33, tool.stderr

    assert "outside its working directory" in tool.stderr
    assert not where.parent.exists()


def test_docker_requirement_not_ignored_with_an_output_directory(launcher, tmp_path):
    docker = {"dockerPull": "debian:stable-slim", "dockerOutputDirectory": "/output"}
    document = {**ECHO_TO_FILE, "requirements": {"DockerRequirement": docker}}
    tool = Run(tmp_path, document, {"message": "m"}, "--no-container")
    tool.spec.env[IGNORE_DOCKER_ENV] = "1"

    assert run(launcher, tool) == 33, tool.stderr
    assert "dockerOutputDirectory" in tool.stderr


def test_docker_requirement_rejected_by_default(launcher, tmp_path):
    tool = Run(tmp_path, WITH_DOCKER, {"message": "no docker"}, "--no-container")

    assert run(launcher, tool) != 0
    assert "DockerRequirement under 'requirements'" in tool.stderr


def test_failing_tool(launcher, tmp_path):
    tool = Run(tmp_path, FAILING, {})

    assert run(launcher, tool) not in (0, None)

    start, end = tool.task_lines()
    assert start["cmd"] == ["false"]
    assert end["exit_code"] == 1


def test_enable_ext_installs_the_extension_schemas(launcher, tmp_path):
    def run_in(name: str, *flags: str) -> int | None:
        (tmp_path / name).mkdir()
        return run(launcher, Run(tmp_path / name, WITH_EXTENSION, {}, *flags))

    assert run_in("without") != 0
    assert run_in("with", "--enable-ext") == 0
    # The zygote kept the standard schemas for the next child.
    assert run_in("again") != 0


def test_without_task_dir_nothing_is_recorded(launcher, tmp_path):
    hello = Run(tmp_path, ECHO, {"message": "unrecorded"})
    del hello.spec.env[TASK_DIR_ENV]

    assert run(launcher, hello) == 0, hello.stderr

    assert not hello.tasks.exists()
    assert "unrecorded" in hello.stderr.splitlines()


def test_launched_again_starts_the_task_log_afresh(launcher, tmp_path):
    hello = Run(tmp_path, ECHO_TO_FILE, {"message": "first"})
    assert run(launcher, hello) == 0, hello.stderr
    (tmp_path / "params.json").write_text(json.dumps({"message": "second"}))

    assert run(launcher, hello) == 0, hello.stderr

    assert [line["id"] for line in hello.task_lines()] == ["1", "1"]
    assert hello.task_log("1", "stdout") == "second\n"


def test_kill_tree_stops_cwltool_and_its_tools(launcher, tmp_path):
    sleeper = Run(tmp_path, SLEEP, {})
    handle = launcher.start(sleeper.spec)
    assert wait_until(lambda: (sleeper.tasks / "tasks.jsonl").exists() and sleeper.task_lines())
    assert sleeper.task_lines()[0]["cmd"] == ["sleep", "600"]

    handle.kill_tree(5.0)

    # The child answers SIGTERM by killing its whole process group with SIGKILL.
    assert handle.wait(30) == -signal.SIGKILL
    assert wait_until(lambda: not group_members(handle.pid))


def test_as_a_plain_subprocess(pythonpath, tmp_path):
    launcher = SubprocessLauncher()
    hello = Run(tmp_path, ECHO, {"message": "cold"})
    try:
        assert run(launcher, hello) == 0, hello.stderr
    finally:
        launcher.close()

    assert hello.task_log("1", "stdout") == "cold\n"
    assert [line["id"] for line in hello.task_lines()] == ["1", "1"]


def test_the_version_line_kept_from_the_zygote_is_cwltools_own():
    import cwltool.utils

    from toolchest_wes.engines import cwltool_child

    assert cwltool_child._version_line() == cwltool.utils.versionstring()


def test_the_command_line_is_parsed_as_cwltool_parses_it(monkeypatch, tmp_path):
    import cwltool.argparser

    from toolchest_wes.engines import cwltool_child

    monkeypatch.setenv("CWLTOOL_OPTIONS", " --enable-ext  --record-container-id")
    monkeypatch.chdir(tmp_path)
    argv = ["--no-container", "--tmpdir-prefix", "/tmp/x", "wf.cwl", "job.json"]

    ours = cwltool_child._parse_arguments(argv)

    theirs = cwltool.argparser.arg_parser().parse_args(
        ["--enable-ext", "--record-container-id", *argv]
    )
    theirs.cidfile_dir = os.getcwd()
    del theirs.record_container_id
    assert vars(ours) == vars(theirs)
    assert ours.enable_ext and ours.cidfile_dir == str(tmp_path)


def test_a_parser_serves_one_parse(monkeypatch):
    """An argparse action may keep state from one parse to the next."""
    from toolchest_wes.engines import cwltool_child

    monkeypatch.delenv("CWLTOOL_OPTIONS", raising=False)
    monkeypatch.setattr(cwltool_child, "_spare_parser", cwltool_child._make_parser())
    first = cwltool_child._parse_arguments(["--skip-schemas", "wf.cwl"])
    second = cwltool_child._parse_arguments(["wf.cwl"])

    assert cwltool_child._spare_parser is None
    assert vars(second) == vars(cwltool_child._make_parser().parse_args(["wf.cwl"]))
    assert first.workflow == second.workflow == "wf.cwl"


def test_a_bad_command_line_exits_as_cwltool_does(monkeypatch, capsys):
    from toolchest_wes.engines import cwltool_child

    monkeypatch.setattr("sys.argv", ["cwltool"])
    with pytest.raises(SystemExit) as exited:
        cwltool_child._parse_arguments(["--no-such-option", "wf.cwl"])

    assert exited.value.code == 2
    assert "cwltool: error: unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_remembered_urlsplits_answer_as_the_standard_library(monkeypatch):
    import urllib.parse

    from toolchest_wes.engines import cwltool_child

    standard = urllib.parse.urlsplit
    if isinstance(standard, cwltool_child._RememberingUrlsplit):  # a warm() ran in this process
        standard = standard.split
    monkeypatch.setattr(urllib.parse, "urlsplit", standard)
    monkeypatch.setattr(cwltool_child, "_URLSPLIT_TABLE_SIZE", 3)
    cwltool_child._remember_urlsplits()
    remembering = urllib.parse.urlsplit
    cwltool_child._remember_urlsplits()  # once per process: the second call keeps the first
    assert urllib.parse.urlsplit is remembering
    urls = [
        "https://w3id.org/cwl/cwl#inputs",
        "file:///a/b.cwl#main/x",
        "file:///a/b.cwl#main/x",
        b"http://host:8080/p?q=1",
        "//host/path",
        "relative/path#frag",
    ]
    for url in urls:
        assert remembering(url) == standard(url)
        scheme = b"file" if isinstance(url, bytes) else "file"
        assert remembering(url, scheme, False) == standard(url, scheme, False)
    # urllib.parse's own functions call it through the module.
    assert urllib.parse.urljoin("file:///a/b.cwl", "c.yml") == "file:///a/c.yml"
    assert len(remembering.table) == 3  # bounded: past the limit, only the standard cache
    before = dict(remembering.table)
    remembering.compact()
    assert remembering.table == before
    assert all(remembering.table[key] is not before[key] for key in before)
    assert remembering(urls[0]) == standard(urls[0])


def test_a_run_taken_by_the_spare_runs_as_a_forked_one(spare_launcher, tmp_path):
    spares = prepared_spares(spare_launcher)
    niceness = Run(tmp_path, NICENESS, {})
    niceness.spec.env[NICE_ENV] = "10"

    handle = spare_launcher.start(niceness.spec)

    assert handle.pid in spares
    assert handle.wait(120) == 0, niceness.stderr
    # Lowered once, by the spare, and not once more by the run.
    assert niceness.task_log("1", "stdout") == "10\n"
    assert [line["id"] for line in niceness.task_lines()] == ["1", "1"]


def test_kill_tree_stops_a_run_taken_by_the_spare(spare_launcher, tmp_path):
    spares = prepared_spares(spare_launcher)
    sleeper = Run(tmp_path, SLEEP, {})
    handle = spare_launcher.start(sleeper.spec)
    assert handle.pid in spares
    assert wait_until(lambda: (sleeper.tasks / "tasks.jsonl").exists() and sleeper.task_lines())

    handle.kill_tree(5.0)

    assert handle.wait(30) == -signal.SIGKILL
    assert wait_until(lambda: not group_members(handle.pid))


# A tool with comments, a list, nested maps and a mistake on line 9 (a number as baseCommand).
BROKEN_YAML = """\
#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
# a comment
inputs:
  message:
    type: string
    inputBinding: {position: 1}
baseCommand: [echo, 3]
arguments:
  - valueFrom: $(1 + )
outputs: {}
"""


@pytest.mark.parametrize("with_id", [False, True])
def test_a_document_parsed_before_loads_as_cwltool_loads_it(tmp_path, with_id):
    import cwltool.load_tool

    from toolchest_wes.compat import cwltool_internals

    text = ("id: tool\n" if with_id else "") + BROKEN_YAML
    path = tmp_path / "tool.cwl"
    path.write_text(text)
    url = cwltool_internals.document_url(str(path))
    fetched_by = cwltool.load_tool.default_loader()
    fetched = fetched_by.fetch(url)
    tree = cwltool_internals.parse_document(text)
    assert tree is not None
    seeded_by = cwltool.load_tool.default_loader()

    cwltool_internals.seed_document(seeded_by, url, tree)

    assert seeded_by.fetch(url) == fetched
    assert set(seeded_by.idx) == set(fetched_by.idx)
    pending = [(seeded_by.fetch(url), fetched)]
    while pending:
        ours, theirs = pending.pop()
        assert type(ours) is type(theirs)
        if not hasattr(theirs, "lc"):
            assert ours == theirs
            continue
        assert (ours.lc.line, ours.lc.col, ours.lc.filename, ours.lc.data) == (
            theirs.lc.line,
            theirs.lc.col,
            theirs.lc.filename,
            theirs.lc.data,
        )
        values = theirs.items() if isinstance(theirs, dict) else enumerate(theirs)
        pending.extend((ours[key], value) for key, value in values)
    # The zygote's parse stays as it was for the next run.
    assert getattr(tree.lc, "filename", None) is None
    assert ("id" in tree) == with_id


def test_a_document_with_shared_nodes_is_left_to_cwltool():
    from toolchest_wes.compat import cwltool_internals

    assert cwltool_internals.parse_document("a: &x {b: 1}\nc: *x\n") is None
    assert cwltool_internals.parse_document("a: &x {b: 1}\nc: {<<: *x, d: 2}\n") is None
    assert cwltool_internals.parse_document("just text") is None
    assert cwltool_internals.parse_document("a: {b: [1, {c: 2}]}\n") is not None


def test_runs_after_the_zygote_learned_a_document_see_their_own(launcher, tmp_path):
    """The zygote parses a workflow document the second time a run brings it, for later runs
    with the same text."""
    for name in ("1", "2", "3"):
        same = Run(tmp_path / name, ECHO_TO_FILE, {"message": f"run {name}"})
        assert run(launcher, same) == 0, same.stderr
        assert Path(same.outputs()["out"]["path"]).read_text() == f"run {name}\n"
    changed = Run(tmp_path / "4", {**ECHO_TO_FILE, "stdout": "changed.txt"}, {"message": "x"})
    assert run(launcher, changed) == 0, changed.stderr
    assert changed.outputs()["out"]["basename"] == "changed.txt"

    # A broken document: the third run's messages (from the zygote's parse) name the same
    # lines and columns, in its own file, as the first run's (from cwltool's own).
    broken = []
    for name in ("5", "6", "7"):
        attempt = Run(tmp_path / name, {}, {"message": "x"})
        (attempt.dir / "workflow.cwl").write_text(BROKEN_YAML)
        assert run(launcher, attempt) != 0
        broken.append(attempt.stderr.replace(str(attempt.dir), "RUN"))
    assert "workflow.cwl:9:" in broken[0]
    assert broken[0] == broken[1] == broken[2]


def test_only_regular_files_are_read_as_documents(tmp_path):
    from toolchest_wes.engines import cwltool_child

    fifo = tmp_path / "fifo.cwl"
    os.mkfifo(fifo)
    big = tmp_path / "big.cwl"
    big.write_text("#" * (cwltool_child._DOCUMENT_MAX_CHARS + 1))
    small = tmp_path / "small.cwl"
    small.write_bytes(b"a: 1\r\nb: 2\r\n")

    assert cwltool_child._read_document(str(fifo)) is None  # and does not block
    assert cwltool_child._read_document(str(tmp_path)) is None
    assert cwltool_child._read_document(str(big)) is None
    assert cwltool_child._read_document(str(tmp_path / "missing.cwl")) is None
    assert cwltool_child._read_document(f"{small}#main") is None
    assert cwltool_child._read_document(str(small)) == "a: 1\nb: 2\n"


def test_a_document_is_parsed_the_second_time_it_comes(tmp_path, monkeypatch):
    from toolchest_wes.engines import cwltool_child

    monkeypatch.setattr(cwltool_child, "_documents", type(cwltool_child._documents)())
    monkeypatch.setattr(cwltool_child, "_seen", type(cwltool_child._seen)())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "workflow.cwl").write_text(json.dumps(ECHO))
    argv = ["--outdir", "out", "workflow.cwl", "job.json"]

    cwltool_child.learn(argv, str(tmp_path / "a"))
    assert not cwltool_child._documents
    cwltool_child.learn(argv, str(tmp_path / "b"))  # the same text in another folder
    assert len(cwltool_child._documents) == 1
    cwltool_child.learn(["--version"], str(tmp_path))  # no document
    assert len(cwltool_child._documents) == 1


# Evaluates a JavaScript expression, which cwl_utils does in a node process it keeps.
WITH_EXPRESSION = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "requirements": {"InlineJavascriptRequirement": {}},
    "baseCommand": "echo",
    "arguments": ["$(inputs.message.toUpperCase())"],
    "inputs": {"message": "string"},
    "outputs": {"out": "stdout"},
    "stdout": "out.txt",
}


def runs_in_one_process(launcher: WarmLauncher, runs: list[Run]) -> list[int]:
    """Run each to its end, one after another; their pids. Once a process has reported its
    run's end it takes a moment to come back for another, so runs wait a little between."""
    pids = []
    for each in runs:
        handle = launcher.start(each.spec)
        assert handle.wait(120) == 0, each.stderr
        pids.append(handle.pid)
        time.sleep(0.2)
    return pids


def test_a_reused_process_runs_each_run_as_a_fresh_one_would(reuse_launcher, tmp_path):
    runs = [
        Run(tmp_path / "1", ECHO_TO_FILE, {"message": "one"}),
        Run(tmp_path / "2", TWO_STEPS, {"message": "two"}),
        Run(tmp_path / "3", WITH_EXPRESSION, {"message": "three"}),
        Run(tmp_path / "4", ECHO_TO_FILE, {"message": "four"}),
    ]

    pids = runs_in_one_process(reuse_launcher, runs)

    assert len(set(pids)) < len(pids)
    read = [Path(r.outputs()["out"]["path"]).read_text() for r in runs]
    assert read == ["one\n", "two\n", "THREE\n", "four\n"]
    # Job names and task numbers start afresh in every run.
    assert runs[3].task_lines()[0]["name"] == runs[0].task_lines()[0]["name"] == "workflow.cwl"
    assert {line["id"] for line in runs[3].task_lines()} == {"1"}
    # The expression engine went with its run: a waiting process has no child.
    assert wait_until(lambda: all(not children_of(pid) for pid in set(pids)))


def test_a_process_whose_run_failed_takes_no_other(reuse_launcher, tmp_path):
    failing = reuse_launcher.start(Run(tmp_path / "f", FAILING, {}).spec)
    assert failing.wait(120) != 0

    later = runs_in_one_process(
        reuse_launcher, [Run(tmp_path / str(n), ECHO, {"message": "x"}) for n in range(3)]
    )

    assert failing.pid not in later


def test_killing_a_run_that_ended_leaves_the_next_run_of_its_process_alone(
    reuse_launcher, tmp_path
):
    for attempt in range(20):
        ended = reuse_launcher.start(Run(tmp_path / f"e{attempt}", ECHO, {"message": "x"}).spec)
        assert ended.wait(120) == 0
        time.sleep(0.2)
        sleeper = Run(tmp_path / f"s{attempt}", SLEEP, {})
        handle = reuse_launcher.start(sleeper.spec)
        if handle.pid == ended.pid:
            break
        handle.kill_tree(5.0)
    else:
        pytest.fail("no process took a second run")
    assert wait_until(lambda: (sleeper.tasks / "tasks.jsonl").exists() and sleeper.task_lines())

    # A cancel of the first run that comes after its end.
    ended.kill_tree(0.5)

    assert handle.wait(1.0) is None
    assert group_members(handle.pid)
    handle.kill_tree(5.0)
    assert handle.wait(30) == -signal.SIGKILL
    assert wait_until(lambda: not group_members(handle.pid))


def test_a_cancel_after_the_run_ended_does_not_wait_out_its_grace(reuse_launcher, tmp_path):
    # The process lives on for another run, so its group does too; nothing of the run is left.
    ended = reuse_launcher.start(Run(tmp_path / "e", ECHO, {"message": "x"}).spec)
    assert ended.wait(120) == 0
    cancel = threading.Thread(target=ended.kill_tree, args=(120.0,), daemon=True)

    cancel.start()

    cancel.join(60)
    assert not cancel.is_alive()
