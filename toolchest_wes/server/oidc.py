"""OIDC bearer tokens: JWTs signed by an identity provider, checked against its JWKS.

Only RS256 and ES256 signatures are accepted: never ``none``, and never the HMAC algorithms,
whose "public" key would be a shared secret (and which a JWKS-driven verifier can be tricked
into using with a public key as the secret). ``iss``, ``aud`` and ``exp`` must be present and
right; ``nbf`` and ``iat`` are checked when present. Clocks may differ by ``LEEWAY_S``.

The JWKS comes from an http(s) URL or a file. Keys are kept in memory and read again when
they are older than ``max_age_s``, when the file changed, or when a token names a key id
(``kid``) that is not known yet, which is how a key rotation at the provider arrives. That
last refresh is rate-limited, so tokens with made-up key ids cannot make this server hammer
the provider.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import jwt

from toolchest_wes.core.caller import Caller
from toolchest_wes.core.errors import InvalidTokenError, ServiceUnavailableError

__all__ = ["ALGORITHMS", "LEEWAY_S", "JwksSource", "OidcVerifier"]

logger = logging.getLogger(__name__)

#: The signature algorithms accepted.
ALGORITHMS = ("RS256", "ES256")
#: Clock skew tolerated on exp, nbf and iat, in seconds.
LEEWAY_S = 30
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
_MAX_JWKS_BYTES = 1 << 20
#: How long a verified token is trusted without checking it again, and how many are kept.
_VERIFIED_TTL_S = 60.0
_VERIFIED_MAX = 10_000


class JwksSource:
    """The signing keys of an identity provider, by key id.

    Args:
        location: An ``http(s)://`` URL, or the path of a JWKS file.
        max_age_s: Keys older than this are read again at the next use.
        min_refresh_s: Least time between two reads caused by unknown key ids.
        timeout_s: Timeout of one fetch of a URL.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        location: str,
        *,
        max_age_s: float = 300.0,
        min_refresh_s: float = 30.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = location
        self.is_url = urlsplit(location).scheme.lower() in ("http", "https")
        self._max_age_s = max_age_s
        self._min_refresh_s = min_refresh_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._file_stamp: tuple[int, int] | None = None

    def load(self) -> int:
        """Read the keys now; returns how many are usable. Raises ``ValueError`` or ``OSError``."""
        with self._lock:
            return self._load()

    def key(self, kid: str | None) -> jwt.PyJWK:
        """The key with id ``kid`` (or the only key, for a token without ``kid``).

        Raises:
            InvalidTokenError: No such key, even after reading the keys again.
            ServiceUnavailableError: The keys cannot be read and none are known.
        """
        with self._lock:
            now = self._clock()
            if self._loaded_at is None or self._stale(now):
                self._try_load(required=not self._keys)
            found = self._find(kid)
            if found is None and now - (self._loaded_at or 0.0) >= self._min_refresh_s:
                self._try_load(required=False)
                found = self._find(kid)
        if found is None:
            if kid is None:
                raise InvalidTokenError(
                    "the token has no key id (kid) and the issuer has several keys"
                )
            raise InvalidTokenError(
                f"the token is signed with key {kid!r}, which the issuer does not list"
            )
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self, now: float) -> bool:
        if self._loaded_at is not None and now - self._loaded_at >= self._max_age_s:
            return True
        return not self.is_url and self._stat() != self._file_stamp

    def _try_load(self, *, required: bool) -> None:
        try:
            self._load()
        except (OSError, ValueError) as exc:
            # Keep the keys we have: an outage of the provider must not lock users out.
            self._loaded_at = self._clock()
            logger.warning("could not read the JWKS location=%s error=%s", self.location, exc)
            if required:
                raise ServiceUnavailableError(
                    "the server cannot read its identity provider's keys; retry later"
                ) from exc

    def _load(self) -> int:
        stamp = None
        if self.is_url:
            request = urllib.request.Request(self.location, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                raw = response.read(_MAX_JWKS_BYTES + 1)
        else:
            stamp = self._stat()
            with open(self.location, "rb") as f:
                raw = f.read(_MAX_JWKS_BYTES + 1)
        if len(raw) > _MAX_JWKS_BYTES:
            raise ValueError("the JWKS is larger than 1 MiB")
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("a JWKS is a JSON object with a 'keys' list")
        keys = dict(_usable_keys(data["keys"]))
        if not keys:
            raise ValueError("the JWKS has no RSA or EC signing key")
        self._keys = keys
        self._loaded_at = self._clock()
        self._file_stamp = stamp
        logger.info("loaded JWKS location=%s keys=%d", self.location, len(keys))
        return len(keys)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.location)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)


def _usable_keys(entries: Iterable[Any]) -> Iterable[tuple[str | None, jwt.PyJWK]]:
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            logger.warning("skipping a JWKS key kid=%s error=%s", entry.get("kid"), exc)
            continue
        kid = entry.get("kid")
        yield (str(kid) if kid is not None else None), key


class OidcVerifier:
    """Turns a JWT into a :class:`Caller`, or raises ``InvalidTokenError`` saying why not.

    Args:
        jwks: The provider's keys.
        issuer: The required ``iss``.
        audience: The required ``aud`` (one of the token's audiences).
        user_claim: The claim that names the user.
        admin_users: User names that are admins.
        admin_claim: A claim (dotted path into nested objects) that makes a user an admin
            when it equals, or is a list that contains, ``admin_value``.
        admin_value: See ``admin_claim``.
    """

    def __init__(
        self,
        jwks: JwksSource,
        *,
        issuer: str,
        audience: str,
        user_claim: str = "sub",
        admin_users: frozenset[str] = frozenset(),
        admin_claim: str | None = None,
        admin_value: str = "wes-admin",
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.user_claim = user_claim
        self.admin_users = admin_users
        self.admin_claim = admin_claim
        self.admin_value = admin_value
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._verified_lock = threading.Lock()

    def verify(self, token: str) -> Caller:
        """The caller the token names. Raises ``InvalidTokenError``.

        Clients poll with one token many times; checking it once costs hundreds of
        microseconds (PyJWT's decoding more than the signature), so a verified token is
        remembered until it expires, for at most a minute.
        """
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        hit = self._verified.get(digest)
        now = time.time()
        if hit is not None and now < hit[1]:
            return hit[0]
        caller, exp = self._verify(token)
        with self._verified_lock:
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified = {k: v for k, v in self._verified.items() if v[1] > now}
                if len(self._verified) >= _VERIFIED_MAX:
                    self._verified.clear()
            self._verified[digest] = (caller, min(exp, now + _VERIFIED_TTL_S))
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidTokenError(
                f"tokens signed with {alg!r} are not accepted; the issuer must sign with "
                f"{' or '.join(ALGORITHMS)}"
            )
        kid = header.get("kid")
        key = self.jwks.key(kid if isinstance(kid, str) else None)
        if key.key_type != _KEY_TYPES[alg]:
            raise InvalidTokenError(f"the token says {alg} but its key {kid!r} is {key.key_type}")
        claims = self._decode(token, key, alg)
        user = _claim(claims, self.user_claim)
        if not isinstance(user, str) or not user:
            raise InvalidTokenError(f"the token has no {self.user_claim!r} claim naming the user")
        is_admin = user in self.admin_users or self._admin_by_claim(claims)
        return Caller(user=user, is_admin=is_admin), float(claims["exp"])

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired; get a new one") from None
        except jwt.ImmatureSignatureError:
            raise InvalidTokenError(
                "the token is not valid yet (nbf or iat is in the future)"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError(
                f"the token is not meant for this server: its audience (aud) must include "
                f"{self.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError(
                f"the token comes from another issuer; this server accepts {self.issuer!r}"
            ) from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("the token's signature does not verify") from None
        except jwt.PyJWTError:
            raise InvalidTokenError("the token is not a valid JWT") from None
        return claims

    def _admin_by_claim(self, claims: dict[str, Any]) -> bool:
        if not self.admin_claim:
            return False
        value = _claim(claims, self.admin_claim)
        if isinstance(value, list):
            return self.admin_value in value
        if isinstance(value, str):
            # Scopes come as one space-separated string.
            return self.admin_value in value.split()
        return False


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    if path in claims:
        return claims[path]
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
