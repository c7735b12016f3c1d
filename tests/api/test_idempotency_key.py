"""``Idempotency-Key`` on ``POST /runs``: one key, one run, in both modes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API, EXAMPLES, Wes, assert_error
from toolchest_wes.models import State
from toolchest_wes.server.app import get_state
from toolchest_wes.store.base import StoreUnavailableError

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"


def _post(client: Any, key: str | None, message: str = "hi") -> Any:
    data: dict[str, Any] = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": HELLO.name,
        "workflow_params": json.dumps({"message": message}),
        "workflow_attachment": [(io.BytesIO(HELLO.read_bytes()), HELLO.name)],
    }
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(
        f"{API}/runs", data=data, headers=headers, content_type="multipart/form-data"
    )


def _run_ids(wes: Wes) -> set[str]:
    return {run["run_id"] for run in wes.get("/runs?page_size=100").get_json()["runs"]}


def _run_dirs(app: Any) -> set[str]:
    runs = Path(get_state(app).settings.data_dir) / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


def test_the_same_key_returns_the_first_run_and_makes_no_second(app: Any, wes: Wes) -> None:
    first = _post(wes.client, "key-1")
    assert first.status_code == 200, first.get_data(as_text=True)
    run_id = first.get_json()["run_id"]
    # The draft's form (a quoted Structured Field string) and a bare token are one key.
    again = _post(wes.client, '"key-1"')
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.get_json()["run_id"] == run_id
    assert wes.wait(run_id) is State.COMPLETE
    assert _post(wes.client, "key-1").get_json()["run_id"] == run_id  # after it ended too

    other = _post(wes.client, "key-2").get_json()["run_id"]
    assert other != run_id
    assert _run_ids(wes) == {run_id, other}
    assert _run_dirs(app) == {run_id, other}


def test_a_key_reused_for_another_request_is_422(wes: Wes) -> None:
    run_id = _post(wes.client, "key-1", "first").get_json()["run_id"]

    body = assert_error(_post(wes.client, "key-1", "second"), 422, "Idempotency-Key", run_id)
    assert "new key" in body["msg"]
    assert _run_ids(wes) == {run_id}


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    "key", ["", '""', "x" * 256, "caf\u00e9", '"unterminated', '"a"b"', "tab\there"]
)
def test_a_malformed_key_is_400_and_makes_no_run(wes: Wes, key: str) -> None:
    # Flask's test client sends the header as Latin-1, as HTTP/1.1 would.
    assert_error(_post(wes.client, key), 400, "Idempotency-Key", "printable ASCII")
    assert _run_ids(wes) == set()


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_service_info_announces_the_header_and_its_window(
    make_app: Any, make_settings: Any
) -> None:
    app = make_app(make_settings(idempotency_window_s=600))
    info = app.app.test_client().get(f"{API}/service-info").get_json()
    assert info["toolchest_wes_idempotency"] == {"header": "Idempotency-Key", "window_s": 600}


def test_a_retry_after_an_ambiguous_503_gets_the_one_run_and_it_runs(
    app: Any, wes: Wes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store applies the create but its answer is lost (Redis died before replying): the
    POST is a 503, and the run it left has no files, so it would never execute. The retry
    with the same key gets that run, with the files it sent, and the run completes."""
    store = get_state(app).service.store
    create = store.create_run

    def applied_then_lost(record: Any, **kwargs: Any) -> str:
        create(record, **kwargs)
        raise StoreUnavailableError("connection lost before the answer")

    monkeypatch.setattr(store, "create_run", applied_then_lost)
    refused = _post(wes.client, "key-1")
    assert_error(refused, 503, "same Idempotency-Key")
    (ghost,) = _run_ids(wes)
    assert wes.state(ghost) is State.QUEUED
    assert _run_dirs(app) == set()  # its files went with the refusal: it cannot execute

    monkeypatch.setattr(store, "create_run", create)
    retried = _post(wes.client, "key-1")
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert retried.get_json()["run_id"] == ghost
    assert wes.wait(ghost) is State.COMPLETE
    assert _run_ids(wes) == {ghost}
    assert _run_dirs(app) == {ghost}


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_without_a_key_every_post_is_a_new_run(wes: Wes) -> None:
    ids = {_post(wes.client, None).get_json()["run_id"] for _ in range(2)}
    assert len(ids) == 2
