"""ToilEngine: the flag allow-list, the command line, outputs, and finding Toil."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from toolchest_wes.engines.base import InvalidEngineParameterError, PreparedRun, Resources
from toolchest_wes.engines.registry import EngineRegistry, match_version
from toolchest_wes.engines.toil_engine import ToilEngine, find_toil, toil_version


def engine(workflow_type: str = "CWL", **kwargs: object) -> ToilEngine:
    return ToilEngine(workflow_type=workflow_type, bin_dir=Path("/opt/toil/bin"), **kwargs)  # type: ignore[arg-type]


def prepared(tmp_path: Path, workflow: str = "wf.cwl") -> PreparedRun:
    run = tmp_path / "run"
    return PreparedRun(
        run_id="r1",
        run_dir=run,
        workflow=str(run / "attachments" / workflow),
        params_file=run / "attachments" / "params.json",
        attachments_dir=run / "attachments",
        outputs_dir=run / "outputs",
        work_dir=run / "work",
        task_dir=run / "tasks",
        stdout_path=run / "stdout",
        stderr_path=run / "stderr",
        engine_args=["--retryCount", "0"],
    )


def test_allowed_flags_become_arguments() -> None:
    params = engine().check_parameters(
        {
            "retryCount": "2",
            "--logLevel": "debug",
            "--stats": "true",
            "--enable-dev": "",
            "--cleanWorkDir": "onsuccess",
            "--defaultCores": "0.5",
            "--doubleMem": "false",
        }
    )
    assert params.args == [
        "--retryCount",
        "2",
        "--logLevel",
        "DEBUG",
        "--stats",
        "--enable-dev",
        "--cleanWorkDir",
        "onSuccess",
        "--defaultCores",
        "0.5",
    ]
    assert params.notes == []


def test_foreign_and_null_flags_are_ignored_with_notes() -> None:
    params = engine().check_parameters({"--parallel": "true", "--logLevel": None})
    assert params.args == []
    assert [n.split(":")[0] for n in params.notes] == [
        "ignored workflow_engine_parameters '--parallel'",
        "ignored workflow_engine_parameters '--logLevel'",
    ]


def test_flags_of_the_other_language_are_foreign() -> None:
    assert engine("WDL").check_parameters({"--enable-dev": "true"}).args == []
    assert engine("WDL").check_parameters({"--allCallOutputs": "true"}).args == ["--allCallOutputs"]
    assert engine("CWL").check_parameters({"--allCallOutputs": "true"}).notes


@pytest.mark.parametrize(
    "flag",
    ["--jobStore", "batchSystem", "--workDir", "--outdir", "-o", "--maxCores", "--clean"],
)
def test_policy_flags_are_refused_by_name(flag: str) -> None:
    with pytest.raises(InvalidEngineParameterError, match=repr(flag)):
        engine("WDL").check_parameters({"--logLevel": "INFO", flag: "x"})


def test_no_container_follows_the_server_policy() -> None:
    assert engine(container_runtime="docker").check_parameters({"--no-container": ""}).args == [
        "--no-container"
    ]
    assert engine().check_parameters({"--no-container": "true"}).args == []  # already set
    with pytest.raises(InvalidEngineParameterError, match="in a container"):
        engine(container_runtime="docker", allow_no_container=False).check_parameters(
            {"--no-container": "true"}
        )


def test_every_refused_flag_is_named_at_once() -> None:
    with pytest.raises(InvalidEngineParameterError) as error:
        engine().check_parameters({"--jobStore": "file:/x", "--writeLogs": "/x"})
    assert "'--jobStore', '--writeLogs'" in str(error.value)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--retryCount", "6"),
        ("--retryCount", "-1"),
        ("--retryCount", "two"),
        ("--logLevel", "LOUD"),
        ("--stats", "maybe"),
        ("--defaultCores", "0"),
        ("--defaultCores", "lots"),
    ],
)
def test_bad_values_are_refused(flag: str, value: str) -> None:
    with pytest.raises(InvalidEngineParameterError, match=repr(flag)):
        engine().check_parameters({flag: value})


def test_cwl_command_line(tmp_path: Path) -> None:
    run = prepared(tmp_path)
    spec = engine(default_args=("--logLevel", "INFO")).launch_spec(run)
    argv = spec.argv
    # The entry's main gets argv[1:], forked from the zygote or as python -m.
    assert argv[:2] == ["toil_child", "/opt/toil/bin/toil-cwl-runner"]
    assert spec.entry == "toolchest_wes.engines.toil_child"
    assert argv[argv.index("--jobStore") + 1] == f"file:{run.work_dir}/jobstore"
    assert argv[argv.index("--batchSystem") + 1] == "single_machine"
    assert argv[argv.index("--outdir") + 1] == str(run.outputs_dir)
    assert argv[argv.index("--workDir") + 1] == str(run.work_dir / "toil")
    assert "--no-container" in argv
    assert argv[-2:] == [run.workflow, str(run.params_file)]
    # Policy first, then the operator's flags, then the user's.
    assert argv.index("--logLevel") < argv.index("--retryCount")
    assert "--maxCores" not in argv
    assert spec.env["TOOLCHEST_WES_TOIL_TASK_DIR"] == str(run.task_dir)
    assert spec.env["TOOLCHEST_WES_TOIL_HOSTEXEC"] == ""


def test_wdl_command_line_on_a_cluster(tmp_path: Path) -> None:
    run = prepared(tmp_path, "wf.wdl")
    shared = tmp_path / "shared"
    spec = engine("WDL", batch_system="slurm", jobstore_dir=str(shared)).launch_spec(run)
    argv = spec.argv
    assert argv[1] == "/opt/toil/bin/toil-wdl-runner"
    assert argv[argv.index("--jobStore") + 1] == f"file:{shared}/r1"
    assert argv[argv.index("--batchSystem") + 1] == "slurm"
    assert argv[argv.index("--outputDirectory") + 1] == str(run.outputs_dir)
    assert argv[argv.index("--container") + 1] == "singularity"
    assert "--workDir" not in argv  # node-local default on a cluster
    assert spec.env["TOOLCHEST_WES_TOIL_HOSTEXEC"] == "1"


def test_a_network_job_store_prefix_gets_the_run_id(tmp_path: Path) -> None:
    spec = engine(batch_system="kubernetes", jobstore_dir="aws:us-west-2:wes").launch_spec(
        prepared(tmp_path)
    )
    assert spec.argv[spec.argv.index("--jobStore") + 1] == "aws:us-west-2:wes-r1"


def test_resources_become_toil_limits(tmp_path: Path) -> None:
    run = prepared(tmp_path)
    run.resources = Resources(cores=2, memory_bytes=512 * 1024**2)
    argv = engine().launch_spec(run).argv
    assert argv[argv.index("--maxCores") + 1] == "2"
    assert argv[argv.index("--maxMemory") + 1] == str(512 * 1024**2)
    # A job asks for Toil's default memory (2 GiB) unless told: never above the limit.
    assert argv[argv.index("--defaultMemory") + 1] == str(512 * 1024**2)


def test_default_parameters_for_service_info() -> None:
    names = {(p.name, p.default_value) for p in engine("WDL").default_parameters()}
    assert names == {("--batchSystem", "single_machine"), ("--container", "host")}


def test_wdl_output_paths_become_files(tmp_path: Path) -> None:
    run = prepared(tmp_path, "wf.wdl")
    (run.outputs_dir / "hello.greet").mkdir(parents=True)
    out = run.outputs_dir / "hello.greet" / "greeting.txt"
    out.write_text("hi\n")
    run.stdout_path.write_text(
        json.dumps({"hello.greeting": str(out), "hello.n": 3, "hello.s": "/etc/passwd"})
    )
    outputs = engine("WDL").collect_outputs(run, run.stdout_path)
    assert outputs["hello.greeting"]["class"] == "File"
    assert outputs["hello.greeting"]["location"] == out.resolve().as_uri()
    assert outputs["hello.n"] == 3
    assert outputs["hello.s"] == "/etc/passwd"  # not an output file: left as a string


def test_unreadable_outputs_are_an_error(tmp_path: Path) -> None:
    run = prepared(tmp_path)
    run.stdout_path.parent.mkdir(parents=True)
    run.stdout_path.write_text("Traceback ...")
    with pytest.raises(ValueError, match="toil-cwl-runner"):
        engine().collect_outputs(run, run.stdout_path)


def _fake_toil(prefix: Path, version: str) -> Path:
    bin_dir = prefix / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("toil-cwl-runner", "toil-wdl-runner"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    dist = prefix / "lib" / "python3.11" / "site-packages" / f"toil-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: toil\nVersion: {version}\n")
    return bin_dir


def test_find_toil_in_a_named_virtualenv_or_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = _fake_toil(tmp_path / "venv", "9.6.1")
    assert find_toil(tmp_path / "venv") == bin_dir
    assert toil_version(bin_dir) == "9.6.1"
    assert find_toil(tmp_path / "elsewhere") is None
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{bin_dir}")
    assert find_toil() == bin_dir


def test_version_of_a_toil_installed_for_another_interpreter(tmp_path: Path) -> None:
    # A system install: scripts in one prefix, the package in the interpreter's dist-packages.
    system = tmp_path / "usr"
    dist = system / "lib" / "python3.11" / "dist-packages" / "toil-9.6.2.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Name: toil\nVersion: 9.6.2\n")
    bin_dir = tmp_path / "opt" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "toil-cwl-runner").write_text(f"#!{system}/bin/python3\n")
    assert toil_version(bin_dir) == "9.6.2"
    with pytest.raises(LookupError):
        toil_version(tmp_path)


def test_wdl_versions_match_as_clients_write_them() -> None:
    wdl, cwl = engine("WDL"), engine("CWL")
    assert [match_version(v, wdl.type_versions) for v in ("1.0", "v1.1", " 1.1 ", "1.2")] == [
        "1.0",
        "1.1",
        "1.1",
        None,
    ]
    assert [match_version(v, cwl.type_versions) for v in ("1.2", "v1.0", "V1.1")] == [
        "v1.2",
        "v1.0",
        "v1.1",
    ]


def test_registry_keeps_several_engines_per_type() -> None:
    first, toil_cwl, toil_wdl = engine("CWL"), engine("CWL"), engine("WDL")
    first.name = "other"
    registry = EngineRegistry([first, toil_cwl, toil_wdl])
    assert registry.for_type("cwl") is first
    assert registry.for_type("CWL", "Toil") is toil_cwl
    assert registry.for_type("CWL", "cwltool") is None
    assert registry.engine_names("cwl") == ["other", "toil"]
    assert registry.supported() == {"CWL": ["v1.0", "v1.1", "v1.2"], "WDL": ["1.0", "1.1"]}
    assert len(registry.engines) == 3
