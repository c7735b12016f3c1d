"""The output listing says whether it is final: an active run's empty list is not "no outputs"."""

from __future__ import annotations

import pytest

from tests.conftest import CWL, EXAMPLES, Wes
from toolchest_wes.models import State

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"
ACTIVE = {State.QUEUED, State.INITIALIZING, State.RUNNING, State.CANCELING}


def test_an_active_runs_listing_is_marked_incomplete_with_its_state(wes: Wes) -> None:
    run_id = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    try:
        response = wes.get(f"/runs/{run_id}/outputs")
        # An answer, not a 409: clients that poll the listing keep working.
        assert response.status_code == 200
        listing = response.get_json()
        assert listing["complete"] is False
        assert State(listing["state"]) in ACTIVE
        assert listing["files"] == [] and listing["total_size"] == 0
    finally:
        wes.client.post(f"/ga4gh/wes/v1/runs/{run_id}/cancel")
    assert wes.wait(run_id) is State.CANCELED
    ended = wes.get(f"/runs/{run_id}/outputs").get_json()
    assert ended["complete"] is True and ended["state"] == "CANCELED"


def test_a_finished_runs_listing_is_complete_whatever_the_outcome(wes: Wes) -> None:
    done = wes.submit(HELLO, {"message": "listed"})
    failed = wes.submit(CWL / "fail.cwl")
    assert wes.wait(done) is State.COMPLETE
    assert wes.wait(failed) is State.EXECUTOR_ERROR

    listing = wes.get(f"/runs/{done}/outputs").get_json()
    assert (listing["complete"], listing["state"]) == (True, "COMPLETE")
    assert [f["path"] for f in listing["files"]] == ["hello.txt"]
    nothing = wes.get(f"/runs/{failed}/outputs").get_json()
    assert (nothing["complete"], nothing["state"]) == (True, "EXECUTOR_ERROR")
    assert nothing["files"] == []
