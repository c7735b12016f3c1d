"""The web dashboard: static pages at ``/`` that are a client of this server's WES API.

Nothing here reads the store or the service: the pages call the same endpoints as any other
client, with the user's bearer token, so every check of the API applies to them. The files
ship in ``toolchest_wes/dashboard/static``, with no build step.

Caching: ``/`` (the page shell) is revalidated on every load; the assets live under a path
that holds a hash of their content, so a browser keeps them for a year and a new release
changes the path. Relative ES module imports resolve under the same hashed path.

Signing in with OIDC: service-info (public) carries what the pages need to start the
authorization code flow with PKCE as a public client (``oidc_login``): no secret is involved.

Named tools: the Submit page builds a form from a catalog tool's inputs, which it reads as
JSON from ``/dashboard/tools/<id>/<version>/inputs`` (``tool_inputs``), so the browser needs
no YAML parser. It reads only what the public TRS API serves: the catalog's descriptors.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Flask, Response, abort, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from toolchest_wes.catalog.catalog import Catalog
from toolchest_wes.catalog.manifest import CatalogVersion
from toolchest_wes.config import AuthMode, Settings
from toolchest_wes.cwl_inputs import fields, top_process

__all__ = [
    "ASSET_PREFIX",
    "OIDC_LOGIN_EXTENSION",
    "install_dashboard",
    "oidc_login",
    "tool_inputs",
]

#: Where the assets are served, followed by their content hash.
ASSET_PREFIX = "/dashboard/"
_YEAR_S = 365 * 24 * 3600
#: The service-info field that tells the pages how to sign in with the issuer.
OIDC_LOGIN_EXTENSION = "toolchest_wes_oidc_login"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _static_dir() -> Path:
    return Path(str(resources.files("toolchest_wes") / "dashboard" / "static"))


def _blueprint(folder: Path, catalog: Catalog | None) -> Blueprint:
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

    # A path: a Dockstore-style TRS id (``#workflow/github.com/org/wc``) holds slashes.
    @blueprint.get(f"{ASSET_PREFIX}tools/<path:tool_id>/<version_id>/inputs")
    def inputs(tool_id: str, version_id: str) -> BaseResponse:
        found = catalog.tool(tool_id) if catalog else None
        # By the id TRS lists it under, as trs_api does.
        known = found is not None and tool_id in (found.id, found.trs_id)
        version = found.version(version_id) if found and known else None
        if version is None:
            abort(404)
        return jsonify(tool_inputs(version))

    return blueprint


def install_dashboard(app_flask: Flask, catalog: Catalog | None = None) -> None:
    """Serve the dashboard at ``/``, its assets under ``/dashboard/<hash>/`` and the inputs
    of the catalog's tools under ``/dashboard/tools/``."""
    app_flask.register_blueprint(_blueprint(_static_dir(), catalog))


def tool_inputs(version: CatalogVersion) -> list[dict[str, Any]]:
    """A catalog tool version's inputs, each as the Submit page's form needs it.

    Each is ``{"name", "kind", "optional", "label", "doc"}`` and ``"default"`` if it has one;
    ``kind`` is ``string``, ``int``, ``float``, ``boolean``, ``File``, ``File[]``, ``enum``
    (with ``"symbols"``) or ``json`` for any other type, which the page takes as JSON text.
    """
    try:
        document = yaml.safe_load(version.primary.content)
    except yaml.YAMLError:
        return []
    process = top_process(document, "") or {}
    found = []
    for name, spec in fields(process.get("inputs")):
        kind, optional = _unwrap(spec.get("type"))
        item: dict[str, Any] = {
            "name": name,
            "optional": optional or "default" in spec,
            "label": str(spec.get("label") or ""),
            "doc": _text(spec.get("doc")),
            **_kind(kind),
        }
        if "default" in spec:
            item["default"] = spec["default"]
        found.append(item)
    return found


def _unwrap(kind: Any) -> tuple[Any, bool]:
    """The type without its ``null`` (``int?``, ``[null, int]``), and whether it had one."""
    if isinstance(kind, str) and kind.endswith("?"):
        return kind[:-1], True
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        return (rest[0] if len(rest) == 1 else rest), True
    return kind, False


#: CWL types the form shows as one field, by the kind of field.
_SIMPLE = {
    "string": "string",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "boolean": "boolean",
    "File": "File",
    "File[]": "File[]",
}


def _kind(kind: Any) -> dict[str, Any]:
    if isinstance(kind, str) and kind in _SIMPLE:
        return {"kind": _SIMPLE[kind]}
    if isinstance(kind, dict):
        if kind.get("type") == "array" and kind.get("items") == "File":
            return {"kind": "File[]"}
        symbols = kind.get("symbols")
        if kind.get("type") == "enum" and isinstance(symbols, list):
            return {"kind": "enum", "symbols": [str(s).rsplit("/", 1)[-1] for s in symbols]}
    return {"kind": "json"}


def _text(doc: Any) -> str:
    # CWL allows a doc as a list of lines.
    if isinstance(doc, list):
        return "\n".join(str(line) for line in doc).strip()
    return str(doc or "").strip()


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
