"""How execute_run maps engine endings to states (fake engine processes; error paths only)."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.core import executor_deps
from toolchest_wes.core.executor import ExecutorDeps, execute_run
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import EXIT_INTERNAL_ERROR, LaunchSpec
from toolchest_wes.engines.cwltool_engine import CwltoolEngine
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord, StoreUnavailableError
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


def run(
    tmp_path: Path, launcher: Any, engine: Any = None, workspace: Workspace | None = None
) -> RunRecord:
    store = EmbeddedStateStore(":memory:")
    workspace = workspace or Workspace(tmp_path)
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


def stored_run(tmp_path: Path, state: State) -> tuple[EmbeddedStateStore, ExecutorDeps]:
    """A store holding run ``r`` in ``state``, and executor deps over it with a launcher
    whose engines exit 0."""
    store = EmbeddedStateStore(":memory:")
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")
    store.create_run(RunRecord("r", state, request, created_at=time.time()))
    deps = ExecutorDeps(
        store=store,
        workspace=Workspace(tmp_path),
        engine_for=lambda record: CwltoolEngine(),
        launcher=FakeLauncher(0),
    )
    return store, deps


def test_a_run_that_is_not_queued_is_left_alone(tmp_path: Path) -> None:
    store, deps = stored_run(tmp_path, State.CANCELING)
    execute_run("r", deps)  # a duplicate delivery of a run cancelled while queued
    assert store.get_state("r") is State.CANCELED
    store.close()


@pytest.mark.parametrize("where", ["engine", "tool"])
def test_a_full_disk_is_a_system_error_naming_the_work_directory(
    tmp_path: Path, where: str
) -> None:
    class ToolHitsFullDisk(FakeLauncher):
        def start(self, spec: LaunchSpec) -> FakeHandle:
            task = tmp_path / "r" / "tasks" / "1"
            task.mkdir(parents=True)
            (task / "stderr").write_text(
                "head: error writing 'standard output': No space left on device\n"
            )
            return super().start(spec)

    if where == "engine":
        launcher = FakeLauncher(
            1, stderr="ERROR Unhandled error:\n  [Errno 28] No space left on device\n"
        )
    else:
        launcher = ToolHitsFullDisk(1, stderr="WARNING [job fill.cwl] completed permanentFail\n")
    record = run(tmp_path, launcher)
    assert record.state is State.SYSTEM_ERROR
    assert any(
        "no space left on device" in line and str(tmp_path) in line for line in record.system_logs
    ), record.system_logs


class FlakyStore:
    """The run's store, failing every call for a while as a restarting Redis does."""

    def __init__(self, store: EmbeddedStateStore, failing_calls: int) -> None:
        self.store = store
        self.failing_calls = failing_calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if name not in ("get_state", "touch_lease", "transition"):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.failing_calls > 0:
                self.failing_calls -= 1
                raise StoreUnavailableError("Redis state store: connection refused")
            return method(*args, **kwargs)

        return call


def test_a_store_outage_while_running_does_not_end_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor_deps, "_STORE_RETRY_S", 0.01)
    store = EmbeddedStateStore(":memory:")
    workspace = Workspace(tmp_path)
    workspace.stage("r", [], {})
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")
    store.create_run(RunRecord("r", State.QUEUED, request, created_at=time.time()))

    class SlowHandle(FakeHandle):
        polls = 0

        def wait(self, timeout: float | None = None) -> int | None:
            self.polls += 1
            if self.polls == 6:  # the engine is running when the store goes away
                flaky.failing_calls = 8
            return 1 if self.polls > 6 else None

    class Launcher(FakeLauncher):
        def start(self, spec: LaunchSpec) -> FakeHandle:
            spec.stderr.write_text("failed in the workflow\n")
            return SlowHandle(None)

    flaky = FlakyStore(store, 0)
    deps = ExecutorDeps(
        store=flaky,  # type: ignore[arg-type]
        workspace=workspace,
        engine_for=lambda record: CwltoolEngine(),
        launcher=Launcher(None),
        poll_interval_s=0.01,
        lease_ttl_s=0.04,
    )
    execute_run("r", deps)
    # The polls and the final transition failed for a while; the run still ends as the
    # engine did (the workflow failed), recorded once the store answered again.
    assert flaky.failing_calls == 0
    assert store.get_state("r") is State.EXECUTOR_ERROR
    store.close()


def _queued(tmp_path: Path) -> tuple[EmbeddedStateStore, Workspace]:
    store = EmbeddedStateStore(":memory:")
    workspace = Workspace(tmp_path)
    workspace.stage("r", [], {})
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")
    store.create_run(RunRecord("r", State.QUEUED, request, created_at=time.time()))
    return store, workspace


def test_a_store_outage_at_start_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task arrives while Redis restarts: the start is retried, and the run runs."""
    monkeypatch.setattr(executor_deps, "_STORE_RETRY_S", 0.01)
    store, workspace = _queued(tmp_path)
    flaky = FlakyStore(store, 5)
    deps = ExecutorDeps(
        store=flaky,  # type: ignore[arg-type]
        workspace=workspace,
        engine_for=lambda record: CwltoolEngine(),
        launcher=FakeLauncher(0, stdout="{}"),
        poll_interval_s=0.01,
    )
    execute_run("r", deps)
    assert flaky.failing_calls == 0
    assert store.get_state("r") is State.COMPLETE
    store.close()


class DyingStore:
    """The run's store, answering ``answers`` calls and then none, as a Redis that is gone."""

    def __init__(self, store: EmbeddedStateStore, answers: int) -> None:
        self.store = store
        self.answers = answers

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.answers <= 0:
                raise StoreUnavailableError("Redis state store: connection refused")
            self.answers -= 1
            return method(*args, **kwargs)

        return call


@pytest.mark.parametrize("answers", [0, 2], ids=["before-start", "after-start"])
def test_a_store_that_stays_away_leaves_the_run_to_its_lease_or_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answers: int
) -> None:
    """The store goes away for good before the engine starts: the run is not failed, and
    it is never in INITIALIZING without a lease that runs out (for the reconcile loop)."""
    monkeypatch.setattr(executor_deps, "_STORE_RETRY_S", 0.01)
    monkeypatch.setattr(executor_deps, "_STORE_PATIENCE_S", 0.05)
    store, workspace = _queued(tmp_path)
    deps = ExecutorDeps(
        store=DyingStore(store, answers),  # type: ignore[arg-type]
        workspace=workspace,
        engine_for=lambda record: CwltoolEngine(),
        launcher=FakeLauncher(0, stdout="{}"),
        poll_interval_s=0.01,
        lease_ttl_s=0.01,
    )
    execute_run("r", deps)  # returns: nothing can be recorded without a store

    record = store.get_run("r")
    assert record is not None and not record.system_logs
    if answers == 0:
        assert record.state is State.QUEUED
    else:  # the start and the record read were answered, the move to RUNNING was not
        assert record.state is State.INITIALIZING
        time.sleep(0.05)
        assert store.expired_leases() == ["r"]
    store.close()


class NeverLauncher(FakeLauncher):
    """A launcher a run must not reach."""

    def start(self, spec: LaunchSpec) -> FakeHandle:
        raise AssertionError("the engine was started")


def test_a_run_whose_files_are_gone_ends_without_starting(tmp_path: Path) -> None:
    class GoneWorkspace(Workspace):
        def stage(self, run_id: str, *args: Any, **kwargs: Any) -> Any:
            staged = super().stage(run_id, *args, **kwargs)
            self.remove(run_id)  # as a submission answered 503 leaves it
            return staged

    ended = run(tmp_path, NeverLauncher(0), workspace=GoneWorkspace(tmp_path))
    assert ended.state is State.SYSTEM_ERROR
    assert any("files are missing" in line for line in ended.system_logs)
