"""EngineAdoption: what the restart recovery does with each engine an earlier process left,
with real processes standing for the engines."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.core.executor import ExecutorDeps
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.engine_record import write_record
from toolchest_wes.engines.process import SubprocessLauncher
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore
from toolchest_wes.wiring.embedded import EngineAdoption, restart_recovery

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")


@pytest.fixture
def engine() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def adoption(tmp_path: Path, store: Any = None, **fields: Any) -> EngineAdoption:
    deps = ExecutorDeps(
        store=store,
        workspace=Workspace(tmp_path / "runs"),
        engine_for=lambda record: None,  # type: ignore[arg-type,return-value]
        launcher=SubprocessLauncher(),
        cancel_grace_s=0.1,
        engine_records=tmp_path / "engines",
        **fields,
    )
    return EngineAdoption(deps)


def record(run_id: str, state: State) -> RunRecord:
    return RunRecord(run_id, state, REQUEST, created_at=time.time())


def test_a_running_engine_with_a_reaper_is_adopted_and_submitted(tmp_path, engine):
    write_record(tmp_path / "engines" / "r.json", engine.pid, reaper=os.getpid())
    submitted: list[str] = []

    answer = adoption(tmp_path).take_over(record("r", State.RUNNING), submitted.append)

    assert answer is None and submitted == ["r"]
    assert engine.poll() is None


def test_a_cancelling_run_has_its_engine_stopped(tmp_path, engine):
    # No reaper: this test would not record the exit that the stop waits for.
    write_record(tmp_path / "engines" / "r.json", engine.pid, reaper=None)

    answer = adoption(tmp_path).take_over(record("r", State.CANCELING), print)

    assert answer == f"its engine process (pid {engine.pid}) was stopped"
    assert engine.wait(30) == -signal.SIGTERM
    assert not list((tmp_path / "engines").iterdir())


def test_an_engine_nothing_reaps_is_stopped_and_named(tmp_path, engine):
    write_record(tmp_path / "engines" / "r.json", engine.pid, reaper=None)

    answer = adoption(tmp_path).take_over(record("r", State.RUNNING), print)

    assert answer is not None
    assert "not started by the zygote" in answer and answer.endswith("; it was stopped")
    assert engine.wait(30) == -signal.SIGTERM


def test_a_run_without_a_record_lost_its_engine(tmp_path):
    answer = adoption(tmp_path).take_over(record("r", State.RUNNING), print)

    assert answer == "no record of its engine process was left"


def test_the_engine_of_a_run_no_longer_active_is_stopped(tmp_path, engine):
    write_record(tmp_path / "engines" / "gone.json", engine.pid, reaper=None)
    write_record(tmp_path / "engines" / "active.json", os.getpid(), reaper=None)

    stopped = adoption(tmp_path).stop_strays({"active"})

    assert stopped == ["gone"]
    assert engine.wait(30) == -signal.SIGTERM
    assert [p.name for p in (tmp_path / "engines").iterdir()] == ["active.json"]


class Submitted:
    """A runner that only remembers what it was given."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []

    def submit(self, run_id: str) -> None:
        self.run_ids.append(run_id)


def test_a_starting_run_is_queued_again_unless_an_engine_is_recorded(tmp_path, engine):
    store = EmbeddedStateStore(tmp_path / "runs.sqlite")
    try:
        for run_id in ("starting", "odd"):
            store.create_run(record(run_id, State.INITIALIZING))
        # The executor records an engine only after the move to RUNNING: one recorded for an
        # INITIALIZING run is a leftover, and the run must not start next to it.
        write_record(tmp_path / "engines" / "odd.json", engine.pid, reaper=None)
        runner = Submitted()
        made = adoption(tmp_path, store)

        assert made.has_engine(record("odd", State.INITIALIZING))
        assert not made.has_engine(record("starting", State.INITIALIZING))
        restart_recovery(store, runner, made)()  # type: ignore[arg-type]

        assert runner.run_ids == ["starting"]
        assert store.get_state("starting") is State.QUEUED
        assert store.get_state("odd") is State.SYSTEM_ERROR
        # The ended run's engine is a stray now, stopped with its record.
        assert engine.wait(30) == -signal.SIGTERM
        assert not list((tmp_path / "engines").iterdir())
    finally:
        store.close()
