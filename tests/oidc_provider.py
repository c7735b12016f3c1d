"""A tiny real OIDC provider on a loopback port, for the dashboard's sign-in.

It serves the discovery document, ``/authorize`` (which signs in ``user`` at once and sends
the browser back with a code), ``/token`` (which checks the code and the PKCE verifier, and
answers with CORS headers, as a browser's token request needs) and ``/jwks``. Tokens are
signed with the keys of :class:`tests.oidc_keys.Provider`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.oidc_keys import AUDIENCE, Provider

CLIENT_ID = "toolchest-wes-dashboard"


@dataclass
class Idp:
    """The provider's state: who signs in, the codes given out, and faults to inject."""

    url: str
    redirect_uri: str
    keys: Provider
    user: str = "alice"
    #: Returned instead of the browser's state (a forged answer), when set.
    forged_state: str | None = None
    #: Makes /token find that no verifier matches the code's challenge.
    wrong_challenge: bool = False
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def token(self, sub: str) -> str:
        """An access token of this issuer for ``sub``, as the API accepts it."""
        return self.keys.token(sub, iss=self.url)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _handler(idp: Idp) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": idp.url,
                        "authorization_endpoint": f"{idp.url}/authorize",
                        "token_endpoint": f"{idp.url}/token",
                        "jwks_uri": f"{idp.url}/jwks",
                        "code_challenge_methods_supported": ["S256"],
                    },
                )
            elif parts.path == "/jwks":
                self._json(200, idp.keys.jwks())
            elif parts.path == "/authorize":
                self._authorize(query)
            else:
                self._json(404, {"error": "not_found"})

        def _authorize(self, query: dict[str, str]) -> None:
            problems = [
                name
                for name, ok in (
                    ("client_id", query.get("client_id") == CLIENT_ID),
                    ("redirect_uri", query.get("redirect_uri") == idp.redirect_uri),
                    ("response_type", query.get("response_type") == "code"),
                    ("code_challenge_method", query.get("code_challenge_method") == "S256"),
                    ("code_challenge", bool(query.get("code_challenge"))),
                    ("state", bool(query.get("state"))),
                )
                if not ok
            ]
            if problems:
                # A wrong client or redirect URI must never be redirected to.
                self._json(400, {"error": "invalid_request", "bad": problems})
                return
            code = secrets.token_urlsafe(16)
            challenge = query["code_challenge"]
            if idp.wrong_challenge:
                challenge = _challenge("not the verifier")
            idp.codes[code] = (challenge, query["redirect_uri"], query.get("scope", ""))
            state = idp.forged_state or query["state"]
            self.send_response(302)
            self.send_header(
                "Location", f"{idp.redirect_uri}?{urlencode({'code': code, 'state': state})}"
            )
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_OPTIONS(self) -> None:
            self.send_response(204)
            self._cors()
            self.send_header("Access-Control-Allow-Methods", "POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type, Accept")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self._json(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            idp.token_requests.append(form)
            grant = idp.codes.pop(form.get("code", ""), None)
            if self.headers.get_content_type() != "application/x-www-form-urlencoded":
                self._json(400, {"error": "invalid_request", "error_description": "not a form"})
            elif form.get("grant_type") != "authorization_code" or grant is None:
                self._json(400, {"error": "invalid_grant", "error_description": "unknown code"})
            elif form.get("client_id") != CLIENT_ID or form.get("redirect_uri") != grant[1]:
                self._json(400, {"error": "invalid_grant", "error_description": "wrong client"})
            elif _challenge(form.get("code_verifier", "")) != grant[0]:
                description = "the code_verifier does not match the code_challenge"
                self._json(400, {"error": "invalid_grant", "error_description": description})
            else:
                self._json(
                    200,
                    {
                        "access_token": idp.token(idp.user),
                        "id_token": idp.keys.token(idp.user, iss=idp.url, aud=CLIENT_ID),
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "scope": grant[2],
                    },
                )

        def _cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
            self.send_header("Vary", "Origin")

        def _json(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve_idp(redirect_uri: str = "") -> Iterator[Idp]:
    """Run the provider on a free loopback port; ``redirect_uri`` is the registered one (it
    may be set later, on the ``Idp``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    idp = Idp(f"http://127.0.0.1:{server.server_address[1]}", redirect_uri, Provider())
    server.RequestHandlerClass = _handler(idp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


__all__ = ["AUDIENCE", "CLIENT_ID", "Idp", "serve_idp"]
