"""OIDC JWT verification: keys from a JWKS file or URL, every claim check, admin claims."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.oidc_keys import AUDIENCE, ISSUER, Provider, serve_jwks
from toolchest_wes.core.caller import Caller
from toolchest_wes.core.errors import InvalidTokenError, ServiceUnavailableError
from toolchest_wes.server.oidc import JwksSource, OidcVerifier


@pytest.fixture(scope="module")
def provider():
    return Provider()


@pytest.fixture
def jwks_file(provider, tmp_path):
    return provider.write_jwks(tmp_path / "jwks.json")


def verifier(location, **kwargs) -> OidcVerifier:
    options = {"issuer": ISSUER, "audience": AUDIENCE, **kwargs}
    return OidcVerifier(JwksSource(str(location)), **options)


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_rs256_and_es256_tokens_name_their_subject(provider, jwks_file, kid):
    assert verifier(jwks_file).verify(provider.token("alice", kid=kid)) == Caller("alice")


def test_a_jwks_url_works_like_a_file(provider):
    with serve_jwks(provider) as (url, requests):
        check = verifier(url)
        assert check.verify(provider.token("bob")) == Caller("bob")
        assert check.verify(provider.token("bob", kid="ec-1")) == Caller("bob")
    assert len(requests) == 1, "the keys are cached"


def _unsigned(payload: dict, alg: str = "none") -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'kid': 'rsa-1'})}.{part(payload)}."


def _tampered(token: str) -> str:
    head, body, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{body}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.token(exp=int(time.time()) - 120), "expired"),
        (lambda p: p.token(aud="someone-else"), "audience (aud) must include 'toolchest-wes'"),
        (lambda p: p.token(iss="https://evil.test"), f"this server accepts {ISSUER!r}"),
        (lambda p: p.token(nbf=int(time.time()) + 600), "not valid yet"),
        (lambda p: p.token(exp=None), "'exp' claim"),
        (lambda p: p.token(aud=None), "'aud' claim"),
        (lambda p: p.token(sub=None), "'sub' claim naming the user"),
        (lambda p: p.token(kid="rsa-9"), "key 'rsa-9', which the issuer does not list"),
        (lambda p: p.token(key=p.unpublished), "signature does not verify"),
        (lambda p: p.token(alg="HS256", key="x" * 32), "'HS256' are not accepted"),
        (lambda p: p.token(alg="RS512"), "'RS512' are not accepted"),
        (lambda p: _unsigned({"iss": ISSUER, "aud": AUDIENCE, "sub": "a"}), "'none'"),
        (lambda p: p.token(kid="ec-1", alg="RS256", key=p.keys["rsa-1"]), "is EC"),
        (lambda p: "not-a-jwt", "not a JWT"),
        (lambda p: _tampered(p.token()), "signature does not verify"),
    ],
)
def test_bad_tokens_say_what_is_wrong(provider, jwks_file, make, fragment):
    token = make(provider)

    with pytest.raises(InvalidTokenError) as caught:
        verifier(jwks_file).verify(token)

    assert fragment in caught.value.msg
    assert token not in caught.value.msg


def test_small_clock_skew_is_tolerated(provider, jwks_file):
    token = provider.token(exp=int(time.time()) - 5, nbf=int(time.time()) + 5)

    assert verifier(jwks_file).verify(token).user == "alice"


def test_user_claim_and_admins(provider, jwks_file):
    check = verifier(
        jwks_file,
        user_claim="preferred_username",
        admin_users=frozenset({"root"}),
        admin_claim="realm_access.roles",
    )

    assert check.verify(provider.token(preferred_username="carol")) == Caller("carol")
    assert check.verify(provider.token(preferred_username="root")).is_admin
    admin = provider.token(preferred_username="dora", realm_access={"roles": ["wes-admin"]})
    assert check.verify(admin) == Caller("dora", is_admin=True)
    other_role = provider.token(preferred_username="eve", realm_access={"roles": ["user"]})
    assert not check.verify(other_role).is_admin


@pytest.mark.parametrize(
    ("claim", "value", "admin"),
    [
        ("groups", ["staff", "wes-admin"], True),
        ("groups", "wes-admin", True),
        ("scope", "openid wes-admin", True),
        ("scope", "openid", False),
        ("groups", {"wes-admin": True}, False),
    ],
)
def test_admin_claim_forms(provider, jwks_file, claim, value, admin):
    check = verifier(jwks_file, admin_claim=claim)

    assert check.verify(provider.token(**{claim: value})).is_admin is admin


def test_unknown_kid_refreshes_the_keys_at_most_once_per_interval(provider):
    now = [1000.0]
    rotating = Provider()
    with serve_jwks(rotating) as (url, requests):
        source = JwksSource(url, min_refresh_s=30, clock=lambda: now[0])
        check = OidcVerifier(source, issuer=ISSUER, audience=AUDIENCE)
        assert check.verify(rotating.token()).user == "alice"
        assert len(requests) == 1

        now[0] += 40
        rotating.add_key("rsa-2")
        assert check.verify(rotating.token(kid="rsa-2")).user == "alice"
        assert len(requests) == 2

        for _ in range(5):
            with pytest.raises(InvalidTokenError, match="rsa-3"):
                check.verify(rotating.token(kid="rsa-3"))
        assert len(requests) == 2, "made-up key ids do not make the server refetch"


def test_changed_jwks_file_is_read_again(tmp_path):
    rotating = Provider()
    path = rotating.write_jwks(tmp_path / "jwks.json")
    check = verifier(path)
    assert check.verify(rotating.token()).user == "alice"

    rotating.add_key("rsa-new")
    rotating.write_jwks(path)

    assert check.verify(rotating.token(kid="rsa-new")).user == "alice"


def test_unreadable_keys_are_a_503_and_known_keys_survive_an_outage(provider, tmp_path):
    missing = JwksSource(str(tmp_path / "nope.json"))
    with pytest.raises(ServiceUnavailableError):
        missing.key("rsa-1")

    with serve_jwks(provider) as (url, _):
        now = [0.0]
        source = JwksSource(url, max_age_s=60, clock=lambda: now[0])
        assert source.key("rsa-1").key_id == "rsa-1"
    now[0] = 1000.0  # stale, and the server is gone
    assert source.key("rsa-1").key_id == "rsa-1"


@pytest.mark.parametrize(
    "content",
    ["[]", '{"keys": []}', '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "not json"],
)
def test_jwks_without_usable_keys_is_refused(tmp_path, content):
    path = tmp_path / "jwks.json"
    path.write_text(content)

    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
        JwksSource(str(path)).load()


def test_token_without_kid_uses_the_only_key(tmp_path):
    single = Provider()
    single.published = ["rsa-1"]
    path = single.write_jwks(tmp_path / "jwks.json")
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "solo", "exp": int(time.time()) + 60},
        single.keys["rsa-1"],
        algorithm="RS256",
    )

    assert verifier(path).verify(token).user == "solo"
    with pytest.raises(InvalidTokenError, match="no key id"):
        verifier(Provider().write_jwks(tmp_path / "two.json")).verify(token)


class _NoKeys:
    def key(self, kid):
        raise InvalidTokenError("keys were asked for")


def test_a_verified_token_is_remembered_until_it_expires(provider, jwks_file):
    check = verifier(jwks_file)
    fresh = provider.token("alice")
    # Past exp but inside the clock-skew leeway: valid, yet never remembered.
    ending = provider.token("bob", exp=int(time.time()) - 10)
    assert check.verify(fresh).user == "alice"
    assert check.verify(ending).user == "bob"

    check.jwks = _NoKeys()

    assert check.verify(fresh).user == "alice"
    with pytest.raises(InvalidTokenError, match="keys were asked for"):
        check.verify(ending)
