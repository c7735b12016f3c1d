"""Restarting the embedded server loses no run and leaves none active."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest

from tests.conftest import EXAMPLES, Wes
from toolchest_wes.core.reconcile import MAX_REQUEUES
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import RunRecord

# Restart recovery is the embedded server's; distributed mode relies on leases instead.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("mode", ["embedded"], indirect=True),
]

HELLO = EXAMPLES / "hello" / "hello.cwl"


def test_restart_ends_active_runs_and_requeues_queued_ones(
    make_app: Any, make_settings: Any
) -> None:
    settings = make_settings()
    first = Wes(make_app(settings).app.test_client())
    done = first.submit(HELLO, {})
    assert first.wait(done) is State.COMPLETE
    queued = first.submit(HELLO, {"message": "after restart"})
    first.wait(queued)

    # Put the store in the state a killed server leaves behind.
    store = store_from_url(settings.effective_store_url)
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x.cwl")
    for run_id, state in [("was-running", State.RUNNING), ("was-cancelling", State.CANCELING)]:
        store.create_run(RunRecord(run_id, state, request, created_at=time.time()))
    # A run that was starting when the server died, each time it was queued again.
    requeued = [f"queued again: restart {n}" for n in range(MAX_REQUEUES)]
    store.create_run(
        RunRecord(
            "was-starting",
            State.INITIALIZING,
            request,
            created_at=time.time(),
            system_logs=requeued,
        )
    )
    store.close()

    second = Wes(make_app(settings).app.test_client())
    running = second.log("was-running")
    assert running["state"] == "SYSTEM_ERROR"
    assert any(
        "server restarted while the run was RUNNING" in line
        for line in running["run_log"]["system_logs"]
    )
    assert second.log("was-cancelling")["state"] == "CANCELED"
    starting = second.log("was-starting")
    assert starting["state"] == "SYSTEM_ERROR"
    assert f"queued again {MAX_REQUEUES} times already" in starting["run_log"]["system_logs"][-1]
    assert second.state(done) is State.COMPLETE
    assert second.state(queued) is State.COMPLETE


def test_queued_runs_survive_a_restart(make_app: Any, make_settings: Any) -> None:
    settings = make_settings()
    wes = Wes(make_app(settings).app.test_client())
    run_id = wes.submit(HELLO, {"message": "queued"})
    wes.wait(run_id)
    # Rewind the run to QUEUED as if the server died before a worker picked it up.
    conn = sqlite3.connect(settings.data_dir / "runs.sqlite")
    with conn:
        conn.execute("UPDATE runs SET state='QUEUED' WHERE run_id=?", (run_id,))
    conn.close()
    restarted = Wes(make_app(settings).app.test_client())
    assert restarted.wait(run_id) is State.COMPLETE


def test_starting_runs_are_queued_again_after_a_restart(make_app: Any, make_settings: Any) -> None:
    settings = make_settings()
    wes = Wes(make_app(settings).app.test_client())
    run_id = wes.submit(HELLO, {"message": "starting"})
    wes.wait(run_id)
    # Rewind the run to INITIALIZING as if the server died before its engine started.
    conn = sqlite3.connect(settings.data_dir / "runs.sqlite")
    with conn:
        conn.execute("UPDATE runs SET state='INITIALIZING' WHERE run_id=?", (run_id,))
    conn.close()
    restarted = Wes(make_app(settings).app.test_client())
    assert restarted.wait(run_id) is State.COMPLETE
    assert (
        "queued again: the server restarted while the run was INITIALIZING, before its engine "
        "started" in restarted.log(run_id)["run_log"]["system_logs"]
    )
