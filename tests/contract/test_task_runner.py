"""The one contract every ``TaskRunner`` passes, observed through the store.

A backend in ``RUNNER_BACKENDS`` builds a ``RunService`` whose runner really executes runs
(the local thread pool here; the Celery worker in distributed mode). The suite checks that
submitted runs execute exactly once, that cancel reaches them queued or running, and that a
cancelled queued run never starts.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.config import Settings
from toolchest_wes.core.executor import ExecutorDeps, execute_run
from toolchest_wes.core.service import RunService, RunSubmission
from toolchest_wes.core.tasks import read_tasks
from toolchest_wes.core.workspace import Attachment, Workspace
from toolchest_wes.engines.cwltool_engine import CwltoolEngine
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.engines.warm_launcher import WarmLauncher
from toolchest_wes.models import State
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.runner.celery_runner import CeleryTaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.store import store_from_url
from toolchest_wes.store.embedded_store import EmbeddedStateStore
from toolchest_wes.worker.app import make_celery
from toolchest_wes.worker.celery_config import new_celery_app

pytestmark = pytest.mark.integration


@dataclass
class RunnerEnv:
    service: RunService
    runner: TaskRunner

    def submit(self, workflow: Path, params: dict[str, Any]) -> str:
        return self.service.submit(
            RunSubmission(
                workflow_type="CWL",
                workflow_type_version="v1.2",
                workflow_url=workflow.name,
                workflow_params=params,
                attachments=[Attachment(workflow.name, io.BytesIO(workflow.read_bytes()))],
            )
        )

    def wait(self, run_id: str, until: Callable[[State], bool], timeout: float = 60) -> State:
        deadline = time.monotonic() + timeout
        while not until(state := self.service.get_state(run_id)):
            assert time.monotonic() < deadline, f"{run_id} still {state}"
            time.sleep(0.02)
        return state


def _local(
    request: pytest.FixtureRequest, tmp_path: Path, launcher: WarmLauncher, workers: int
) -> tuple[RunnerEnv, Any]:
    store = EmbeddedStateStore(tmp_path / "runs.sqlite")
    workspace = Workspace(tmp_path / "runs")
    registry = EngineRegistry([CwltoolEngine()])
    deps = ExecutorDeps(
        store=store,
        workspace=workspace,
        engine_for=lambda record: registry.engines[0],
        launcher=launcher,
        poll_interval_s=0.05,
        cancel_grace_s=0.5,
    )
    runner = LocalTaskRunner(lambda run_id: execute_run(run_id, deps), workers=workers)
    env = RunnerEnv(RunService(store, runner, registry, workspace), runner)

    def close() -> None:
        runner.close()
        store.close()

    return env, close


def _celery(
    request: pytest.FixtureRequest, tmp_path: Path, launcher: WarmLauncher, workers: int
) -> tuple[RunnerEnv, Any]:
    """A real Celery worker (threads, in this process) on the session's real Redis."""
    server = request.getfixturevalue("redis_server")
    settings = Settings(
        data_dir=tmp_path,
        redis_url=server.url,
        redis_prefix=f"contract-{uuid.uuid4().hex[:10]}",
        container_runtime="none",
        poll_interval_s=0.05,
        cancel_grace_s=0.5,
    )
    store = store_from_url(settings.effective_store_url, prefix=settings.redis_prefix)
    worker_app = make_celery(settings, launcher=launcher)
    stack = contextlib.ExitStack()
    stack.callback(worker_app.conf.toolchest_wes_context.close)
    stack.enter_context(
        start_worker(worker_app, pool="threads", concurrency=workers, perform_ping_check=False)
    )
    runner = CeleryTaskRunner(new_celery_app(settings))
    registry = EngineRegistry([CwltoolEngine()])
    env = RunnerEnv(RunService(store, runner, registry, Workspace(settings.runs_dir)), runner)

    def close() -> None:
        stack.close()
        runner.close()
        store.close()

    return env, close


RUNNER_BACKENDS = {"local": _local, "celery": _celery}


@pytest.fixture(params=sorted(RUNNER_BACKENDS))
def make_env(
    request: pytest.FixtureRequest, tmp_path: Path, warm_launcher: WarmLauncher
) -> Iterator[Callable[[int], RunnerEnv]]:
    closers: list[Callable[[], None]] = []

    def make(workers: int = 2) -> RunnerEnv:
        env, close = RUNNER_BACKENDS[request.param](
            request, tmp_path / str(len(closers)), warm_launcher, workers
        )
        closers.append(close)
        return env

    yield make
    for close in closers:
        close()


def test_submitted_runs_execute_exactly_once(make_env: Callable[[int], RunnerEnv]) -> None:
    env = make_env(2)
    run_ids = [env.submit(EXAMPLES / "hello" / "hello.cwl", {"message": str(i)}) for i in range(6)]
    for run_id in run_ids:
        assert env.wait(run_id, lambda s: s.is_terminal) is State.COMPLETE
        tasks = read_tasks(env.service.workspace.run_dir(run_id).task_index)
        assert len(tasks) == 1, "the run executed more than once"


def test_a_run_is_sent_without_a_result_subscription(
    request: pytest.FixtureRequest, tmp_path: Path, warm_launcher: WarmLauncher
) -> None:
    """Sending a run subscribes the sender to no result channel in Redis.

    Nobody waits for a Celery result. A subscription per run (and its unsubscription) would
    be two more Redis commands on every ``POST /runs``, and any that were not undone would pile
    up for as long as the API lives.
    """
    env, close = _celery(request, tmp_path, warm_launcher, 2)
    client = redis.Redis.from_url(request.getfixturevalue("redis_server").url)

    def subscribes() -> int:
        stats = client.info("commandstats").get("cmdstat_subscribe", {"calls": 0})
        return int(stats["calls"])

    try:
        hello = EXAMPLES / "hello" / "hello.cwl"
        # The first run starts what subscribes once per process (the store's change feed).
        assert env.wait(env.submit(hello, {}), lambda s: s.is_terminal) is State.COMPLETE
        before = subscribes()
        run_ids = [env.submit(hello, {}) for _ in range(10)]
        for run_id in run_ids:
            assert env.wait(run_id, lambda s: s.is_terminal) is State.COMPLETE
        assert subscribes() == before
    finally:
        close()


def test_cancel_reaches_a_queued_run_before_it_starts(make_env: Callable[[int], RunnerEnv]) -> None:
    env = make_env(1)
    blocker = env.submit(CWL / "sleep.cwl", {"seconds": 60})
    env.wait(blocker, lambda s: s is State.RUNNING)
    queued = env.submit(EXAMPLES / "hello" / "hello.cwl", {})
    assert env.service.cancel(queued) is State.CANCELED
    assert env.service.cancel(blocker) is State.CANCELING
    assert env.wait(blocker, lambda s: s.is_terminal) is State.CANCELED
    time.sleep(0.3)  # give the runner time to (wrongly) pick the cancelled run up
    record = env.service.get_run(queued)
    assert record.state is State.CANCELED
    assert record.start_time is None


def test_cancel_reaches_a_running_run(make_env: Callable[[int], RunnerEnv]) -> None:
    env = make_env(2)
    run_id = env.submit(CWL / "sleep.cwl", {"seconds": 60})
    env.wait(run_id, lambda s: s is State.RUNNING)
    env.service.cancel(run_id)
    assert env.wait(run_id, lambda s: s.is_terminal, timeout=10) is State.CANCELED
