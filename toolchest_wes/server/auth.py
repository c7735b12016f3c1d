"""Bearer-token authentication of API requests: API tokens or OIDC JWTs.

One ``before_request`` hook on the Flask app checks every request, including the lean view
of ``GetRunStatus`` (``fastpath``), which replaces connexion's view but not the app's hooks.
It answers 401 with ``WWW-Authenticate: Bearer`` unless the request carries a valid token,
and leaves the :class:`~toolchest_wes.core.caller.Caller` in ``flask.g`` for the handlers,
which pass it to ``RunService``; ownership is checked there. The status polls that
``fastpath`` answers before Flask are authenticated there with the same authenticator
(:func:`caller_from_header`); any request it cannot answer goes through the hook.

Public, without a token: ``GET /service-info`` (clients read it to learn how to
authenticate: ``auth_instructions_url``), ``/health`` (load balancer probes), ``/metrics``
(Prometheus scrapers; it holds only run counts per state, which service-info shows anyway,
and request counts per operation, never run ids or user names), the API documentation:
the Swagger UI and ``openapi.json``, and the dashboard's static files (``/`` and
``/dashboard/``), which hold no data: the pages ask the API for it with the user's token.
"""

from __future__ import annotations

import base64
import binascii
import logging
import stat
from typing import Protocol

from flask import Flask, Response, current_app, g, request

from toolchest_wes.config import AuthMode, Settings, is_loopback
from toolchest_wes.core.caller import ANONYMOUS, Caller
from toolchest_wes.core.errors import InvalidTokenError, UnauthorizedError
from toolchest_wes.server.errors import error_response
from toolchest_wes.server.spec import BASE_PATH, TRS_BASE_PATH
from toolchest_wes.server.tokens import TokenFile, TokenFileError

__all__ = [
    "PUBLIC_PATHS",
    "Authenticator",
    "TokenAuthenticator",
    "build_authenticator",
    "caller_from_header",
    "check_auth_config",
    "current_caller",
    "install_auth",
]

logger = logging.getLogger(__name__)

#: Paths answered without a token.
PUBLIC_PATHS = frozenset(
    {f"{BASE_PATH}/service-info", "/health", "/metrics", f"{BASE_PATH}/openapi.json", "/"}
)
#: Path prefixes answered without a token: the Swagger UI and its assets, the dashboard's
#: static files (they hold no data; the pages call the API with the user's token), and the
#: TRS API, which lists the catalog (what the server will run, not what anyone ran),
#: read-only, so that other servers and registries can read it as they read any public TRS
#: registry.
PUBLIC_PREFIXES = (f"{BASE_PATH}/ui/", "/dashboard/", f"{TRS_BASE_PATH}/")
REALM = "toolchest-wes"

_UI = f"{BASE_PATH}/ui"  # redirects to the UI
_CALLER_KEY = "toolchest_wes_caller"
_AUTH_ON_KEY = "TOOLCHEST_WES_AUTH_ON"


class Authenticator(Protocol):
    """Turns a bearer token into the caller it names."""

    def authenticate(self, token: str) -> Caller:
        """The caller; raises ``InvalidTokenError`` with a message for the user."""
        ...


class TokenAuthenticator:
    """API tokens from the token file (``toolchest-wes token create``)."""

    def __init__(self, tokens: TokenFile, admin_users: frozenset[str] = frozenset()) -> None:
        self.tokens = tokens
        self.admin_users = admin_users

    def authenticate(self, token: str) -> Caller:
        """The caller of a known token; ``InvalidTokenError`` for an unknown or revoked one."""
        entry = self.tokens.lookup(token)
        if entry is None:
            raise InvalidTokenError(
                "the API token is unknown or revoked; ask the server's operator for a new one "
                "(toolchest-wes token create USER)"
            )
        return Caller(user=entry.user, is_admin=entry.admin or entry.user in self.admin_users)


class _OidcAuthenticator:
    def __init__(self, settings: Settings) -> None:
        from toolchest_wes.server.oidc import JwksSource, OidcVerifier

        assert settings.oidc_jwks and settings.oidc_issuer and settings.oidc_audience
        jwks = JwksSource(settings.oidc_jwks)
        try:
            count = jwks.load()
        except (OSError, ValueError) as exc:
            if not jwks.is_url:
                raise ValueError(f"--oidc-jwks {settings.oidc_jwks}: {exc}") from exc
            # The provider may be down for a moment; requests retry the URL.
            logger.warning("could not fetch the JWKS yet url=%s error=%s", jwks.location, exc)
        else:
            logger.info("OIDC keys loaded jwks=%s keys=%d", jwks.location, count)
        self.verifier = OidcVerifier(
            jwks,
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            user_claim=settings.oidc_user_claim,
            admin_users=settings.admin_user_names,
            admin_claim=settings.oidc_admin_claim,
            admin_value=settings.oidc_admin_value,
        )

    def authenticate(self, token: str) -> Caller:
        return self.verifier.verify(token)


def check_auth_config(settings: Settings) -> None:
    """Raise ``ValueError`` saying what to fix if the authentication settings cannot work.

    Checks what can be checked before the server starts: the token file must be readable
    and valid; a JWKS file must hold usable keys. A JWKS URL is only fetched by the server.
    """
    mode = settings.effective_auth
    if mode is AuthMode.TOKENS:
        _read_tokens(TokenFile(settings.tokens_file))
    elif mode is AuthMode.OIDC and settings.oidc_jwks:
        from toolchest_wes.server.oidc import JwksSource

        jwks = JwksSource(settings.oidc_jwks)
        if not jwks.is_url:
            try:
                jwks.load()
            except (OSError, ValueError) as exc:
                raise ValueError(f"--oidc-jwks {settings.oidc_jwks}: {exc}") from exc


def build_authenticator(settings: Settings) -> Authenticator | None:
    """The authenticator ``settings`` ask for, or ``None`` when authentication is off.

    Raises:
        ValueError: The configuration cannot work (an unreadable token file or JWKS file);
            the message says what to fix.
    """
    mode = settings.effective_auth
    if mode is AuthMode.OFF:
        if not is_loopback(settings.host):
            logger.warning(
                "authentication is off on host=%s: anyone who can reach it can run "
                "workflows and read every run",
                settings.host,
            )
        return None
    if mode is AuthMode.OIDC:
        return _OidcAuthenticator(settings)
    tokens = TokenFile(settings.tokens_file)
    if not _read_tokens(tokens):
        logger.warning(
            "no API tokens yet; create one with: toolchest-wes token create USER --data-dir %s",
            settings.data_dir,
        )
    elif settings.tokens_file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("the token file is readable by others path=%s", settings.tokens_file)
    return TokenAuthenticator(tokens, settings.admin_user_names)


def _read_tokens(tokens: TokenFile) -> int:
    """How many tokens the file holds; ``ValueError`` saying what to fix if it is unreadable."""
    try:
        return len(tokens.entries())
    except TokenFileError as exc:
        raise ValueError(str(exc)) from exc


def install_auth(app_flask: Flask, authenticator: Authenticator | None) -> None:
    """Require a bearer token on every non-public request of ``app_flask``.

    Install it after the metrics hook (so 401s are counted) and before the other hooks (so
    no request is looked at before its sender is known).
    """
    app_flask.config[_AUTH_ON_KEY] = authenticator is not None
    if authenticator is None:
        return

    def check() -> Response | None:
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or path == _UI:
            return None
        header = request.headers.get("Authorization", "")
        if not header:
            return _challenge(
                "this endpoint needs a bearer token: send 'Authorization: Bearer <token>'"
            )
        token = _token_of(header)
        if not token:
            return _challenge(
                "the Authorization header must be 'Bearer <token>' (or Basic with the token "
                "as the password)",
                error="invalid_request",
            )
        try:
            setattr(g, _CALLER_KEY, authenticator.authenticate(token))
        except InvalidTokenError as exc:
            return _challenge(exc.msg, error="invalid_token")
        return None

    app_flask.before_request(check)


def caller_from_header(authenticator: Authenticator, header: str) -> Caller | None:
    """The caller that an ``Authorization`` header's token names, or ``None`` when it names
    nobody (no header, a malformed one, an unknown or revoked token).

    For a path answered before the hook (``server.fastpath``), which leaves every request
    without a known caller to the hook, and so to its 401 and challenge.
    """
    token = _token_of(header)
    if not token:
        return None
    try:
        return authenticator.authenticate(token)
    except InvalidTokenError:
        return None


def _token_of(header: str) -> str | None:
    """The token of an ``Authorization`` header: ``Bearer <token>``, or HTTP Basic with the
    token as the password.

    Basic is there for clients that can send nothing else: ``toil-wes-cwl-runner`` sends
    ``TOIL_WES_USER`` and ``TOIL_WES_PASSWORD`` that way. The user name is not checked; the
    token alone says who the caller is.
    """
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep and password else None


def current_caller() -> Caller:
    """The caller of the current request: set by the hook, or anonymous when auth is off.

    Raises ``UnauthorizedError`` if authentication is on but the hook did not run, so that a
    route added without it fails closed.
    """
    caller: Caller | None = g.get(_CALLER_KEY)
    if caller is not None:
        return caller
    if current_app.config.get(_AUTH_ON_KEY, False):
        raise UnauthorizedError("this endpoint needs a bearer token")
    return ANONYMOUS


def _challenge(msg: str, *, error: str | None = None) -> Response:
    value = f'Bearer realm="{REALM}"'
    if error:
        # The description is our own message, never the token; quotes would end the string.
        description = msg.replace("\\", "").replace('"', "'")
        value += f', error="{error}", error_description="{description}"'
    return error_response(401, msg, {"WWW-Authenticate": value})
