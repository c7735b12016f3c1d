"""The web dashboard: static pages at ``/`` that are a client of this server's WES API.

Nothing here reads the store or the service: the pages call the same endpoints as any other
client, with the user's bearer token, so every check of the API applies to them. The files
ship in ``toolchest_wes/dashboard/static``, with no build step.

Caching: ``/`` (the page shell) is revalidated on every load; the assets live under a path
that holds a hash of their content, so a browser keeps them for a year and a new release
changes the path. Relative ES module imports resolve under the same hashed path.

Signing in with OIDC: service-info (public) carries what the pages need to start the
authorization code flow with PKCE as a public client (``oidc_login``): no secret is involved.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, request
from werkzeug.wrappers import Response as BaseResponse

from toolchest_wes.config import AuthMode, Settings

__all__ = ["ASSET_PREFIX", "OIDC_LOGIN_EXTENSION", "install_dashboard", "oidc_login"]

#: Where the assets are served, followed by their content hash.
ASSET_PREFIX = "/dashboard/"
_YEAR_S = 365 * 24 * 3600
#: The service-info field that tells the pages how to sign in with the issuer.
OIDC_LOGIN_EXTENSION = "toolchest_wes_oidc_login"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _static_dir() -> Path:
    return Path(str(resources.files("toolchest_wes") / "dashboard" / "static"))


def _blueprint(folder: Path) -> Blueprint:
    # A few small files, read once: served from memory, with no file handle per request.
    assets = {
        path.name: (path.read_bytes(), _TYPES[path.suffix])
        for path in sorted(folder.iterdir())
        if path.suffix in _TYPES
    }
    digest = hashlib.sha256()
    for name, (body, _type) in assets.items():
        digest.update(name.encode() + b"\0" + body)
    version = digest.hexdigest()[:12]
    shell = (folder / "index.html").read_text(encoding="utf-8")
    page = shell.replace("{{assets}}", f"{ASSET_PREFIX}{version}").encode()
    blueprint = Blueprint("dashboard", __name__)

    @blueprint.get("/")
    def index() -> BaseResponse:
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache"
        response.add_etag()
        return response.make_conditional(request)

    @blueprint.get(f"{ASSET_PREFIX}<tag>/<name>")
    def asset(tag: str, name: str) -> BaseResponse:
        if name not in assets:
            abort(404)
        body, mimetype = assets[name]
        response = Response(body, mimetype=mimetype)
        # A page still holding an older hash gets today's file, but must not keep it.
        response.headers["Cache-Control"] = (
            f"public, max-age={_YEAR_S}, immutable" if tag == version else "no-cache"
        )
        response.add_etag()
        return response.make_conditional(request)

    return blueprint


def install_dashboard(app_flask: Flask) -> None:
    """Serve the dashboard at ``/`` and its assets under ``/dashboard/<hash>/``."""
    app_flask.register_blueprint(_blueprint(_static_dir()))


def oidc_login(settings: Settings) -> dict[str, Any] | None:
    """What the pages need to sign in with the issuer; ``None`` unless ``--auth oidc`` and a
    client id are set.

    Endpoints left unset are ``None``: the browser reads them from the issuer's discovery
    document, so this server never waits on the issuer to answer service-info. ``token``
    names the token the pages send to the API: the ID token when the required audience is
    the client id (an ID token's ``aud`` is always the client id), else the access token.
    """
    if settings.effective_auth is not AuthMode.OIDC or not settings.oidc_client_id:
        return None
    use_id_token = settings.oidc_audience == settings.oidc_client_id
    return {
        "issuer": settings.oidc_issuer,
        "client_id": settings.oidc_client_id,
        "authorization_endpoint": settings.oidc_authorization_endpoint,
        "token_endpoint": settings.oidc_token_endpoint,
        "scopes": settings.oidc_scopes,
        "token": "id_token" if use_id_token else "access_token",
    }
