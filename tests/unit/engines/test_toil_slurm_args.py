"""ToilEngine on Slurm: every run's jobs carry the run's comment, and the watcher is asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchest_wes.engines.base import PreparedRun
from toolchest_wes.engines.slurm_sweep import run_comment
from toolchest_wes.engines.toil_engine import ToilEngine, slurm_args


def prepared(tmp_path: Path) -> PreparedRun:
    run = tmp_path / "run"
    return PreparedRun(
        run_id="r1",
        run_dir=run,
        workflow=str(run / "attachments" / "wf.cwl"),
        params_file=run / "attachments" / "params.json",
        attachments_dir=run / "attachments",
        outputs_dir=run / "outputs",
        work_dir=run / "work",
        task_dir=run / "tasks",
        stdout_path=run / "stdout",
        stderr_path=run / "stderr",
    )


def test_the_comment_names_the_run() -> None:
    assert run_comment("abc") == "toolchest-wes-run:abc"


def test_slurm_args_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOIL_SLURM_ARGS", raising=False)
    assert slurm_args((), "c") == "--slurmArgs=--comment=c"


@pytest.mark.parametrize(
    "default_args",
    [("--slurmArgs", "--time=10 --qos=low"), ("--slurmArgs=--time=10 --qos=low",)],
)
def test_slurm_args_keep_the_operators(default_args: tuple[str, ...]) -> None:
    assert slurm_args(default_args, "c") == "--slurmArgs=--time=10 --qos=low --comment=c"


def test_slurm_args_keep_toil_slurm_args_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOIL_SLURM_ARGS", "--account=lab")
    assert slurm_args((), "c") == "--slurmArgs=--account=lab --comment=c"
    # A flag given to the server wins over the environment, as in Toil.
    assert slurm_args(("--slurmArgs", "--qos=x"), "c") == "--slurmArgs=--qos=x --comment=c"


def test_a_slurm_run_carries_its_comment_after_the_operators_flags(tmp_path: Path) -> None:
    engine = ToilEngine(
        "CWL",
        tmp_path / "bin",
        batch_system="slurm",
        jobstore_dir=str(tmp_path / "stores"),
        default_args=("--slurmArgs", "--qos=low"),
    )

    spec = engine.launch_spec(prepared(tmp_path))

    flags = [a for a in spec.argv if a.startswith("--slurmArgs")]
    assert flags[-1] == "--slurmArgs=--qos=low --comment=toolchest-wes-run:r1"
    assert spec.argv.index(flags[-1]) > spec.argv.index("--qos=low")
    assert spec.env["TOOLCHEST_WES_TOIL_SLURM_COMMENT"] == "toolchest-wes-run:r1"
    assert spec.env["TOOLCHEST_WES_TOIL_SLURM_REMOVE"] == str(tmp_path / "stores" / "r1")


@pytest.mark.parametrize("jobstore_dir", [None, "aws:us-west-2:wes"])
def test_only_a_file_job_store_outside_the_run_is_removed(
    tmp_path: Path, jobstore_dir: str | None
) -> None:
    engine = ToilEngine("WDL", tmp_path / "bin", batch_system="slurm", jobstore_dir=jobstore_dir)

    spec = engine.launch_spec(prepared(tmp_path))

    assert spec.env["TOOLCHEST_WES_TOIL_SLURM_REMOVE"] == ""


def test_other_batch_systems_get_no_comment_and_no_watcher(tmp_path: Path) -> None:
    spec = ToilEngine("CWL", tmp_path / "bin").launch_spec(prepared(tmp_path))

    assert not any(a.startswith("--slurmArgs") for a in spec.argv)
    assert "TOOLCHEST_WES_TOIL_SLURM_COMMENT" not in spec.env
    # No watcher: toil_child removes the job store itself, after the run's processes.
    assert spec.env["TOOLCHEST_WES_TOIL_JOBSTORE"] == str(tmp_path / "run" / "work" / "jobstore")
