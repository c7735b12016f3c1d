"""Retention of outputs: the expiry in RunLog and the listing, the sweep, and 410 afterwards."""

from __future__ import annotations

import calendar
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, Wes, assert_error
from toolchest_wes.core.retention import sweep_outputs
from toolchest_wes.models import State
from toolchest_wes.server.app import get_state

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"
#: About 0.09 s: outputs expire as soon as a run ends.
TINY_DAYS = 1e-6


def _epoch(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def _hello(wes: Wes) -> str:
    run_id = wes.submit(HELLO, {"message": "kept for a while"})
    assert wes.wait(run_id) is State.COMPLETE
    return run_id


def _wait_swept(run_dir: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while run_dir.joinpath("outputs").exists():
        assert time.monotonic() < deadline, "the sweep never removed the outputs"
        time.sleep(0.05)


def test_outputs_expire_seven_days_after_the_run_ends(wes: Wes) -> None:
    run_id = _hello(wes)

    log = wes.log(run_id)
    listing = wes.get(f"/runs/{run_id}/outputs").get_json()

    expire_at = _epoch(log["run_log"]["end_time"]) + 7 * 86400
    assert _epoch(log["outputs_expire_at"]) == expire_at
    assert log["outputs_expired"] is False
    assert _epoch(listing["outputs_expire_at"]) == expire_at
    assert listing["outputs_expired"] is False
    assert [f["path"] for f in listing["files"]] == ["hello.txt"]


def test_active_runs_have_no_expiry_yet(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {"message": "x"})
    log = wes.log(run_id)
    if not State(log["state"]).is_terminal:
        assert "outputs_expire_at" not in log
        assert log["outputs_expired"] is False
    wes.wait(run_id)


def test_zero_days_keeps_outputs_forever(make_app: Any, make_settings: Any) -> None:
    app = make_app(make_settings(retention_days=0))
    wes = Wes(app.app.test_client())
    run_id = _hello(wes)

    log = wes.log(run_id)

    assert "outputs_expire_at" not in log
    assert log["outputs_expired"] is False
    assert wes.get(f"/runs/{run_id}/outputs/hello.txt").status_code == 200


def test_expired_outputs_are_swept_and_answer_410(make_app: Any, make_settings: Any) -> None:
    settings = make_settings(
        retention_days=TINY_DAYS, retention_sweep_interval_s=0.05, reconcile_interval_s=0.05
    )
    app = make_app(settings)
    wes = Wes(app.app.test_client())
    run_id = _hello(wes)
    run_dir = settings.runs_dir / run_id
    task_id = wes.get(f"/runs/{run_id}/tasks").get_json()["task_logs"][0]["id"]

    _wait_swept(run_dir)

    log = wes.log(run_id)
    assert log["outputs_expired"] is True
    assert _epoch(log["outputs_expire_at"]) >= _epoch(log["run_log"]["end_time"])
    assert log["state"] == "COMPLETE"
    listing = wes.get(f"/runs/{run_id}/outputs").get_json()
    assert listing["files"] == [] and listing["total_size"] == 0
    assert listing["outputs_expired"] is True
    assert listing["outputs_expire_at"] == log["outputs_expire_at"]
    for path in (f"/runs/{run_id}/outputs/hello.txt", f"/runs/{run_id}/outputs?archive=zip"):
        body = assert_error(
            wes.get(path), 410, run_id, "removed after the retention period", "logs are kept"
        )
        assert log["outputs_expire_at"] in body["msg"]
    # Logs stay, so a user can still see what happened.
    assert wes.get(f"/runs/{run_id}/stderr").status_code == 200
    assert wes.get(f"/runs/{run_id}/stderr").data
    assert wes.get(f"/runs/{run_id}/tasks/{task_id}").status_code == 200
    assert wes.get(f"/runs/{run_id}/tasks/{task_id}/stdout").status_code == 200
    assert sorted(p.name for p in run_dir.iterdir()) == ["stderr.log", "stdout.log", "tasks"]
    # The store recorded the removal, so the next pass does not look at the run again.
    record = get_state(app).store.get_run(run_id)
    assert record is not None and record.outputs_removed_at is not None


def test_outputs_answer_410_once_expired_even_before_the_sweep(
    make_app: Any, make_settings: Any
) -> None:
    # A sweep interval of an hour: only the first pass, at start, ever runs.
    app = make_app(make_settings(retention_days=TINY_DAYS, retention_sweep_interval_s=3600))
    wes = Wes(app.app.test_client())
    run_id = _hello(wes)
    time.sleep(0.2)  # past the 0.09 s retention period

    assert_error(wes.get(f"/runs/{run_id}/outputs/hello.txt"), 410, "retention period")
    assert wes.log(run_id)["outputs_expired"] is True


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_the_sweep_never_follows_links_out_of_the_run(
    make_app: Any, make_settings: Any, tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    settings = make_settings(retention_days=0)  # no background sweep; this test calls it
    app = make_app(settings)
    wes = Wes(app.app.test_client())
    run_id = _hello(wes)
    run_dir = settings.runs_dir / run_id
    os.symlink(precious, run_dir / "outputs" / "link-to-dir")
    os.symlink(precious / "keep.txt", run_dir / "attachments" / "link-to-file")
    (run_dir / "work").rmdir()
    os.symlink(precious, run_dir / "work")
    state = get_state(app)

    # A negative period: every run that has ended is due, without waiting.
    swept = sweep_outputs(state.store, state.service.workspace, -60)

    assert swept == [run_id]
    assert (precious / "keep.txt").read_text() == "mine"
    assert not (run_dir / "outputs").exists() and not (run_dir / "work").is_symlink()
