from __future__ import annotations

from pathlib import Path

import pytest

from tests.snakemake_support import require_snakemake
from toolchest_wes.engines.base import InvalidEngineParameterError, PreparedRun
from toolchest_wes.engines.snakemake_engine import SnakemakeEngine


@pytest.fixture(scope="module")
def engine() -> SnakemakeEngine:
    return SnakemakeEngine(program=require_snakemake())


def test_allowed_flags_become_arguments(engine: SnakemakeEngine) -> None:
    params = engine.check_parameters(
        {
            "--keep-going": "true",
            "printshellcmds": "",
            "--forceall": "false",
            "-p": True,
            "--restart-times": "2",
        }
    )
    assert params.args == [
        "--keep-going",
        "--printshellcmds",
        "--printshellcmds",
        "--restart-times",
        "2",
    ]
    assert params.notes == []


def test_foreign_and_null_flags_are_ignored_with_notes(engine: SnakemakeEngine) -> None:
    params = engine.check_parameters({"--parallel": "true", "--clean": "always", "x": None})
    assert params.args == []
    assert len(params.notes) == 3
    assert "not a Snakemake option" in params.notes[0]


@pytest.mark.parametrize(
    "flag",
    [
        "--directory",
        "-d",
        "--snakefile",
        "--executor",
        "--use-conda",
        "--use-singularity",
        "--use-apptainer",
        "--cores",
        "--configfile",
        "--profile",
        "--shadow-prefix",
        "--default-resources",
        "--unlock",
    ],
)
def test_flags_that_reach_outside_the_run_are_refused_by_name(
    engine: SnakemakeEngine, flag: str
) -> None:
    with pytest.raises(InvalidEngineParameterError, match=repr(flag)):
        engine.check_parameters({flag: "x" if flag in ("-d", "--directory") else "true"})


def test_software_deployment_only_where_the_operator_allows_it(engine: SnakemakeEngine) -> None:
    with pytest.raises(InvalidEngineParameterError, match="conda"):
        engine.check_parameters({"--software-deployment-method": "conda"})
    allowing = SnakemakeEngine(program=engine.program, allow_conda=True)
    assert allowing.check_parameters({"--use-conda": "true"}).args == ["--use-conda"]
    assert allowing.check_parameters({"--sdm": "conda"}).args == [
        "--software-deployment-method",
        "conda",
    ]
    with pytest.raises(InvalidEngineParameterError, match="apptainer"):
        allowing.check_parameters({"--sdm": "conda apptainer"})


@pytest.mark.parametrize(
    ("flag", "value"), [("--keep-going", "maybe"), ("--latency-wait", "-3"), ("-T", "x")]
)
def test_bad_values_are_refused(engine: SnakemakeEngine, flag: str, value: str) -> None:
    with pytest.raises(InvalidEngineParameterError, match=repr(flag)):
        engine.check_parameters({flag: value})


def test_launch_spec_execs_snakemake_in_the_run(
    engine: SnakemakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLCHEST_WES_REDIS_PASSWORD", "s3cret")
    run = PreparedRun(
        run_id="r",
        run_dir=tmp_path,
        workflow=str(tmp_path / "attachments" / "Snakefile"),
        params_file=tmp_path / "params.json",
        attachments_dir=tmp_path / "attachments",
        outputs_dir=tmp_path / "outputs",
        work_dir=tmp_path / "work",
        task_dir=tmp_path / "tasks",
        stdout_path=tmp_path / "stdout",
        stderr_path=tmp_path / "stderr",
        engine_args=["--keep-going"],
    )
    spec = engine.launch_spec(run)
    assert spec.entry is None
    assert spec.cwd == run.attachments_dir
    assert spec.argv[0] == str(engine.program)
    argv = spec.argv
    assert argv[argv.index("--snakefile") + 1] == run.workflow
    assert argv[argv.index("--configfile") + 1] == str(run.params_file)
    assert argv[argv.index("--cores") + 1] == "1"
    assert argv[-1] == "--keep-going"
    assert spec.env["TOOLCHEST_WES_REDIS_PASSWORD"] == ""  # the jobs never see it
