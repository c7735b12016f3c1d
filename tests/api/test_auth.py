"""Authentication and per-user isolation, in both modes, through the HTTP API."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import API, EXAMPLES, Wes, assert_error
from tests.oidc_keys import AUDIENCE, ISSUER, Provider, serve_jwks
from toolchest_wes.models import State
from toolchest_wes.server.spec import BASE_PATH
from toolchest_wes.server.tokens import TokenFile

HELLO = EXAMPLES / "hello" / "hello.cwl"
CHALLENGE = 'Bearer realm="toolchest-wes"'

#: Every protected operation, with ids that need not exist: a 401 comes before any lookup.
PROTECTED = [
    ("GET", "/runs"),
    ("POST", "/runs"),
    ("GET", "/runs/x"),
    ("GET", "/runs/x/status"),
    ("POST", "/runs/x/cancel"),
    ("GET", "/runs/x/tasks"),
    ("GET", "/runs/x/tasks/t"),
    ("GET", "/runs/x/stdout"),
    ("GET", "/runs/x/stderr"),
    ("GET", "/runs/x/tasks/t/stdout"),
    ("GET", "/runs/x/tasks/t/stderr"),
    ("GET", "/runs/x/outputs"),
    ("GET", "/runs/x/outputs/a.txt"),
    ("GET", "/no-such-endpoint"),
]


class _Header:
    """A test client that sends one ``Authorization`` header with every request."""

    def __init__(self, client: Any, authorization: str) -> None:
        self.client = client
        self.authorization = authorization

    def _headers(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": self.authorization}
        return kwargs

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **self._headers(kwargs))

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, **self._headers(kwargs))

    def open(self, path: str, **kwargs: Any) -> Any:
        return self.client.open(path, **self._headers(kwargs))


class Bearer(_Header):
    """A test client that sends ``Authorization: Bearer <token>`` with every request."""

    def __init__(self, client: Any, token: str) -> None:
        super().__init__(client, f"Bearer {token}")
        self.token = token


@pytest.fixture
def token_app(make_app, make_settings):
    """An app with --auth tokens, users alice and bob, and admins root (flag) and boss (list)."""
    settings = make_settings(auth="tokens", admin_users="boss")
    tokens = TokenFile(settings.tokens_file)
    users = {
        "alice": tokens.create("alice")[1],
        "bob": tokens.create("bob")[1],
        "root": tokens.create("root", admin=True)[1],
    }
    app = make_app(settings)
    # Created after the app started: the server reads the changed file at the next request.
    users["boss"] = tokens.create("boss")[1]
    client = app.app.test_client()
    return client, {name: Wes(Bearer(client, token)) for name, token in users.items()}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_no_token_is_401_with_a_challenge(token_app, method, path):
    client, _ = token_app

    response = client.open(f"{API}{path}", method=method)

    assert_error(response, 401, "bearer token", "Authorization: Bearer")
    assert response.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_bad_credentials_say_why_without_echoing_them(token_app):
    client, _ = token_app
    for header, error, fragment in [
        ("Bearer tcwes_0000_made-up", "invalid_token", "unknown or revoked"),
        # alice:secret, Basic with an unknown token as the password
        ("Basic YWxpY2U6c2VjcmV0", "invalid_token", "unknown or revoked"),
        ("Basic bm8tY29sb24=", "invalid_request", "must be 'Bearer <token>'"),
        ("Basic !!!", "invalid_request", "must be 'Bearer <token>'"),
        ("Digest abc", "invalid_request", "must be 'Bearer <token>'"),
        ("Bearer ", "invalid_request", "must be 'Bearer <token>'"),
    ]:
        response = client.get(f"{API}/runs", headers={"Authorization": header})

        body = assert_error(response, 401, fragment)
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith(f'{CHALLENGE}, error="{error}", error_description="')
        secret = header.partition(" ")[2]
        if secret:
            assert secret not in body["msg"] and secret not in challenge


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_basic_auth_with_the_token_as_password_works(token_app):
    """toil-wes-cwl-runner can only send TOIL_WES_USER and TOIL_WES_PASSWORD, as Basic."""
    client, users = token_app
    basic = base64.b64encode(f"anyone:{users['alice'].client.token}".encode()).decode()
    as_alice = Wes(_Header(client, f"Basic {basic}"))
    run_id = as_alice.submit(HELLO, {})
    assert users["alice"].get(f"/runs/{run_id}/status").status_code == 200
    assert users["bob"].get(f"/runs/{run_id}/status").status_code == 404


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_public_endpoints_need_no_token(token_app):
    client, _ = token_app

    info = client.get(f"{API}/service-info")
    assert info.status_code == 200
    assert info.get_json()["auth_instructions_url"].startswith("https://")
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get(f"{API}/openapi.json").status_code == 200
    assert client.get(f"{API}/ui/").status_code == 200


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_revoked_token_stops_working_at_once(token_app, make_settings):
    _, users = token_app
    tokens = TokenFile(make_settings().data_dir / "tokens.json")
    assert users["bob"].get("/runs").status_code == 200

    (entry,) = [e for e in tokens.entries() if e.user == "bob"]
    tokens.revoke(entry.id)

    assert_error(users["bob"].get("/runs"), 401, "unknown or revoked")
    assert users["alice"].get("/runs").status_code == 200


def _ids(wes: Wes, **query: str) -> list[str]:
    response = wes.get("/runs", query_string={"page_size": 2, **query})
    ids, body = [], response.get_json()
    assert response.status_code == 200, body
    ids += [r["run_id"] for r in body["runs"]]
    while body["next_page_token"]:
        body = wes.get(
            "/runs", query_string={"page_size": 2, "page_token": body["next_page_token"], **query}
        ).get_json()
        ids += [r["run_id"] for r in body["runs"]]
    return ids


def _call(wes: Wes, method: str, path: str) -> Any:
    """A request with the body read and the file closed (file responses hold it open)."""
    response = wes.client.open(f"{API}{path}", method=method)
    response.get_data()
    response.close()
    return response


def _per_run_paths(run_id: str, task_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/status"),
        ("POST", f"/runs/{run_id}/cancel"),
        ("GET", f"/runs/{run_id}/tasks"),
        ("GET", f"/runs/{run_id}/tasks/{task_id}"),
        ("GET", f"/runs/{run_id}/stdout"),
        ("GET", f"/runs/{run_id}/stderr"),
        ("GET", f"/runs/{run_id}/tasks/{task_id}/stdout"),
        ("GET", f"/runs/{run_id}/tasks/{task_id}/stderr"),
        ("GET", f"/runs/{run_id}/outputs"),
        ("GET", f"/runs/{run_id}/outputs?archive=zip"),
        ("GET", f"/runs/{run_id}/outputs/hello.txt"),
    ]


def test_users_see_only_their_own_runs_and_admins_see_all(token_app):
    client, users = token_app
    alice, bob, root, boss = users["alice"], users["bob"], users["root"], users["boss"]
    alice_runs = [alice.submit(HELLO, {"message": f"a{i}"}, tags={"p": "x"}) for i in range(3)]
    bob_run = bob.submit(HELLO, {"message": "bob's"}, tags={"p": "x"})
    for run_id in alice_runs:
        assert alice.wait(run_id) is State.COMPLETE
    assert bob.wait(bob_run) is State.COMPLETE

    # Listing: own runs only, through every page and with filters; admins see everything.
    assert _ids(alice) == alice_runs[::-1]
    assert _ids(alice, state="COMPLETE", tag="p:x") == alice_runs[::-1]
    assert _ids(bob) == [bob_run]
    assert _ids(root) == [bob_run, *alice_runs[::-1]]
    assert _ids(boss, tag="p:x") == [bob_run, *alice_runs[::-1]]

    # Bob's every view of Alice's run is exactly the 404 of a run that does not exist.
    (task,) = alice.get(f"/runs/{alice_runs[0]}/tasks").get_json()["task_logs"]
    for method, path in _per_run_paths(alice_runs[0], task["id"]):
        theirs = _call(bob, method, path)
        missing = _call(bob, method, path.replace(alice_runs[0], "no-such-run"))
        assert theirs.status_code == missing.status_code == 404, (path, theirs.get_json())
        assert theirs.get_json()["msg"] == f"run {alice_runs[0]!r} not found"
        assert missing.get_json()["msg"] == "run 'no-such-run' not found"
        assert "WWW-Authenticate" not in theirs.headers
        # The owner and the admins read the same paths.
        for reader in (alice, root):
            assert _call(reader, method, path).status_code == 200, path

    # The URLs in a RunLog work with the same credentials.
    log = alice.log(alice_runs[0])
    assert alice.get(log["run_log"]["stdout"]).status_code == 200
    download = alice.get(log["outputs"]["greeting"]["location"])
    assert (download.status_code, download.data) == (200, b"a0\n")
    assert client.get(log["outputs"]["greeting"]["location"]).status_code == 401
    assert bob.get(log["outputs"]["greeting"]["location"]).status_code == 404

    # service-info counts every run, whoever asks.
    info = client.get(f"{API}/service-info").get_json()
    assert info["system_state_counts"]["COMPLETE"] == 4


def test_only_the_owner_or_an_admin_cancels(token_app):
    _, users = token_app
    alice, bob, root = users["alice"], users["bob"], users["root"]
    first = alice.submit(EXAMPLES.parent / "tests" / "cwl" / "sleep.cwl", {"seconds": 300})
    second = alice.submit(EXAMPLES.parent / "tests" / "cwl" / "sleep.cwl", {"seconds": 300})

    assert_error(bob.client.post(f"{API}/runs/{first}/cancel"), 404, f"run {first!r} not found")
    assert alice.state(first) not in {State.CANCELING, State.CANCELED}

    assert alice.client.post(f"{API}/runs/{first}/cancel").status_code == 200
    assert root.client.post(f"{API}/runs/{second}/cancel").status_code == 200
    assert alice.wait(first) is State.CANCELED
    assert alice.wait(second) is State.CANCELED


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_fast_status_view_enforces_auth_and_ownership(token_app):
    client, users = token_app
    app = client.application
    view = app.view_functions[f"{BASE_PATH}.GetRunStatus"]
    assert type(view).__qualname__ == "_LeanView", "the status route is served by the lean view"
    run_id = users["alice"].submit(HELLO, {"message": "fast"})

    assert users["alice"].state(run_id) in State
    assert_error(client.get(f"{API}/runs/{run_id}/status"), 401, "bearer token")
    bad = client.get(f"{API}/runs/{run_id}/status", headers={"Authorization": "Bearer nope"})
    assert_error(bad, 401, "unknown or revoked")
    assert_error(
        users["bob"].client.get(f"{API}/runs/{run_id}/status"), 404, f"run {run_id!r} not found"
    )
    # A held status request (connexion's own view) is held to the same rules.
    held = f"{API}/runs/{run_id}/status?wait=1"
    assert_error(client.get(held), 401, "bearer token")
    assert_error(users["bob"].client.get(held), 404, f"run {run_id!r} not found")
    assert users["root"].state(run_id) in State
    users["alice"].wait(run_id)


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_auth_off_serves_everyone_as_before(make_app):
    client = make_app().app.test_client()
    wes = Wes(client)

    run_id = wes.submit(HELLO, {"message": "open"})

    assert _ids(wes) == [run_id]
    assert wes.wait(run_id) is State.COMPLETE
    # A header is ignored when authentication is off.
    assert client.get(f"{API}/runs", headers={"Authorization": "Bearer x"}).status_code == 200


# -- OIDC ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider():
    return Provider()


@pytest.fixture
def oidc_app(make_app, make_settings, provider, tmp_path):
    jwks = provider.write_jwks(tmp_path / "jwks.json")
    settings = make_settings(
        auth="oidc",
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks=str(jwks),
        oidc_admin_claim="groups",
    )
    return make_app(settings).app.test_client()


def _as(client: Any, token: str) -> Wes:
    return Wes(Bearer(client, token))


def test_oidc_users_are_isolated_and_admins_come_from_a_claim(oidc_app, provider):
    alice = _as(oidc_app, provider.token("alice"))
    bob = _as(oidc_app, provider.token("bob", kid="ec-1"))
    admin = _as(oidc_app, provider.token("ops", groups=["wes-admin"]))

    run_id = alice.submit(HELLO, {"message": "jwt"})

    assert alice.wait(run_id) is State.COMPLETE
    assert _ids(alice) == [run_id]
    assert _ids(bob) == []
    assert_error(bob.get(f"/runs/{run_id}"), 404, f"run {run_id!r} not found")
    assert _ids(admin) == [run_id]
    assert admin.get(f"/runs/{run_id}/outputs/hello.txt").data == b"jwt\n"


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"exp": 1}, "expired"),
        ({"aud": "another-api"}, "audience (aud) must include"),
        ({"iss": "https://elsewhere.test"}, "accepts"),
        ({"alg": "HS256", "key": "k" * 32}, "'HS256' are not accepted"),
        ({"kid": "rsa-unknown"}, "does not list"),
    ],
)
def test_oidc_bad_tokens_are_401_invalid_token(oidc_app, provider, claims, fragment):
    token = provider.token("alice", **claims)

    response = oidc_app.get(f"{API}/runs", headers={"Authorization": f"Bearer {token}"})

    body = assert_error(response, 401, fragment)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert token not in body["msg"]


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_oidc_with_a_jwks_url(make_app, make_settings, provider):
    with serve_jwks(provider) as (url, requests):
        settings = make_settings(
            auth="oidc", oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks=url
        )
        client = make_app(settings).app.test_client()
        headers = {"Authorization": f"Bearer {provider.token('alice')}"}

        assert client.get(f"{API}/runs", headers=headers).status_code == 200
        assert client.get(f"{API}/runs", headers=headers).status_code == 200
    assert requests == ["/jwks.json"]
