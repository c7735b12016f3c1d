"""DELETE /runs/{run_id}: a finished run's files and record go; an active run answers 409."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import API, CWL, EXAMPLES, Wes, assert_error
from toolchest_wes.models import State

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"


def _counts(wes: Wes) -> dict[str, int]:
    info = wes.get("/service-info").get_json()
    return info["system_state_counts"]  # type: ignore[no-any-return]


def test_delete_a_finished_run(wes: Wes, app: Any) -> None:
    kept = wes.submit(HELLO, {"message": "kept"}, tags={"batch": "b"})
    gone = wes.submit(HELLO, {"message": "gone"}, tags={"batch": "b"})
    assert wes.wait(kept) is State.COMPLETE
    assert wes.wait(gone) is State.COMPLETE
    task_id = wes.get(f"/runs/{gone}/tasks").get_json()["task_logs"][0]["id"]
    run_dir = app.app.extensions["toolchest_wes"].settings.runs_dir / gone
    assert run_dir.is_dir()
    before = _counts(wes)

    response = wes.client.delete(f"{API}/runs/{gone}")

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"run_id": gone}
    assert not run_dir.exists()
    for path in (
        "",
        "/status",
        "/tasks",
        f"/tasks/{task_id}",
        f"/tasks/{task_id}/stdout",
        "/stdout",
        "/stderr",
        "/outputs",
        "/outputs/hello.txt",
    ):
        assert_error(wes.get(f"/runs/{gone}{path}"), 404)
    assert_error(wes.client.post(f"{API}/runs/{gone}/cancel"), 404, gone)
    assert_error(wes.client.delete(f"{API}/runs/{gone}"), 404, gone)
    listed = [r["run_id"] for r in wes.get("/runs").get_json()["runs"]]
    assert gone not in listed and kept in listed
    tagged = [r["run_id"] for r in wes.get("/runs?tag=batch:b").get_json()["runs"]]
    assert tagged == [kept]
    assert _counts(wes)["COMPLETE"] == before["COMPLETE"] - 1
    assert wes.get(f"/runs/{kept}/outputs/hello.txt").status_code == 200


def test_delete_a_failed_run(wes: Wes) -> None:
    run_id = wes.submit(CWL / "fail.cwl")
    assert wes.wait(run_id) is State.EXECUTOR_ERROR

    assert wes.client.delete(f"{API}/runs/{run_id}").status_code == 200

    assert_error(wes.get(f"/runs/{run_id}"), 404)


def test_delete_an_active_run_answers_409_until_it_is_cancelled(wes: Wes) -> None:
    run_id = wes.submit(CWL / "sleep.cwl", {"seconds": 60})
    wes.wait(run_id, until=lambda s: s is State.RUNNING)

    assert_error(
        wes.client.delete(f"{API}/runs/{run_id}"),
        409,
        f"run {run_id} is RUNNING; cancel it first (POST /runs/{run_id}/cancel)",
    )
    assert wes.state(run_id) is State.RUNNING

    wes.client.post(f"{API}/runs/{run_id}/cancel")
    assert wes.wait(run_id) is State.CANCELED
    assert wes.client.delete(f"{API}/runs/{run_id}").status_code == 200
    assert_error(wes.get(f"/runs/{run_id}/status"), 404)


def test_delete_an_unknown_run(wes: Wes) -> None:
    assert_error(wes.client.delete(f"{API}/runs/no-such-run"), 404, "no-such-run")
