"""Limits of POST /runs: sizes (413), unfinished runs and submit rate per user (429), the
hosts a workflow_url may name (400), and symbolic links out of a run's outputs.

No test here sends traffic to anything but loopback: refused URLs are never fetched, and
the accepted ones name a closed loopback port.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import pytest

from tests.api.test_auth import Bearer
from tests.conftest import API, CWL, EXAMPLES, Wes, assert_error
from toolchest_wes.models import TERMINAL_STATES, State
from toolchest_wes.runner.celery_runner import CeleryTaskRunner
from toolchest_wes.server.app import create_app, get_state
from toolchest_wes.server.tokens import TokenFile
from toolchest_wes.worker.celery_config import new_celery_app

HELLO = EXAMPLES / "hello" / "hello.cwl"
SLEEP = CWL / "sleep.cwl"
embedded_only = pytest.mark.parametrize("mode", ["embedded"], indirect=True)


def _form(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "hello.cwl",
        "workflow_params": "{}",
    }
    data.update(fields)
    return data


def _post(client: Any, data: dict[str, Any], **kwargs: Any) -> Any:
    return client.post(f"{API}/runs", data=data, content_type="multipart/form-data", **kwargs)


def _no_runs(client: Any) -> None:
    assert client.get(f"{API}/runs").get_json()["runs"] == []


def _cancel_all(wes: Wes, run_ids: list[str]) -> None:
    for run_id in run_ids:
        assert wes.client.post(f"{API}/runs/{run_id}/cancel").status_code == 200
    for run_id in run_ids:
        assert wes.wait(run_id) in TERMINAL_STATES


# -- sizes -------------------------------------------------------------------------------------


@embedded_only
def test_body_over_max_request_bytes_is_413(make_app, make_settings):
    client = make_app(make_settings(max_request_bytes=4096)).app.test_client()
    data = _form(workflow_attachment=[(io.BytesIO(b"x" * 8192), "hello.cwl")])

    body = assert_error(_post(client, data), 413, "at most 4096 bytes", "max_request_bytes")

    assert "is " in body["msg"]  # the body's own size is named too
    _no_runs(client)


@embedded_only
def test_too_many_attachments_is_413(make_app, make_settings):
    client = make_app(make_settings(max_attachments=3)).app.test_client()
    files = [(io.BytesIO(HELLO.read_bytes()), "hello.cwl")]
    files += [(io.BytesIO(b"x"), f"extra/{i}.txt") for i in range(3)]

    assert_error(
        _post(client, _form(workflow_attachment=files)),
        413,
        "4 workflow_attachment files",
        "at most 3",
        "max_attachments",
    )
    _no_runs(client)


@embedded_only
# Werkzeug leaves the file parts it read before it stopped to the garbage collector, which
# closes them with a ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_far_too_many_parts_is_413_naming_the_limits(make_app, make_settings):
    """Werkzeug stops reading such a form itself; its 413 still says what the limits are."""
    client = make_app(make_settings(max_attachments=3)).app.test_client()
    files = [(io.BytesIO(b"x"), f"f{i}.txt") for i in range(200)]

    assert_error(
        _post(client, _form(workflow_attachment=files)), 413, "at most 3", "max_attachments"
    )
    _no_runs(client)


@embedded_only
def test_attachments_over_max_attachment_bytes_is_413(make_app, make_settings):
    client = make_app(make_settings(max_attachment_bytes=1000)).app.test_client()
    files = [
        (io.BytesIO(HELLO.read_bytes()), "hello.cwl"),
        (io.BytesIO(b"y" * 600), "a.txt"),
        (io.BytesIO(b"z" * 600), "b.txt"),
    ]

    assert_error(
        _post(client, _form(workflow_attachment=files)),
        413,
        "at most 1000",
        "max_attachment_bytes",
    )
    _no_runs(client)


@embedded_only
@pytest.mark.parametrize("size", [3000, 200_000])
def test_workflow_params_over_max_params_bytes_is_413(make_app, make_settings, size):
    """Just over the limit, the message gives the size; far over, Werkzeug stops reading."""
    client = make_app(make_settings(max_params_bytes=2048)).app.test_client()
    params = json.dumps({"message": "m" * size})
    files = [(io.BytesIO(HELLO.read_bytes()), "hello.cwl")]

    assert_error(
        _post(client, _form(workflow_params=params, workflow_attachment=files)),
        413,
        "workflow_params",
        "2048",
        "max_params_bytes",
    )
    _no_runs(client)


@embedded_only
def test_limits_below_the_maximum_accept_the_run(make_app, make_settings):
    settings = make_settings(
        max_request_bytes=64 * 1024,
        max_attachments=2,
        max_attachment_bytes=HELLO.stat().st_size + 10,
        max_params_bytes=1024,
    )
    wes = Wes(make_app(settings).app.test_client())

    run_id = wes.submit(HELLO, {"message": "small"}, attach={"in.txt": b"0123456789"})

    assert wes.wait(run_id) is State.COMPLETE


@embedded_only
def test_a_file_and_a_folder_of_the_same_name_is_400(wes):
    body = wes.submit(HELLO, {}, attach={"lib": b"x", "lib/tool.cwl": b"y"}, expect=400)

    assert "'lib'" in body["msg"] and "folder" in body["msg"]


# -- unfinished runs per user -------------------------------------------------------------------


def test_active_run_limit_is_429_with_retry_after(make_app, make_settings):
    wes = Wes(make_app(make_settings(max_active_runs_per_user=2)).app.test_client())
    runs = [wes.submit(SLEEP, {"seconds": 600}) for _ in range(2)]
    try:
        response = _post(
            wes.client,
            _form(
                workflow_url="sleep.cwl",
                workflow_attachment=[(io.BytesIO(SLEEP.read_bytes()), "sleep.cwl")],
            ),
        )
        assert_error(response, 429, "2 unfinished runs", "limit is 2", "max_active_runs_per_user")
        assert int(response.headers["Retry-After"]) >= 1
        assert len(wes.client.get(f"{API}/runs").get_json()["runs"]) == 2

        _cancel_all(wes, runs[:1])
        runs.append(wes.submit(SLEEP, {"seconds": 600}))
    finally:
        _cancel_all(wes, runs)


@pytest.fixture
def users(make_app, make_settings):
    """Clients of alice and bob on a server with tokens and the given limits."""

    def make(**limits: Any) -> dict[str, Wes]:
        settings = make_settings(auth="tokens", **limits)
        tokens = TokenFile(settings.tokens_file)
        names = {name: tokens.create(name)[1] for name in ("alice", "bob")}
        client = make_app(settings).app.test_client()
        return {name: Wes(Bearer(client, token)) for name, token in names.items()}

    return make


def test_active_run_limit_counts_each_user_apart(users):
    clients = users(max_active_runs_per_user=1)
    alice, bob = clients["alice"], clients["bob"]
    runs = {"alice": [alice.submit(SLEEP, {"seconds": 600})], "bob": []}
    try:
        body = alice.submit(SLEEP, {"seconds": 600}, expect=429)
        assert "you have 1 unfinished run," in body["msg"] and "limit is 1" in body["msg"]
        runs["bob"].append(bob.submit(SLEEP, {"seconds": 600}))
    finally:
        _cancel_all(alice, runs["alice"])
        _cancel_all(bob, runs["bob"])


# -- submit rate -------------------------------------------------------------------------------


def test_submit_rate_is_429_with_retry_after(make_app, make_settings):
    """Every submission counts, refused or not, so the third one here is over the burst."""
    wes = Wes(make_app(make_settings(submit_rate=1, submit_burst=2)).app.test_client())
    run_id = wes.submit(HELLO, {})
    wes.submit(HELLO, {}, workflow_url="missing.cwl", expect=400)

    response = _post(
        wes.client, _form(workflow_attachment=[(io.BytesIO(HELLO.read_bytes()), "hello.cwl")])
    )

    body = assert_error(response, 429, "1 per minute", "bursts of 2", "retry in")
    assert int(response.headers["Retry-After"]) >= 1
    assert f"retry in {response.headers['Retry-After']} s" in body["msg"]
    assert wes.wait(run_id) is State.COMPLETE


def test_submit_rate_counts_each_user_apart(users):
    clients = users(submit_rate=1, submit_burst=1)
    alice, bob = clients["alice"], clients["bob"]
    runs = [alice.submit(HELLO, {})]

    alice.submit(HELLO, {}, expect=429)
    runs.append(bob.submit(HELLO, {}))

    assert alice.wait(runs[0]) is State.COMPLETE
    assert bob.wait(runs[1]) is State.COMPLETE


@pytest.fixture
def second_api():
    """Another API app on the same settings: a second gunicorn process of one server.

    It shares the first app's Redis and Celery queue, so it needs no worker of its own.
    """
    apps = []

    def make(settings):
        runner = CeleryTaskRunner(new_celery_app(settings))
        app = create_app(settings, runner=runner, validate_responses=True)
        apps.append(app)
        return Wes(app.app.test_client())

    yield make
    for app in apps:
        get_state(app).close()


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
def test_submit_rate_is_shared_by_api_processes(make_app, make_settings, second_api):
    """Two apps on one Redis stand for two gunicorn processes: they count one bucket."""
    settings = make_settings(submit_rate=1, submit_burst=1, max_active_runs_per_user=1)
    first = Wes(make_app(settings).app.test_client())
    second = second_api(settings)
    run_id = first.submit(HELLO, {})

    body = second.submit(HELLO, {}, expect=429)

    assert "1 per minute" in body["msg"]
    assert second.wait(run_id) is State.COMPLETE


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
def test_active_run_limit_is_shared_by_api_processes(make_app, make_settings, second_api):
    settings = make_settings(max_active_runs_per_user=1)
    first = Wes(make_app(settings).app.test_client())
    second = second_api(settings)
    runs = [first.submit(SLEEP, {"seconds": 600})]
    try:
        body = second.submit(SLEEP, {"seconds": 600}, expect=429)
        assert "the server has 1 unfinished run," in body["msg"]
    finally:
        _cancel_all(first, runs)


# -- workflow_url hosts -------------------------------------------------------------------------


@embedded_only
@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("http://127.0.0.1:9/x.cwl", ["127.0.0.1 is a loopback address"]),
        ("http://localhost:9/x.cwl", ["localhost resolves to", "loopback"]),
        ("http://[::1]:9/x.cwl", ["::1 is a loopback address"]),
        ("http://[::ffff:127.0.0.1]:9/x.cwl", ["loopback"]),
        ("http://169.254.169.254/latest/meta-data", ["169.254.169.254 is a link-local"]),
        ("http://[fe80::1]/x.cwl", ["link-local"]),
        ("http://10.1.2.3/x.cwl", ["10.1.2.3 is a private address"]),
        ("https://172.16.0.1/x.cwl", ["private"]),
        ("https://192.168.1.1/x.cwl", ["private"]),
        ("http://[fd00::1]/x.cwl", ["private"]),
        ("http://0.0.0.0/x.cwl", ["unspecified"]),
        ("http://224.0.0.1/x.cwl", ["multicast"]),
        ("http:///x.cwl", ["has no host"]),
    ],
)
def test_non_public_workflow_url_hosts_are_400(wes, url, fragments):
    body = wes.submit(url, {}, expect=400)

    for fragment in fragments:
        assert fragment in body["msg"], body["msg"]
    if "no host" not in fragments[0]:
        assert "TOOLCHEST_WES_ALLOW_PRIVATE_WORKFLOW_URLS" in body["msg"]
        assert "TOOLCHEST_WES_WORKFLOW_URL_ALLOWED_HOSTS" in body["msg"]
    _no_runs(wes.client)


@embedded_only
def test_non_public_input_urls_in_params_are_400(wes):
    params = {"message": {"class": "File", "location": "http://10.0.0.7/secret.txt"}}

    body = wes.submit(HELLO, params, expect=400)

    assert "workflow_params.message.location" in body["msg"]
    assert "10.0.0.7 is a private address" in body["msg"]


@embedded_only
@pytest.mark.parametrize(
    "setting",
    [
        {"allow_private_workflow_urls": True},
        {"workflow_url_allowed_hosts": "127.0.0.0/8"},
        {"workflow_url_allowed_hosts": "other.example, localhost"},
    ],
)
def test_allowed_hosts_are_accepted(make_app, make_settings, setting):
    """Accepted and fetched by cwltool from a closed loopback port: the run fails later."""
    host = "localhost" if "localhost" in str(setting) else "127.0.0.1"
    wes = Wes(make_app(make_settings(**setting)).app.test_client())

    run_id = wes.submit(f"http://{host}:9/hello.cwl", {})

    assert wes.wait(run_id) is State.EXECUTOR_ERROR


# -- symbolic links ----------------------------------------------------------------------------


@embedded_only
def test_links_out_of_the_outputs_are_never_served(wes, tmp_path):
    """A tool links to a file and a folder elsewhere on the server; none of it comes back."""
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    secret = secret_dir / "secret.txt"
    secret.write_text("TOPSECRET\n")
    run_id = wes.submit(
        CWL / "symlinks.cwl", {"secret_file": str(secret), "secret_dir": str(secret_dir)}
    )
    assert wes.wait(run_id) is State.COMPLETE, wes.get(f"/runs/{run_id}/stderr").data

    log = wes.log(run_id)
    secret_sha1 = hashlib.sha1(secret.read_bytes()).hexdigest()
    outputs = json.dumps(log["outputs"])  # the request and cmd name the inputs, of course
    assert "elsewhere" not in outputs and "secret" not in outputs and secret_sha1 not in outputs
    assert log["outputs"]["leak"] is None and log["outputs"]["linked_dir"] is None
    assert wes.get(log["outputs"]["ok"]["location"]).data == b"inside\n"
    listing = wes.get(f"/runs/{run_id}/outputs").get_json()
    assert [f["path"] for f in listing["files"]] == ["folder/deep.txt", "ok.txt"]

    for path in ("folder/leak.txt", "folder/dir-link", "folder/dir-link/secret.txt"):
        assert_error(wes.get(f"/runs/{run_id}/outputs/{path}"), 404, "no output")
    # A link that stays inside the outputs is served.
    assert wes.get(f"/runs/{run_id}/outputs/folder/inside-link.txt").data == b"deep\n"

    for url in (
        f"/runs/{run_id}/outputs/folder",
        f"/runs/{run_id}/outputs?archive=zip",
        f"/runs/{run_id}/outputs?archive=zip&path=folder",
    ):
        response = wes.get(url)
        assert response.status_code == 200, url
        with zipfile.ZipFile(io.BytesIO(response.data)) as zf:
            names = zf.namelist()
            assert not [n for n in names if "leak" in n or "dir-link" in n], names
            assert all(b"TOPSECRET" not in zf.read(n) for n in names)
