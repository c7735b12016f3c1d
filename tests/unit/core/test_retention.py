"""Expiry arithmetic and the file removal of the retention sweep."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from toolchest_wes.core import retention
from toolchest_wes.core.retention import describe_period, outputs_expiry, sweep_outputs
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.bulk_load import load_embedded
from toolchest_wes.store.embedded_store import EmbeddedStateStore

DAY = 86400.0
END = "2024-03-01T12:00:00Z"
END_S = 1709294400.0


def _record(state: State = State.COMPLETE, **fields: object) -> RunRecord:
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w")
    fields.setdefault("end_time", END)
    fields.setdefault("run_id", "r")
    return RunRecord(state=state, request=request, created_at=0, **fields)  # type: ignore[arg-type]


def test_expiry_is_the_end_plus_the_period() -> None:
    expiry = outputs_expiry(_record(), 7 * DAY, now=END_S)

    assert expiry.expire_at == "2024-03-08T12:00:00Z"
    assert expiry.expired is False


def test_expired_from_the_expiry_on() -> None:
    assert outputs_expiry(_record(), DAY, now=END_S + DAY).expired is True
    assert outputs_expiry(_record(), DAY, now=END_S + DAY - 1).expired is False


def test_active_runs_do_not_expire() -> None:
    expiry = outputs_expiry(_record(State.RUNNING, end_time=None), DAY, now=END_S + 99 * DAY)

    assert expiry.expire_at is None and expiry.expired is False


def test_forever_never_expires() -> None:
    expiry = outputs_expiry(_record(), None, now=END_S + 9999 * DAY)

    assert expiry.expire_at is None and expiry.expired is False


def test_removed_outputs_stay_expired_when_the_period_grows() -> None:
    removed = _record(outputs_removed_at="2024-03-02T00:00:00Z")

    assert outputs_expiry(removed, 30 * DAY, now=END_S + DAY).expired is True
    forever = outputs_expiry(removed, None, now=END_S + DAY)
    assert forever.expired is True and forever.expire_at == "2024-03-02T00:00:00Z"


def test_describe_period() -> None:
    assert describe_period(7 * DAY) == "7 days"
    assert describe_period(1.5 * DAY) == "1.5 days"
    assert describe_period(7200) == "2 hours"
    assert describe_period(90) == "90 seconds"
    assert describe_period(None) == "forever"


def test_remove_outputs_keeps_logs_and_never_follows_links(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    workspace = Workspace(tmp_path / "runs")
    run_dir = workspace.stage("r", [], {})
    (run_dir.outputs / "sub").mkdir()
    (run_dir.outputs / "sub" / "out.txt").write_text("out")
    os.symlink(outside, run_dir.outputs / "sub" / "link")
    os.symlink(outside / "keep.txt", run_dir.attachments / "file-link")
    run_dir.work.rmdir()
    os.symlink(outside, run_dir.work)
    run_dir.stdout.write_text("o")
    run_dir.stderr.write_text("e")
    (run_dir.tasks / "1").mkdir()
    (run_dir.tasks / "1" / "stdout").write_text("t")

    assert workspace.remove_outputs("r") == []

    assert sorted(p.name for p in run_dir.root.iterdir()) == ["stderr.log", "stdout.log", "tasks"]
    assert (run_dir.tasks / "1" / "stdout").read_text() == "t"
    assert (outside / "keep.txt").read_text() == "keep"
    assert workspace.remove_outputs("r") == []  # idempotent


def test_a_linked_run_directory_is_left_alone(tmp_path) -> None:
    outside = tmp_path / "outside"
    (outside / "outputs").mkdir(parents=True)
    workspace = Workspace(tmp_path / "runs")
    workspace.ensure_root()
    os.symlink(outside, workspace.runs_dir / "r")

    errors = workspace.remove_outputs("r")

    assert errors and "symbolic link" in errors[0]
    assert (outside / "outputs").is_dir()
    assert workspace.remove_run_dir("r") == []
    assert outside.is_dir() and not (workspace.runs_dir / "r").exists()


@pytest.fixture
def history(tmp_path) -> Iterator[tuple[EmbeddedStateStore, list[str]]]:
    """A real SQLite store of two full sweep batches and a short one, all ended long ago."""
    run_ids = [f"r{i:04d}" for i in range(2 * retention._BATCH + 5)]
    db = tmp_path / "runs.sqlite"
    load_embedded(db, (_record(run_id=run_id) for run_id in run_ids))
    store = EmbeddedStateStore(db)
    try:
        yield store, run_ids
    finally:
        store.close()


def test_the_sweep_offers_its_core_after_each_run(history, tmp_path, monkeypatch) -> None:
    # The real store and workspace; only the yield is counted, since what it does for other
    # processes' latency is a matter for bench/bench_history.py, not for a test.
    store, run_ids = history
    workspace = Workspace(tmp_path / "runs")
    for run_id in run_ids:
        workspace.stage(run_id, [], {})
    yields: list[None] = []
    monkeypatch.setattr(retention.os, "sched_yield", lambda: yields.append(None))

    swept = sweep_outputs(store, workspace, DAY)

    assert len(swept) == len(run_ids)
    assert len(yields) == len(run_ids)
    assert not any((workspace.runs_dir / run_id / "outputs").exists() for run_id in run_ids)


def test_the_sweep_rests_after_each_full_batch(history, tmp_path, monkeypatch) -> None:
    store, _ = history
    rests: list[float] = []
    monkeypatch.setattr(retention.time, "sleep", rests.append)

    sweep_outputs(store, Workspace(tmp_path / "runs"), DAY)

    # Two full batches, each followed by a rest; the last, short batch ends the pass.
    assert len(rests) == 2
    assert all(rest > 0 for rest in rests)
