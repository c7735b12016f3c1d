"""Leases hold in every state: a run whose worker vanished is queued again if its engine never
started (INITIALIZING), and ends SYSTEM_ERROR if it had (RUNNING), within the lease plus one
reconcile interval; a QUEUED run whose message vanished is queued again and runs; and a run
whose worker lives keeps its lease however long its engine takes to start.

The runs are left exactly as a worker that died would leave them: moved to INITIALIZING or
RUNNING with a lease in the same step, and nothing renewing it. A real in-process worker and
the app's real reconcile loop do the rest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import EXAMPLES, Wes
from toolchest_wes.config import Settings
from toolchest_wes.core.workspace import Attachment
from toolchest_wes.engines.base import Launcher, LaunchSpec, ProcessHandle
from toolchest_wes.models import RunRequest, State
from toolchest_wes.server.app import get_state
from toolchest_wes.store.base import RunRecord

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("mode", ["distributed"], indirect=True),
]

HELLO = EXAMPLES / "hello" / "hello.cwl"
LEASE_S = 1.0
INTERVAL_S = 0.2


@pytest.fixture
def wes_app(make_settings: Callable[..., Settings], make_app: Callable[..., Any]) -> Any:
    settings = make_settings(
        lease_ttl_s=LEASE_S, reconcile_interval_s=INTERVAL_S, queue_lost_after_s=1
    )
    return make_app(settings)


def _abandoned(app: Any, state: State) -> str:
    """A staged hello run, left in ``state`` with a lease nobody renews, and no message."""
    app_state = get_state(app)
    run_id = str(uuid.uuid4())
    with HELLO.open("rb") as stream:
        app_state.service.workspace.stage(
            run_id, [Attachment(HELLO.name, stream)], {"message": "again"}
        )
    request = RunRequest(
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url=HELLO.name,
        workflow_params={"message": "again"},
    )
    store = app_state.store
    store.create_run(RunRecord(run_id, State.QUEUED, request, created_at=time.time()))
    if state is not State.QUEUED:
        assert store.transition(
            run_id, state, allowed_from=frozenset({State.QUEUED}), lease_ttl_s=LEASE_S
        )
    return run_id


def test_a_run_whose_worker_died_before_the_engine_started_runs_again(wes_app: Any) -> None:
    wes = Wes(wes_app.app.test_client())
    run_id = _abandoned(wes_app, State.INITIALIZING)

    assert wes.wait(run_id, timeout=60) is State.COMPLETE
    system_logs = wes.log(run_id)["run_log"]["system_logs"]
    assert any("before the engine started" in line for line in system_logs), system_logs


def test_a_run_whose_worker_died_while_running_ends_system_error(wes_app: Any) -> None:
    wes = Wes(wes_app.app.test_client())
    run_id = _abandoned(wes_app, State.RUNNING)

    assert wes.wait(run_id, timeout=60) is State.SYSTEM_ERROR
    system_logs = wes.log(run_id)["run_log"]["system_logs"]
    assert any("stopped renewing its lease while the run was RUNNING" in x for x in system_logs)


def test_a_queued_run_whose_message_was_lost_runs(wes_app: Any) -> None:
    wes = Wes(wes_app.app.test_client())
    run_id = _abandoned(wes_app, State.QUEUED)

    assert wes.wait(run_id, timeout=60) is State.COMPLETE
    system_logs = wes.log(run_id)["run_log"]["system_logs"]
    assert any("message was no longer in the queue" in line for line in system_logs)


class SlowForks:
    """The session's warm launcher, each start answered only after ``delay_s``: as the zygote
    answers the last fork requests of a burst of runs, minutes after they were sent."""

    def __init__(self, launcher: Launcher, delay_s: float) -> None:
        self.launcher = launcher
        self.delay_s = delay_s

    def start(self, spec: LaunchSpec) -> ProcessHandle:
        time.sleep(self.delay_s)
        return self.launcher.start(spec)

    def close(self) -> None:
        """The session's launcher outlives the test."""


def test_a_run_whose_engine_starts_after_several_leases_completes(
    make_settings: Callable[..., Settings], make_app: Callable[..., Any], warm_launcher: Any
) -> None:
    """The worker is alive but its forks are slow: the runs wait four leases (twenty
    reconcile passes) for their engines, RUNNING, and are never taken for lost."""
    settings = make_settings(
        lease_ttl_s=LEASE_S,
        reconcile_interval_s=INTERVAL_S,
        queue_lost_after_s=1,
        max_concurrent_runs=2,
    )
    app = make_app(settings, launcher=SlowForks(warm_launcher, 4 * LEASE_S))
    wes = Wes(app.app.test_client())
    run_ids = [wes.submit(HELLO, {"message": f"late {i}"}) for i in range(2)]

    for run_id in run_ids:
        assert wes.wait(run_id, timeout=60) is State.COMPLETE
        system_logs = wes.log(run_id)["run_log"]["system_logs"]
        assert not any("lease" in line or "queued again" in line for line in system_logs)
