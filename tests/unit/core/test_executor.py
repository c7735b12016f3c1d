"""How execute_run maps engine endings to states (fake engine processes; error paths only)."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.core.executor import ExecutorDeps, execute_run
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import EXIT_INTERNAL_ERROR, LaunchSpec
from toolchest_wes.engines.cwltool_engine import CwltoolEngine
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore


@dataclass
class FakeHandle:
    code: int | None
    pid: int = 4242

    def wait(self, timeout: float | None = None) -> int | None:
        return self.code

    def kill_tree(self, grace_s: float) -> None:
        self.code = -int(signal.SIGKILL)


class FakeLauncher:
    def __init__(self, code: int | None, stdout: str = "", stderr: str = "") -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def start(self, spec: LaunchSpec) -> FakeHandle:
        spec.stdout.write_text(self.stdout)
        spec.stderr.write_text(self.stderr)
        return FakeHandle(self.code)

    def close(self) -> None:
        pass


def run(tmp_path: Path, launcher: Any, engine: Any = None) -> RunRecord:
    store = EmbeddedStateStore(":memory:")
    workspace = Workspace(tmp_path)
    workspace.stage("r", [], {})
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")
    store.create_run(RunRecord("r", State.QUEUED, request, created_at=time.time()))
    deps = ExecutorDeps(
        store=store,
        workspace=workspace,
        engine_for=lambda record: engine or CwltoolEngine(),
        launcher=launcher,
        poll_interval_s=0.01,
    )
    execute_run("r", deps)
    record = store.get_run("r")
    store.close()
    assert record is not None
    return record


def test_exit_zero_completes_with_outputs(tmp_path: Path) -> None:
    outputs = {"out": {"class": "File", "location": f"file://{tmp_path}/r/outputs/a.txt"}}
    (tmp_path / "r" / "outputs").mkdir(parents=True)
    (tmp_path / "r" / "outputs" / "a.txt").write_text("hi")
    record = run(tmp_path, FakeLauncher(0, stdout=json.dumps(outputs)))
    assert record.state is State.COMPLETE
    assert record.exit_code == 0
    assert record.output_files == [
        {"path": "a.txt", "size": 2, "checksum": "sha1$c22b5f9178342609428d6f51b2c5af4c0bde6a42"}
    ]


@pytest.mark.parametrize(
    ("code", "state", "line"),
    [
        (1, State.EXECUTOR_ERROR, "exited with status 1"),
        (33, State.EXECUTOR_ERROR, "exited with status 33"),
        (EXIT_INTERNAL_ERROR, State.SYSTEM_ERROR, "engine wrapper failed"),
        (-int(signal.SIGKILL), State.SYSTEM_ERROR, "killed by signal 9 SIGKILL"),
    ],
)
def test_failures_map_to_the_right_state(
    tmp_path: Path, code: int, state: State, line: str
) -> None:
    record = run(tmp_path, FakeLauncher(code, stderr="\x1b[31mERROR boom\x1b[0m\n"))
    assert record.state is state
    assert record.exit_code == code
    logs = "\n".join(record.system_logs)
    assert line in logs
    assert "ERROR boom" in logs and "\x1b" not in logs


def test_unreadable_outputs_are_a_system_error(tmp_path: Path) -> None:
    record = run(tmp_path, FakeLauncher(0, stdout="not json"))
    assert record.state is State.SYSTEM_ERROR
    assert any("the server failed to run the workflow" in line for line in record.system_logs)


def test_a_launcher_that_cannot_start_is_a_system_error(tmp_path: Path) -> None:
    class Broken(FakeLauncher):
        def start(self, spec: LaunchSpec) -> FakeHandle:
            raise OSError(28, "No space left on device")

    record = run(tmp_path, Broken(None))
    assert record.state is State.SYSTEM_ERROR
    assert any("No space left on device" in line for line in record.system_logs)


def test_a_run_that_is_not_queued_is_left_alone(tmp_path: Path) -> None:
    store = EmbeddedStateStore(":memory:")
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")
    store.create_run(RunRecord("r", State.CANCELING, request, created_at=time.time()))
    deps = ExecutorDeps(
        store=store,
        workspace=Workspace(tmp_path),
        engine_for=lambda record: CwltoolEngine(),
        launcher=FakeLauncher(0),
    )
    execute_run("r", deps)  # a duplicate delivery of a run cancelled while queued
    assert store.get_state("r") is State.CANCELED
    store.close()
