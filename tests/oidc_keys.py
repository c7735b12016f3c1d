"""A test identity provider: RSA and EC keys, a JWKS file or loopback URL, signed JWTs."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.example.test/realms/wes"
AUDIENCE = "toolchest-wes"


class Provider:
    """Keys ``rsa-1`` (RS256) and ``ec-1`` (ES256), plus a key it does not publish."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
        }
        self.unpublished = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published = ["rsa-1", "ec-1"]

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            key = self.keys[kid]
            algorithm: Any = jwt.algorithms.RSAAlgorithm if kid.startswith("rsa") else None
            if algorithm is None:
                algorithm = jwt.algorithms.ECAlgorithm
            jwk = json.loads(algorithm.to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig")
            keys.append(jwk)
        return {"keys": keys}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def add_key(self, kid: str) -> None:
        """A new RSA key, published from the next JWKS read (a rotation)."""
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def token(
        self,
        sub: str = "alice",
        *,
        kid: str = "rsa-1",
        alg: str | None = None,
        key: Any = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A JWT for ``sub``; claims override the defaults (``None`` removes one)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + 300,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        alg = alg or ("ES256" if kid.startswith("ec") else "RS256")
        signing_key = key if key is not None else self.keys.get(kid, self.unpublished)
        return jwt.encode(
            payload, signing_key, algorithm=alg, headers={"kid": kid, **(headers or {})}
        )


@contextlib.contextmanager
def serve_jwks(provider: Provider) -> Iterator[tuple[str, list[str]]]:
    """Serve the provider's JWKS on a free loopback port; yields the URL and the request log."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = json.dumps(provider.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
