"""GET /runs/{id}/status?wait=: an answer held until the run moves (extension), both modes."""

from __future__ import annotations

import threading
from typing import Any

from tests.conftest import API, CWL, EXAMPLES, Wes, assert_error
from toolchest_wes.core.status_waits import MAX_WAIT_S
from toolchest_wes.models import State

HELLO = EXAMPLES / "hello" / "hello.cwl"


def _status(wes: Wes, run_id: str, query: str) -> Any:
    return wes.client.get(f"{API}/runs/{run_id}/status?{query}")


def test_service_info_says_status_requests_can_wait(wes: Wes) -> None:
    info = wes.client.get(f"{API}/service-info").get_json()
    assert info["toolchest_wes_status_wait"] == {
        "parameters": ["wait", "changed_from"],
        "max_wait_s": MAX_WAIT_S,
    }


def test_a_waiting_status_request_answers_once_the_run_has_ended(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {"message": "held"})
    # A 30 s wait ends early only when the run does: a hello-world takes well under a second.
    response = _status(wes, run_id, "wait=30")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"run_id": run_id, "state": "COMPLETE"}


def test_changed_from_answers_the_next_state(wes: Wes) -> None:
    run_id = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    try:
        seen = State.QUEUED
        states = [seen]
        while seen is not State.RUNNING:
            response = _status(wes, run_id, f"wait=30&changed_from={seen.value}")
            assert response.status_code == 200, response.get_data(as_text=True)
            seen = State(response.get_json()["state"])
            assert seen is not states[-1] and not seen.is_terminal
            states.append(seen)
        # The cancel, seen by a request that was already waiting on RUNNING.
        answers: list[Any] = []
        waiting = threading.Thread(
            target=lambda: answers.append(_status(wes, run_id, "wait=30&changed_from=RUNNING"))
        )
        waiting.start()
        wes.client.post(f"{API}/runs/{run_id}/cancel")
        waiting.join(timeout=60)
        assert answers[0].get_json()["state"] in ("CANCELING", "CANCELED")
    finally:
        wes.client.post(f"{API}/runs/{run_id}/cancel")
        wes.wait(run_id)


def test_a_wait_on_an_ended_run_or_with_zero_answers_at_once(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {"message": "done"})
    assert wes.wait(run_id) is State.COMPLETE
    for query in ("wait=30&changed_from=COMPLETE", "wait=0", "wait=30&changed_from=RUNNING"):
        response = _status(wes, run_id, query)
        assert response.get_json() == {"run_id": run_id, "state": "COMPLETE"}, query


def test_bad_wait_parameters_get_short_clear_errors(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {"message": "x"})
    cases = {
        "wait=31": "greater than the maximum of 30",
        "wait=-1": "less than the minimum of 0",
        "wait=soon": "expected 'number' for query parameter 'wait'",
        "wait=1&changed_from=DONE": "'DONE' is not one of",
        "wait=1&until=COMPLETE": "Extra query parameter(s) until not in spec",
    }
    for query, fragment in cases.items():
        body = assert_error(_status(wes, run_id, query), 400, fragment)
        assert "Failed validating" not in body["msg"], query
        assert len(body["msg"]) < 300, body["msg"]
    assert_error(_status(wes, "no-such-run", "wait=1"), 404, "no-such-run")
