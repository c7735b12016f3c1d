"""GET /runs?state=...: several states and named groups, over HTTP, in both modes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import API, assert_error
from toolchest_wes.models import STATE_GROUPS, RunRequest, State
from toolchest_wes.server.app import get_state
from toolchest_wes.store.base import RunRecord

#: The state of each run stored, oldest first: every state twice, interleaved.
STORED = [state for _ in range(2) for state in State]


@pytest.fixture
def stored(app: Any) -> list[tuple[str, State]]:
    """Runs in every state, put straight into the app's store (no workflow runs)."""
    store = get_state(app).store
    runs = []
    for i, state in enumerate(STORED):
        request = RunRequest(
            workflow_url="hello.cwl", workflow_type="CWL", workflow_type_version="v1.2"
        )
        store.create_run(
            RunRecord(run_id=f"r{i:02d}", state=state, request=request, created_at=time.time())
        )
        runs.append((f"r{i:02d}", state))
    return runs


def listed(client: Any, query: str) -> list[str]:
    """Every run id of the listing, following next_page_token with pages of 3."""
    ids: list[str] = []
    token = ""
    while True:
        response = client.get(f"{API}/runs?page_size=3&{query}&page_token={token}")
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        ids += [run["run_id"] for run in body["runs"]]
        token = body["next_page_token"]
        if not token:
            return ids


@pytest.mark.parametrize(
    ("query", "states"),
    [
        ("state=failed", STATE_GROUPS["failed"]),
        ("state=active", STATE_GROUPS["active"]),
        ("state=finished", STATE_GROUPS["finished"]),
        ("state=canceled", STATE_GROUPS["canceled"]),
        ("state=complete,Executor_Error", {State.COMPLETE, State.EXECUTOR_ERROR}),
        ("state=RUNNING&state=canceled", {State.RUNNING, *STATE_GROUPS["canceled"]}),
        ("state=CANCELED", {State.CANCELED}),
    ],
)
def test_state_filter_takes_groups_and_lists(client, stored, query, states):
    wanted = [run_id for run_id, state in reversed(stored) if state in states]

    assert listed(client, query) == wanted


def test_unknown_state_name_is_refused(client, stored):
    response = client.get(f"{API}/runs?state=failed,broken")

    body = assert_error(response, 400, "'broken'", "EXECUTOR_ERROR", "active", "canceled")
    assert "failed'" not in body["msg"]
