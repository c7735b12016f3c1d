"""GET /runs: newest first, keyset pages that stay stable while runs arrive, and filters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import API, CWL, EXAMPLES, Wes
from toolchest_wes.models import State

HELLO = EXAMPLES / "hello" / "hello.cwl"


def pages(client: Any, query: str = "page_size=2") -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    token = ""
    while True:
        body = client.get(f"{API}/runs?{query}&page_token={token}").get_json()
        out.append(body["runs"])
        token = body["next_page_token"]
        if not token:
            return out


@pytest.mark.integration
def test_listing_pages_newest_first_and_is_stable(wes: Wes) -> None:
    ids = [wes.submit(HELLO, {}, tags={"n": str(i)}) for i in range(5)]
    first = wes.get("/runs?page_size=2").get_json()
    assert [r["run_id"] for r in first["runs"]] == ids[::-1][:2]
    for run in first["runs"]:
        assert set(run) >= {"run_id", "state", "tags"}
    newer = wes.submit(HELLO, {})
    rest: list[str] = []
    token = first["next_page_token"]
    while token:
        body = wes.get(f"/runs?page_size=2&page_token={token}").get_json()
        rest += [r["run_id"] for r in body["runs"]]
        token = body["next_page_token"]
    assert rest == ids[::-1][2:], "a new run must not shift later pages"
    assert wes.get("/runs?page_size=1").get_json()["runs"][0]["run_id"] == newer


@pytest.mark.integration
def test_filters_by_state_and_tag(wes: Wes) -> None:
    ok = [wes.submit(HELLO, {}, tags={"batch": "a"}) for _ in range(3)]
    bad = wes.submit(CWL / "fail.cwl", {}, tags={"batch": "b"})
    for run_id in [*ok, bad]:
        wes.wait(run_id)
    failed = wes.get("/runs?state=executor_error").get_json()["runs"]
    assert [r["run_id"] for r in failed] == [bad]
    tagged = [r["run_id"] for page in pages(wes.client, "page_size=2&tag=batch:a") for r in page]
    assert tagged == ok[::-1]
    both = wes.get("/runs?state=COMPLETE&tag=batch:b").get_json()
    assert both == {"runs": [], "next_page_token": ""}
    summary = wes.get("/runs?page_size=1").get_json()["runs"][0]
    assert summary["state"] == State.EXECUTOR_ERROR
    assert summary["tags"] == {"batch": "b"}
    assert summary["start_time"] and summary["end_time"]


def test_empty_listing(client: Any) -> None:
    assert client.get(f"{API}/runs").get_json() == {"runs": [], "next_page_token": ""}
