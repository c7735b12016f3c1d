"""The dashboard's files as the server serves them: the page shell, its assets, caching, and
that they are public while the API behind them is not."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.conftest import API
from tests.oidc_keys import AUDIENCE, ISSUER, Provider
from tests.unit.catalog.test_catalog_manifest import MANIFEST, make_entry
from toolchest_wes.server.dashboard import (
    ASSET_PREFIX,
    OIDC_LOGIN_EXTENSION,
    oidc_login,
)

# The files do not depend on the mode.
pytestmark = pytest.mark.parametrize("mode", ["embedded"], indirect=True)


def _assets(client):
    page = client.get("/").get_data(as_text=True)
    return re.findall(rf'"({re.escape(ASSET_PREFIX)}[0-9a-f]+/[a-z]+\.(?:js|css))"', page)


def test_the_shell_is_revalidated_and_names_hashed_assets(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"
    assert client.get("/", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    # The entry module, the style sheet, and the modules the first page needs (preloaded).
    names = sorted(a.rsplit("/", 1)[1] for a in _assets(client))
    assert names == ["api.js", "app.css", "app.js", "oidc.js", "runs.js", "util.js"]


def test_assets_under_their_hash_are_kept_for_a_year(client):
    for asset in _assets(client):
        response = client.get(asset)
        assert response.status_code == 200
        assert "immutable" in response.headers["Cache-Control"]
        assert response.mimetype in {"text/javascript", "text/css"}
    # The modules app.js imports, under the same hashed folder.
    folder = _assets(client)[0].rsplit("/", 1)[0]
    for module in ("api.js", "util.js", "runs.js", "run.js", "submit.js", "service.js"):
        assert client.get(f"{folder}/{module}").status_code == 200


def test_an_older_hash_gets_the_file_but_no_long_cache(client):
    response = client.get(f"{ASSET_PREFIX}000000000000/app.js")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"


def test_only_asset_types_are_served(client):
    assert client.get(f"{ASSET_PREFIX}x/index.html").status_code == 404
    assert client.get(f"{ASSET_PREFIX}x/../dashboard.py").status_code == 404
    assert client.get(f"{ASSET_PREFIX}x/missing.js").status_code == 404


def test_the_pages_are_public_but_the_api_still_asks_for_a_token(make_app, make_settings):
    client = make_app(make_settings(auth="tokens")).app.test_client()
    assert client.get("/").status_code == 200
    for asset in _assets(client):
        assert client.get(asset).status_code == 200
    assert client.get(f"{API}/runs").status_code == 401
    assert client.get("/dashboard-not").status_code == 401


def test_service_info_tells_the_pages_how_to_sign_in_with_the_issuer(
    make_app, make_settings, tmp_path
):
    jwks = Provider().write_jwks(tmp_path / "jwks.json")
    oidc = {
        "auth": "oidc",
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "oidc_jwks": str(jwks),
    }
    without = make_app(make_settings(**oidc)).app.test_client()
    assert OIDC_LOGIN_EXTENSION not in without.get(f"{API}/service-info").get_json()
    settings = make_settings(**oidc, oidc_client_id="dash", oidc_token_endpoint="https://t/token")
    info = make_app(settings).app.test_client().get(f"{API}/service-info").get_json()
    assert info[OIDC_LOGIN_EXTENSION] == {
        "issuer": ISSUER,
        "client_id": "dash",
        "authorization_endpoint": None,
        "token_endpoint": "https://t/token",
        "scopes": "openid",
        "token": "access_token",
    }
    # When the audience is the client id, the ID token (whose aud that is) is the one to send.
    login = oidc_login(make_settings(**{**oidc, "oidc_audience": "dash"}, oidc_client_id="dash"))
    assert login is not None and login["token"] == "id_token"
    assert oidc_login(make_settings(oidc_client_id="dash", auth="tokens")) is None


def test_a_catalog_tools_inputs_are_served_as_json_without_a_token(make_app, make_settings):
    client = make_app(make_settings(auth="tokens")).app.test_client()
    response = client.get(f"{ASSET_PREFIX}tools/gzip/1.0/inputs")
    assert response.status_code == 200
    assert response.get_json() == [
        {
            "name": "input",
            "kind": "File",
            "optional": False,
            "label": "",
            "doc": "The file to compress.",
        },
        {
            "name": "level",
            "kind": "int",
            "optional": True,
            "label": "",
            "doc": "Compression level, 1 (fastest) to 9 (smallest).",
            "default": 6,
        },
    ]
    assert client.get(f"{ASSET_PREFIX}tools/wc/1.0/inputs").get_json()[0]["kind"] == "File[]"


def test_an_unknown_tool_or_version_has_no_inputs(client):
    assert client.get(f"{ASSET_PREFIX}tools/nosuch/1.0/inputs").status_code == 404
    assert client.get(f"{ASSET_PREFIX}tools/wc/9.9/inputs").status_code == 404


def test_a_dockstore_style_id_finds_the_tools_inputs(make_app, make_settings, tmp_path):
    make_entry(tmp_path, MANIFEST.replace("tags: [text]", 'trs_id: "#workflow/github.com/o/r"'))
    client = make_app(make_settings(catalog=str(tmp_path))).app.test_client()
    encoded = quote("#workflow/github.com/o/r", safe="")
    assert client.get(f"{ASSET_PREFIX}tools/{encoded}/1.0/inputs").get_json() == []
    # Its slashes as they are, as the TRS API also takes it.
    assert (
        client.get(
            f"{ASSET_PREFIX}tools/#workflow/github.com/o/r/1.0/inputs".replace("#", "%23")
        ).get_json()
        == []
    )
