"""Runs whose files are kept in an S3 bucket (a real moto server): submit, logs, outputs with
Range and zips, presigned redirects, DELETE and retention, and a bucket that fails."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_auth import Bearer
from tests.api.test_cwl_features import FILES_ATTACH, FILES_PARAMS
from tests.conftest import API, CWL, EXAMPLES, Wes, assert_error
from tests.moto_server import MotoServer
from toolchest_wes.config import Settings
from toolchest_wes.core import executor_deps
from toolchest_wes.core.retention import sweep_outputs
from toolchest_wes.models import State
from toolchest_wes.server.app import get_state
from toolchest_wes.server.tokens import TokenFile
from toolchest_wes.storage.base import StorageFullError, StorageUnavailableError
from toolchest_wes.store.base import StoreUnavailableError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("mode", ["embedded"], indirect=True),
]

HELLO = EXAMPLES / "hello" / "hello.cwl"


@pytest.fixture
def bucket(moto_bucket: str) -> str:
    return moto_bucket


@pytest.fixture
def stored(
    make_app: Callable[..., Any], make_settings: Callable[..., Settings], bucket: str
) -> Callable[..., tuple[Wes, Any]]:
    def make(**overrides: Any) -> tuple[Wes, Any]:
        app = make_app(make_settings(storage=f"s3://{bucket}/runs", **overrides))
        state = get_state(app)
        return Wes(app.app.test_client()), state.parts

    return make


def _wait_gone(path: Path) -> None:
    """The executor removes a run's scratch copy just after it records the ending."""
    deadline = time.monotonic() + 10
    while path.exists():
        assert time.monotonic() < deadline, f"{path} was left behind"
        time.sleep(0.02)


def _keys(parts: Any, run_id: str) -> set[str]:
    return {info.key for info in parts.files.storage.list_prefix(run_id)}


def test_a_run_keeps_its_files_in_the_bucket_and_serves_them_from_there(
    stored: Callable[..., tuple[Wes, Any]], make_settings: Callable[..., Settings]
) -> None:
    wes, parts = stored()
    run_id = wes.submit(HELLO, {"message": "from the bucket"})
    assert wes.wait(run_id) is State.COMPLETE

    keys = _keys(parts, run_id)
    assert {f"{run_id}/attachments/hello.cwl", f"{run_id}/outputs/hello.txt"} <= keys
    assert f"{run_id}/stdout.log" in keys
    # No copy is left on the server's own disk.
    _wait_gone(make_settings().runs_dir / run_id)

    log = wes.log(run_id)
    location = log["outputs"]["greeting"]["location"]
    assert location.endswith(f"/runs/{run_id}/outputs/hello.txt")
    assert "path" not in log["outputs"]["greeting"]
    download = wes.get(location.split("/ga4gh/wes/v1", 1)[1])
    assert download.data == b"from the bucket\n"
    assert 'filename="hello.txt"' in download.headers["Content-Disposition"]
    part = wes.get(f"/runs/{run_id}/outputs/hello.txt", headers={"Range": "bytes=5-7"})
    assert (part.status_code, part.data) == (206, b"the")
    assert part.headers["Content-Range"] == "bytes 5-7/16"
    late = wes.get(f"/runs/{run_id}/outputs/hello.txt", headers={"Range": "bytes=16-"})
    assert late.status_code == 416

    listing = wes.get(f"/runs/{run_id}/outputs").get_json()
    assert [(f["path"], f["size"]) for f in listing["files"]] == [("hello.txt", 16)]
    archive = wes.get(f"/runs/{run_id}/outputs?archive=zip")
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zf:
        assert zf.read("hello.txt") == b"from the bucket\n"
    assert_error(wes.get(f"/runs/{run_id}/outputs/nothing.txt"), 404, "no output")
    assert_error(wes.get(f"/runs/{run_id}/outputs/../x"), 404)

    stderr = wes.get(f"/runs/{run_id}/stderr")
    assert stderr.status_code == 200 and b"completed success" in stderr.data


def test_folders_and_task_logs_come_from_the_bucket(
    stored: Callable[..., tuple[Wes, Any]],
) -> None:
    wes, _parts = stored()
    run_id = wes.submit(CWL / "files.cwl", FILES_PARAMS, attach=FILES_ATTACH)
    assert wes.wait(run_id) is State.COMPLETE, wes.get(f"/runs/{run_id}/stderr").data
    outputs = wes.log(run_id)["outputs"]
    assert outputs["result"]["location"].endswith(f"/runs/{run_id}/outputs/result")
    assert wes.get(f"/runs/{run_id}/outputs/joined.txt").data == b"data\nindex\n"
    folder = wes.get(f"/runs/{run_id}/outputs/result")
    with zipfile.ZipFile(io.BytesIO(folder.data)) as zf:
        assert zf.read("result/sub/listing.txt") == b"x\ny\n"

    tasks = wes.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]
    assert tasks
    task_id = tasks[0]["id"]
    assert wes.get(f"/runs/{run_id}/tasks/{task_id}").get_json()["id"] == task_id
    assert wes.get(f"/runs/{run_id}/tasks/{task_id}/stderr").status_code == 200
    assert_error(wes.get(f"/runs/{run_id}/tasks/nope/stdout"), 404)


TICKER = """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments: ['for i in \\$(seq 1 40); do echo "line $i"; echo "err $i" >&2; sleep 0.05; done']
inputs: []
outputs: []
"""


def test_a_running_runs_logs_are_kept_in_parts_and_followed(
    make_app: Callable[..., Any],
    make_settings: Callable[..., Settings],
    bucket: str,
    tmp_path: Path,
) -> None:
    from tests.client.conftest import LiveServer
    from toolchest_wes.client import WesClient

    settings = make_settings(
        storage=f"s3://{bucket}/runs", storage_log_interval_s=0.1, storage_presign=True
    )
    app = make_app(settings)
    parts = get_state(app).parts
    seen_parts = set()
    real_send = parts.files._logs.send

    def send(key: str, path: Path) -> None:
        real_send(key, path)
        seen_parts.update(i.key for i in parts.files.storage.list_prefix(key + ".parts"))

    parts.files._logs.send = send
    ticker = tmp_path / "ticker.cwl"
    ticker.write_text(TICKER)
    server = LiveServer(app)
    try:
        with WesClient(server.url) as client:
            run = client.submit(ticker, {})
            deadline = time.monotonic() + 60
            while not (tasks := run.tasks()):
                assert time.monotonic() < deadline, "the task never showed up"
                time.sleep(0.05)
            followed = "".join(run.follow_logs("stdout", task=tasks[0].id))
            task_err = run.logs("stderr", task=tasks[0].id)
            assert run.wait(timeout=60).state is State.COMPLETE
    finally:
        server.close()
    expected = "".join(f"line {i}\n" for i in range(1, 41))
    assert followed == expected
    assert task_err == "".join(f"err {i}\n" for i in range(1, 41))
    # Sent in parts while it ran; one object each at the end, the parts gone.
    sent = {k.rsplit(".parts/", 1)[0] for k in seen_parts}
    assert f"{run.run_id}/tasks/{tasks[0].id}/stdout" in sent, seen_parts
    keys = _keys(parts, run.run_id)
    assert not any(".parts/" in k for k in keys), keys
    assert f"{run.run_id}/stdout.log" in keys

    # Finished, each log is one object: a presigned redirect, shown as text.
    wes = Wes(app.app.test_client())
    for path in (f"/runs/{run.run_id}/stderr", f"/runs/{run.run_id}/tasks/{tasks[0].id}/stdout"):
        response = wes.get(path)
        assert response.status_code == 302, path
        signed = httpx.get(response.headers["Location"])
        assert signed.headers["Content-Type"].startswith("text/plain")
        assert signed.headers["Content-Disposition"].startswith("inline")
    assert signed.text == expected


def test_delete_and_retention_remove_the_objects(
    stored: Callable[..., tuple[Wes, Any]],
) -> None:
    wes, parts = stored()
    first = wes.submit(HELLO, {"message": "one"})
    second = wes.submit(HELLO, {"message": "two"})
    assert wes.wait(first) is State.COMPLETE and wes.wait(second) is State.COMPLETE

    assert wes.client.delete(f"{API}/runs/{first}").status_code == 200
    assert _keys(parts, first) == set()

    # End times are whole seconds: the run is due within one.
    deadline = time.monotonic() + 5
    while second not in sweep_outputs(parts.store, parts.workspace, 0.0, parts.files):
        assert time.monotonic() < deadline, "the run never came due"
        time.sleep(0.1)
    left = _keys(parts, second)
    assert left and not any("/outputs/" in k or "/attachments/" in k for k in left)
    assert f"{second}/stdout.log" in left
    assert_error(wes.get(f"/runs/{second}/outputs/hello.txt"), 410, "retention")


def test_presigned_redirect_after_the_token_and_owner_checks(
    make_app: Callable[..., Any], make_settings: Callable[..., Settings], bucket: str
) -> None:
    settings = make_settings(storage=f"s3://{bucket}/runs", storage_presign=True, auth="tokens")
    tokens = TokenFile(settings.tokens_file)
    alice, bob = tokens.create("alice")[1], tokens.create("bob")[1]
    client = make_app(settings).app.test_client()
    as_alice, as_bob = Wes(Bearer(client, alice)), Wes(Bearer(client, bob))
    run_id = as_alice.submit(HELLO, {"message": "signed"})
    assert as_alice.wait(run_id) is State.COMPLETE
    path = f"{API}/runs/{run_id}/outputs/hello.txt"

    response = as_alice.get(f"/runs/{run_id}/outputs/hello.txt")
    assert response.status_code == 302
    signed = httpx.get(response.headers["Location"])
    assert signed.content == b"signed\n"
    assert_error(client.get(path), 401)
    assert_error(as_bob.get(f"/runs/{run_id}/outputs/hello.txt"), 404)
    assert as_alice.get(f"/runs/{run_id}/stderr").status_code == 302
    assert_error(client.get(f"{API}/runs/{run_id}/stderr"), 401)
    assert_error(as_bob.get(f"/runs/{run_id}/stderr"), 404)
    assert_error(as_alice.get(f"/runs/{run_id}/outputs/missing.txt"), 404)


def test_a_bucket_that_is_down_or_full_at_submit(
    stored: Callable[..., tuple[Wes, Any]],
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wes, parts = stored()
    done = wes.submit(HELLO, {"message": "before"})
    assert wes.wait(done) is State.COMPLETE

    def full(*_args: Any) -> None:
        raise StorageFullError("the bucket refused the data: quota (QuotaExceeded)")

    with monkeypatch.context() as patch:
        patch.setattr(parts.files.storage, "put_file", full)
        body = wes.submit(HELLO, {"message": "x"}, expect=507)
    assert "no room" in body["msg"] and body["status_code"] == 507

    moto_server.stop()
    try:
        body = wes.submit(HELLO, {"message": "x"}, expect=503)
        assert "storage is unavailable" in body["msg"]
        # What the store answers keeps working; the files wait for the bucket.
        assert wes.log(done)["state"] == "COMPLETE"
        assert wes.get(f"/runs/{done}/status").status_code == 200
        assert_error(wes.get(f"/runs/{done}/outputs/hello.txt"), 503, "storage")
    finally:
        moto_server.start()
    listing = wes.get("/runs").get_json()["runs"]
    assert [r["run_id"] for r in listing] == [done]


def test_runs_wait_briefly_for_the_bucket_then_end_system_error(
    stored: Callable[..., tuple[Wes, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    wes, parts = stored()
    calls = []
    real_list = parts.files.storage.list_prefix

    def down_twice(prefix: str) -> Any:
        calls.append(prefix)
        if len(calls) <= 2:
            raise StorageUnavailableError("the bucket did not answer: connection refused")
        return real_list(prefix)

    # A bucket that is back within the executor's patience costs the run nothing.
    monkeypatch.setattr(executor_deps, "_STORAGE_RETRY_S", 0.05)
    with monkeypatch.context() as patch:
        patch.setattr(parts.files.storage, "list_prefix", down_twice)
        run_id = wes.submit(HELLO, {"message": "x"})
        assert wes.wait(run_id) is State.COMPLETE

    def down(*_args: Any) -> Any:
        raise StorageUnavailableError("the bucket did not answer: connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(executor_deps, "_STORAGE_PATIENCE_S", 0.2)
        patch.setattr(parts.files.storage, "list_prefix", down)
        run_id = wes.submit(HELLO, {"message": "x"})
        assert wes.wait(run_id) is State.SYSTEM_ERROR
    assert any("could not be fetched" in line for line in wes.log(run_id)["run_log"]["system_logs"])

    real_put = parts.files.storage.put_file

    def no_outputs(key: str, path: Any) -> None:
        if "/outputs/" in key:
            raise StorageFullError("the bucket refused the data: full (XMinioStorageFull)")
        real_put(key, path)

    monkeypatch.setattr(parts.files.storage, "put_file", no_outputs)
    run_id = wes.submit(HELLO, {"message": "y"})
    assert wes.wait(run_id) is State.SYSTEM_ERROR
    lines = wes.log(run_id)["run_log"]["system_logs"]
    assert any("could not be uploaded" in line and "XMinioStorageFull" in line for line in lines)


def test_a_folder_of_its_own_works_the_same(
    make_app: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """``--storage`` naming a folder (a network share, with local scratch folders)."""
    settings = make_settings(storage=str(tmp_path / "share"))
    wes = Wes(make_app(settings).app.test_client())
    run_id = wes.submit(HELLO, {"message": "shared"})
    assert wes.wait(run_id) is State.COMPLETE
    assert (tmp_path / "share" / run_id / "outputs" / "hello.txt").read_bytes() == b"shared\n"
    _wait_gone(settings.runs_dir / run_id)
    part = wes.get(f"/runs/{run_id}/outputs/hello.txt", headers={"Range": "bytes=0-1"})
    assert (part.status_code, part.data) == (206, b"sh")


def test_a_keyed_retry_after_an_ambiguous_503_gives_the_run_its_stored_files(
    stored: Callable[..., tuple[Wes, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store applies the create but its answer is lost: the refusal removes what was
    uploaded, and the retry with the same key stores its files for that one run."""
    wes, parts = stored()
    store = parts.store
    create = store.create_run

    def applied_then_lost(record: Any, **kwargs: Any) -> str:
        create(record, **kwargs)
        raise StoreUnavailableError("connection lost before the answer")

    def post() -> Any:
        return wes.client.post(
            f"{API}/runs",
            data={
                "workflow_type": "CWL",
                "workflow_type_version": "v1.2",
                "workflow_url": HELLO.name,
                "workflow_params": '{"message": "kept"}',
                "workflow_attachment": [(io.BytesIO(HELLO.read_bytes()), HELLO.name)],
            },
            headers={"Idempotency-Key": "stored-1"},
            content_type="multipart/form-data",
        )

    monkeypatch.setattr(store, "create_run", applied_then_lost)
    assert_error(post(), 503, "same Idempotency-Key")
    (ghost,) = {run["run_id"] for run in wes.get("/runs").get_json()["runs"]}
    assert _keys(parts, ghost) == set()

    monkeypatch.setattr(store, "create_run", create)
    retried = post()
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert retried.get_json()["run_id"] == ghost
    assert wes.wait(ghost) is State.COMPLETE
    assert wes.get(f"/runs/{ghost}/outputs/hello.txt").data == b"kept\n"
    assert {run["run_id"] for run in wes.get("/runs").get_json()["runs"]} == {ghost}
    # Nothing is left of the retry's own id, in the bucket or on disk.
    storage = parts.files.storage
    listed = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)
    assert {item["Key"].split("/")[1] for item in listed["Contents"]} == {ghost}
