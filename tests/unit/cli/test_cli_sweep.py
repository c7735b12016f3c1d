"""`toolchest-wes sweep` and the --retention-days option."""

from __future__ import annotations

import json

from click.testing import CliRunner

from toolchest_wes.cli.main import cli
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")


def _old_run(data_dir, run_id: str, end_time: str) -> None:
    store = EmbeddedStateStore(data_dir / "runs.sqlite")
    store.create_run(
        RunRecord(
            run_id=run_id, state=State.COMPLETE, request=REQUEST, created_at=0, end_time=end_time
        )
    )
    store.close()
    outputs = data_dir / "runs" / run_id / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "out.txt").write_text("x")
    (data_dir / "runs" / run_id / "stderr.log").write_text("why")


def test_sweep_removes_expired_outputs_once(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _old_run(data, "old", "2020-01-01T00:00:00Z")
    _old_run(data, "new", "2999-01-01T00:00:00Z")

    first = CliRunner().invoke(cli, ["sweep", "--data-dir", str(data)])
    again = CliRunner().invoke(cli, ["sweep", "--data-dir", str(data)])

    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"removed": ["old"]}
    assert json.loads(again.stdout) == {"removed": []}
    assert not (data / "runs" / "old" / "outputs").exists()
    assert (data / "runs" / "old" / "stderr.log").read_text() == "why"
    assert (data / "runs" / "new" / "outputs" / "out.txt").exists()


def test_zero_retention_days_keeps_everything(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _old_run(data, "old", "2020-01-01T00:00:00Z")

    result = CliRunner().invoke(cli, ["sweep", "--data-dir", str(data), "--retention-days", "0"])

    assert json.loads(result.stdout) == {"removed": []}
    assert (data / "runs" / "old" / "outputs" / "out.txt").exists()


def test_negative_retention_days_are_refused(tmp_path) -> None:
    result = CliRunner().invoke(
        cli, ["sweep", "--data-dir", str(tmp_path), "--retention-days", "-1"]
    )

    assert result.exit_code == 2
    assert "--retention-days" in result.output


def test_serve_has_the_retention_option() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])

    assert "--retention-days" in result.output
