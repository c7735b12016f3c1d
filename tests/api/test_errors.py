"""Bad input gets a 4xx ErrorResponse that says what to fix, never a 500 or a traceback."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API, CWL, EXAMPLES, Wes, assert_error
from toolchest_wes.models import State
from toolchest_wes.store.base import StoreUnavailableError

HELLO = EXAMPLES / "hello" / "hello.cwl"


def post(client: Any, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "hello.cwl",
        "workflow_params": "{}",
        "workflow_attachment": [(io.BytesIO(HELLO.read_bytes()), "hello.cwl")],
    }
    for key, value in fields.items():
        if value is None:
            data.pop(key, None)
        elif key == "workflow_attachment":
            # Fresh streams per request: the test client closes what it sends.
            data[key] = [(io.BytesIO(content), name) for content, name in value]
        else:
            data[key] = value
    return client.post(f"{API}/runs", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"workflow_params": "{not json"}, ["workflow_params", "not valid JSON"]),
        ({"workflow_params": "[1, 2]"}, ["workflow_params", "JSON object"]),
        ({"tags": '{"a": '}, ["tags", "not valid JSON"]),
        ({"tags": json.dumps({"a": {"b": 1}})}, ["tags['a']", "string"]),
        ({"workflow_engine_parameters": "nope"}, ["workflow_engine_parameters"]),
        ({"workflow_type": "WDL"}, ["'WDL'", "CWL (v1.0, v1.1, v1.2)"]),
        ({"workflow_type": None}, ["workflow_type is missing"]),
        ({"workflow_type_version": "v9.9"}, ["'v9.9'", "v1.0, v1.1, v1.2"]),
        ({"workflow_type_version": None}, ["workflow_type_version is missing"]),
        ({"workflow_url": None}, ["workflow_url is missing"]),
        ({"workflow_url": "other.cwl"}, ["'other.cwl'", "hello.cwl"]),
        ({"workflow_url": "file:///etc/passwd"}, ["file://"]),
        ({"workflow_url": "ftp://example.org/x.cwl"}, ["unsupported scheme"]),
        ({"workflow_url": "../hello.cwl"}, ["'..'"]),
        ({"workflow_attachment": None}, ["no workflow_attachment"]),
        (
            {"workflow_attachment": [(b"x", "../evil.cwl")]},
            ["'../evil.cwl'", "'..'"],
        ),
        (
            {"workflow_attachment": [(b"x", "/etc/evil.cwl")]},
            ["'/etc/evil.cwl'", "absolute"],
        ),
        (
            {
                "workflow_params": json.dumps(
                    {"f": {"class": "File", "location": "file:///etc/passwd"}}
                )
            },
            ["workflow_params.f.location", "attach"],
        ),
        (
            {"workflow_params": json.dumps({"f": {"class": "File", "path": "/etc/passwd"}})},
            ["workflow_params.f.path"],
        ),
        (
            {"workflow_params": json.dumps({"f": [{"class": "File", "path": "../x"}]})},
            ["workflow_params.f[0].path", "'..'"],
        ),
        (
            {"workflow_engine_parameters": json.dumps({"--overrides": "/tmp/o.yml"})},
            ["'--overrides'", "not allowed"],
        ),
        (
            {"workflow_engine_parameters": json.dumps({"--user-space-docker-cmd": "x"})},
            ["'--user-space-docker-cmd'"],
        ),
        (
            {"workflow_engine_parameters": json.dumps({"--on-error": "explode"})},
            ["'--on-error'", "stop, continue"],
        ),
        (
            {"workflow_engine_parameters": json.dumps({"--parallel": "maybe"})},
            ["'--parallel'", "true"],
        ),
        ({"workflow_engine": "toil"}, ["'toil'", "cwltool"]),
        ({"workflow_engine_version": "0.0.1"}, ["'0.0.1'"]),
    ],
)
def test_bad_submissions_are_400_with_a_useful_message(
    client: Any, fields: dict[str, Any], fragments: list[str]
) -> None:
    assert_error(post(client, **fields), 400, *fragments)
    listing = client.get(f"{API}/runs").get_json()
    assert listing["runs"] == [], "a refused request must not create a run"


def test_attachment_without_filename_is_400(client: Any) -> None:
    response = client.post(
        f"{API}/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": "https://example.org/x.cwl",
            "workflow_attachment": [(io.BytesIO(b"x"), "")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400


def test_toil_style_engine_parameters_are_ignored_with_a_note(wes: Wes) -> None:
    run_id = wes.submit(
        HELLO,
        {},
        engine_params={
            "--disableCaching": None,
            "--clean": "always",
            "--parallel": "true",
            # cwltest hands the runner a folder of its own machine; toil-wes-cwl-runner
            # forwards it.
            "--outdir": "/home/someone/cwltest/out",
            "--quiet": None,
        },
    )
    log = wes.log(run_id)
    notes = "\n".join(log["run_log"]["system_logs"])
    assert "'--disableCaching'" in notes and "no value" in notes
    assert "'--clean'" in notes and "not a cwltool option" in notes
    assert "'--outdir'" in notes and "client's machine" in notes
    assert log["request"]["workflow_engine_parameters"] == {
        "--clean": "always",
        "--parallel": "true",
        "--outdir": "/home/someone/cwltest/out",
    }
    assert wes.wait(run_id) == "COMPLETE"
    cmd = wes.log(run_id)["run_log"]["cmd"]
    assert "--parallel" in cmd and "/home/someone/cwltest/out" not in cmd


def test_a_file_sent_twice_with_the_same_bytes_is_stored_once(wes: Wes, client: Any) -> None:
    hello = HELLO.read_bytes()
    response = post(client, workflow_attachment=[(hello, "hello.cwl"), (hello, "./hello.cwl")])
    assert response.status_code == 200, response.get_json()
    run_id = response.get_json()["run_id"]
    assert wes.wait(run_id) == "COMPLETE"


def test_a_file_sent_twice_with_different_bytes_is_400(client: Any) -> None:
    hello = HELLO.read_bytes()
    response = post(
        client,
        workflow_attachment=[(hello, "hello.cwl"), (b"x", "lib/a.txt"), (b"y", "lib/a.txt")],
    )
    assert_error(response, 400, "'lib/a.txt'", "different contents")


def test_unknown_run_is_404_everywhere(client: Any) -> None:
    for method, path in [
        ("get", "/runs/nope"),
        ("get", "/runs/nope/status"),
        ("post", "/runs/nope/cancel"),
        ("get", "/runs/nope/tasks"),
        ("get", "/runs/nope/tasks/1"),
        ("get", "/runs/nope/stdout"),
        ("get", "/runs/nope/stderr"),
        ("get", "/runs/nope/outputs"),
        ("get", "/runs/nope/outputs/a.txt"),
        ("get", "/runs/nope/tasks/1/stdout"),
    ]:
        assert_error(getattr(client, method)(f"{API}{path}"), 404, "'nope'")


def test_unknown_task_and_output_are_404(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {})
    wes.wait(run_id)
    assert_error(wes.get(f"/runs/{run_id}/tasks/99"), 404, "'99'")
    assert_error(wes.get(f"/runs/{run_id}/outputs/missing.txt"), 404, "'missing.txt'")
    assert_error(wes.get(f"/runs/{run_id}/outputs/..%2F..%2Fruns.sqlite"), 404)
    assert_error(wes.get(f"/runs/{run_id}/outputs?archive=zip&path=nothing"), 404, "'nothing'")
    assert_error(wes.get(f"/runs/{run_id}/outputs?path=hello.txt"), 400, "archive=zip")


def test_unknown_route_and_wrong_method(client: Any) -> None:
    assert_error(client.get("/nowhere"), 404, "/nowhere", "/ga4gh/wes/v1")
    assert_error(client.get(f"{API}/nowhere"), 404)
    response = client.delete(f"{API}/service-info")
    body = assert_error(response, 405, "DELETE")
    assert "GET" in body["msg"]
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    "query",
    [
        "page_size=abc",
        "page_size=0",
        "page_size=-3",
        "page_token=garbage",
        "state=DONE",
        "tag=nocolon",
    ],
)
def test_bad_list_parameters(client: Any, query: str) -> None:
    assert_error(client.get(f"{API}/runs?{query}"), 400)


def test_bad_task_page_token(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {})
    assert_error(wes.get(f"/runs/{run_id}/tasks?page_token=%%%"), 400, "page_token")


def test_unexpected_exception_is_a_500_without_details(make_app: Any) -> None:
    app = make_app()
    service = app.app.extensions["toolchest_wes"].service

    def broken() -> None:
        raise RuntimeError("secret internal detail /var/lib/x")

    service.service_info = broken
    response = app.app.test_client().get(f"{API}/service-info")
    body = assert_error(response, 500)
    assert "secret" not in body["msg"]


def test_unknown_and_unnamed_form_fields_are_400(client: Any) -> None:
    body = assert_error(post(client, surprise="1"), 400, "'surprise'", "workflow_url")
    assert "POST /runs takes" in body["msg"]
    response = client.post(
        f"{API}/runs",
        data=b'--b\r\nContent-Disposition: form-data; name=""\r\n\r\nx\r\n--b--\r\n',
        content_type="multipart/form-data; boundary=b",
    )
    assert_error(response, 400, "(unnamed)")


def test_extra_query_parameters_are_400(client: Any) -> None:
    assert_error(client.get(f"{API}/runs/x/status?bogus=1"), 400, "bogus")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b'{"workflow_type": "CWL"}', "application/json"), (b"hello", "text/plain"), (b"", "")],
)
def test_post_runs_needs_a_form(client: Any, body: bytes, content_type: str) -> None:
    response = client.post(f"{API}/runs", data=body, content_type=content_type)
    assert_error(response, 400, "multipart/form-data")


def test_page_size_beyond_int64_is_400(client: Any) -> None:
    assert_error(client.get(f"{API}/runs?page_size=9223372036854775808"), 400, "page_size")


def test_status_fast_view_matches_the_spec(wes: Wes) -> None:
    """GetRunStatus bypasses connexion's per-request chain; its answers must not change."""
    from jsonschema import validate

    from toolchest_wes.server.spec import load_spec

    schema = load_spec()["components"]["schemas"]["RunStatus"]
    run_id = wes.submit(HELLO, {})
    response = wes.get(f"/runs/{run_id}/status")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    validate(
        response.get_json(),
        {**schema, "properties": {**schema["properties"], "state": {"type": "string"}}},
    )
    assert_error(wes.get("/runs/nope/status"), 404, "'nope'")
    assert_error(wes.get(f"/runs/{run_id}/status?x=1"), 400, "x")


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_store_that_does_not_answer_is_503_on_every_operation(make_app: Any) -> None:
    app = make_app()
    client = app.app.test_client()
    wes = Wes(client)
    run_id = wes.submit(HELLO, {})
    wes.wait(run_id)
    store = app.app.extensions["toolchest_wes"].store

    def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailableError("state database /srv/secret/runs.sqlite: database is locked")

    for name in ("create_run", "get_run", "get_state", "list_runs", "count_by_state", "ping"):
        setattr(store, name, down)
    responses = [
        client.get(f"{API}/runs"),
        client.get(f"{API}/runs/{run_id}"),
        client.get(f"{API}/runs/{run_id}/status"),
        client.post(f"{API}/runs/{run_id}/cancel"),
        client.get(f"{API}/runs/{run_id}/tasks"),
        client.get(f"{API}/service-info"),
        client.get("/health"),
        post(client),
    ]
    for response in responses:
        body = assert_error(response, 503, "not answering")
        assert "secret" not in body["msg"]
        assert response.headers["Retry-After"] == "5"
    # The refused submission left no run directory behind.
    runs_dir = app.app.extensions["toolchest_wes"].settings.runs_dir
    assert [p.name for p in runs_dir.iterdir()] == [run_id]


def test_a_task_log_that_is_gone_is_404(wes: Wes, tmp_path: Path) -> None:
    run_id = wes.submit(CWL / "shout.cwl", {"word": "ahoy"})
    assert wes.wait(run_id) is State.COMPLETE
    (task,) = wes.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]
    for log in (tmp_path / "data" / "runs" / run_id).rglob("stdout"):
        if log.parent.name == task["id"]:
            log.unlink()

    assert_error(wes.get(f"/runs/{run_id}/tasks/{task['id']}/stdout"), 404, "has no stdout")


def test_a_running_tasks_log_not_written_yet_is_empty(wes: Wes, tmp_path: Path) -> None:
    # A task is listed as it starts, before its log reaches the storage (S3: the first part
    # is sent after storage_log_interval_s); until the run ends, its log reads as empty.
    run_id = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    deadline = time.monotonic() + 60
    while not (tasks := wes.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]):
        assert time.monotonic() < deadline, "the task never showed up"
        time.sleep(0.05)
    for log in (tmp_path / "data" / "runs" / run_id).rglob("stdout"):
        if log.parent.name == tasks[0]["id"]:
            log.unlink()

    response = wes.get(f"/runs/{run_id}/tasks/{tasks[0]['id']}/stdout")

    assert response.status_code == 200 and response.get_data() == b""
    wes.client.post(f"{API}/runs/{run_id}/cancel")
    assert wes.wait(run_id) is State.CANCELED
