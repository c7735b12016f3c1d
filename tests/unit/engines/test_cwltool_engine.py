from __future__ import annotations

from pathlib import Path

import pytest

from toolchest_wes.engines.base import InvalidEngineParameterError, PreparedRun
from toolchest_wes.engines.cwltool_engine import CwltoolEngine


def test_allowed_flags_become_arguments() -> None:
    engine = CwltoolEngine()
    params = engine.check_parameters(
        {
            "--parallel": "true",
            "strict": "",
            "--debug": "false",
            "--on-error": "continue",
            "--eval-timeout": "30",
        }
    )
    assert params.args == [
        "--parallel",
        "--strict",
        "--on-error",
        "continue",
        "--eval-timeout",
        "30",
    ]
    assert params.notes == []


def test_unknown_and_null_flags_are_ignored_with_notes() -> None:
    params = CwltoolEngine().check_parameters({"--disableCaching": None, "--clean": "always"})
    assert params.args == []
    assert len(params.notes) == 2


@pytest.mark.parametrize(
    "flag",
    ["--outdir", "--basedir", "--tmpdir-prefix", "--tmp-outdir-prefix", "--cachedir", "log-dir"],
)
def test_flags_naming_client_folders_are_ignored_with_a_note(flag: str) -> None:
    params = CwltoolEngine().check_parameters({flag: "/home/me/out", "--quiet": None})
    assert params.args == []
    assert any(flag in note and "client's machine" in note for note in params.notes)


@pytest.mark.parametrize(
    "flag",
    [
        "--user-space-docker-cmd",
        "--singularity",
        "--podman",
        "--provenance",
        "--preserve-environment",
        "--leave-outputs",
        "--overrides",
        "--default-container",
    ],
)
def test_cwltool_flags_outside_the_allow_list_are_refused(flag: str) -> None:
    with pytest.raises(InvalidEngineParameterError, match=flag):
        CwltoolEngine().check_parameters({flag: "x"})


def test_no_container_follows_the_server_policy() -> None:
    assert CwltoolEngine(container_runtime="docker").check_parameters(
        {"--no-container": "true"}
    ).args == ["--no-container"]
    assert (
        CwltoolEngine(container_runtime="none").check_parameters({"--no-container": "true"}).args
        == []
    )
    with pytest.raises(InvalidEngineParameterError, match="container"):
        CwltoolEngine(container_runtime="docker", allow_no_container=False).check_parameters(
            {"--no-container": "true"}
        )


def test_launch_spec_puts_everything_in_the_run_directory(tmp_path: Path) -> None:
    run = PreparedRun(
        run_id="r",
        run_dir=tmp_path,
        workflow=str(tmp_path / "attachments" / "w.cwl"),
        params_file=tmp_path / "attachments" / "p.json",
        attachments_dir=tmp_path / "attachments",
        outputs_dir=tmp_path / "outputs",
        work_dir=tmp_path / "work",
        task_dir=tmp_path / "tasks",
        stdout_path=tmp_path / "stdout.log",
        stderr_path=tmp_path / "stderr.log",
        engine_args=["--parallel"],
    )
    spec = CwltoolEngine(container_runtime="none").launch_spec(run)
    assert spec.argv[0] == "cwltool"
    assert spec.argv[-2:] == [run.workflow, str(run.params_file)]
    assert "--no-container" in spec.argv and "--parallel" in spec.argv
    assert spec.argv[spec.argv.index("--outdir") + 1] == str(run.outputs_dir)
    assert spec.env["TOOLCHEST_WES_CHILD_TASK_DIR"] == str(run.task_dir)
    assert spec.env["TOOLCHEST_WES_CHILD_IGNORE_DOCKER"] == "1"
    assert spec.cwd == run.attachments_dir
    podman = CwltoolEngine(container_runtime="podman").launch_spec(run)
    assert "--podman" in podman.argv and "TOOLCHEST_WES_CHILD_IGNORE_DOCKER" not in podman.env
