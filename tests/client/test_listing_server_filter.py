"""Which ``state=`` the SDK sends when listing runs, and how it copes with servers that refuse
or ignore it; over httpx.MockTransport."""

from __future__ import annotations

from typing import Any

import httpx

from toolchest_wes.client import State, WesClient

URL = "http://wes.test"

#: The runs every fake server holds, newest first.
RUNS = [
    {"run_id": "a", "state": "EXECUTOR_ERROR"},
    {"run_id": "b", "state": "COMPLETE"},
    {"run_id": "c", "state": "PREEMPTED"},
    {"run_id": "d", "state": "RUNNING"},
]


class FakeServer:
    """Answers GET /runs; records each request's ``state`` parameters."""

    def __init__(self, *, filters: bool, refuses_lists: bool = False) -> None:
        self.filters = filters
        self.refuses_lists = refuses_lists
        self.asked: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        names = request.url.params.get_list("state")
        self.asked.append(names)
        if self.refuses_lists and any(n.upper() not in State.__members__ for n in names):
            return httpx.Response(400, json={"msg": "not a WES state", "status_code": 400})
        runs = RUNS
        if self.filters and names:
            wanted = {"failed": {"EXECUTOR_ERROR", "SYSTEM_ERROR", "PREEMPTED"}}.get(
                names[0], {names[0].upper()}
            )
            runs = [run for run in RUNS if run["state"] in wanted]
        return httpx.Response(200, json={"runs": runs, "next_page_token": ""})


def listed(server: FakeServer, state: Any) -> list[str]:
    http = httpx.Client(transport=httpx.MockTransport(server))
    with WesClient(URL, http=http, journal=False) as wes:
        return [run.run_id for run in wes.list_runs(state=state)]


def test_a_group_goes_to_the_server_in_one_request() -> None:
    server = FakeServer(filters=True)

    assert listed(server, "failed") == ["a", "c"]
    assert server.asked == [["failed"]]


def test_several_states_go_comma_separated() -> None:
    server = FakeServer(filters=False)

    assert listed(server, ["complete", State.RUNNING]) == ["b", "d"]
    assert server.asked == [["COMPLETE,RUNNING"]]


def test_a_server_that_refuses_groups_is_asked_for_every_run() -> None:
    server = FakeServer(filters=True, refuses_lists=True)

    assert listed(server, "failed") == ["a", "c"]
    assert server.asked == [["failed"], []]


def test_a_server_that_ignores_the_filter_is_filtered_here() -> None:
    server = FakeServer(filters=False)

    assert listed(server, "failed") == ["a", "c"]
    assert listed(FakeServer(filters=False), "executor_error") == ["a"]


def test_every_state_sends_no_filter() -> None:
    server = FakeServer(filters=False)

    assert listed(server, "active,finished") == ["a", "b", "c", "d"]
    assert server.asked == [[]]
