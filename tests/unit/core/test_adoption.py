"""How adopt_run follows an engine left by an earlier process (fake engine handles)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.unit.core.test_executor import FakeHandle, FakeLauncher
from toolchest_wes.core.adoption import adopt_run
from toolchest_wes.core.executor import ExecutorDeps
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.cwltool_engine import CwltoolEngine
from toolchest_wes.engines.process import ProcessLostError
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore


def adopted(tmp_path: Path, handle: Any, running_for_s: float, **params: str) -> RunRecord:
    """The run after ``adopt_run`` followed ``handle``, an engine left by another process."""
    store = EmbeddedStateStore(":memory:")
    workspace = Workspace(tmp_path)
    workspace.stage("r", [], {})
    request = RunRequest(
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url="w.cwl",
        workflow_engine_parameters=params,
    )
    store.create_run(RunRecord("r", State.RUNNING, request, created_at=time.time()))
    deps = ExecutorDeps(
        store=store,
        workspace=workspace,
        engine_for=lambda record: CwltoolEngine(),
        launcher=FakeLauncher(0),
        poll_interval_s=0.01,
    )
    adopt_run("r", deps, handle, running_for_s)
    record = store.get_run("r")
    store.close()
    assert record is not None
    return record


def test_an_adopted_run_ends_as_its_engine_did(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "stdout.log").write_text("{}")

    record = adopted(tmp_path, FakeHandle(0, pid=77), 5.0)

    assert record.state is State.COMPLETE and record.outputs == {}
    assert record.system_logs == [
        "the server's worker process restarted while the run was RUNNING; the new one took "
        "over its engine process (pid 77)"
    ]


def test_an_adopted_run_counts_its_runtime_from_the_engine_start(tmp_path: Path) -> None:
    record = adopted(tmp_path, FakeHandle(None), 3600.0, runtime="60")

    assert record.state is State.EXECUTOR_ERROR
    assert "went over its runtime limit of 60 s" in record.system_logs[-1]


def test_an_adopted_engine_lost_without_an_exit_is_a_system_error(tmp_path: Path) -> None:
    class Lost(FakeHandle):
        def wait(self, timeout: float | None = None) -> int | None:
            raise ProcessLostError("its engine process (pid 4242) ended without a recorded exit")

    record = adopted(tmp_path, Lost(None), 1.0)

    assert record.state is State.SYSTEM_ERROR
    assert record.system_logs == [
        "the server's worker process restarted while the run was RUNNING; its engine process "
        "(pid 4242) ended without a recorded exit"
    ]
