"""register_error_handlers: every error leaves the server as a WES ``ErrorResponse``, or as a
TRS ``Error`` under the TRS API."""

from __future__ import annotations

import json
import logging

import connexion
from connexion.exceptions import ProblemException
from flask import Response, has_request_context, request
from werkzeug.exceptions import HTTPException, default_exceptions

from toolchest_wes.core.errors import TooManyRequestsError, WesError
from toolchest_wes.models import ErrorResponse
from toolchest_wes.server.forms import IDEMPOTENCY_KEY_HEADER
from toolchest_wes.server.limits import too_large_message
from toolchest_wes.server.spec import TRS_BASE_PATH
from toolchest_wes.store.base import StoreUnavailableError

__all__ = ["RETRY_AFTER_S", "error_response", "register_error_handlers"]

logger = logging.getLogger(__name__)

_SCHEMA_DUMP = "\n\nFailed validating"
_INTERNAL_MSG = "internal server error; the server log has the details"
_UNAVAILABLE_MSG = "the run database is not answering; retry in a few seconds"
_RESEND_WITH_KEY = (
    "; resend the request with the same Idempotency-Key, which returns the run if one was "
    "recorded and never makes a second"
)
#: Seconds a client is told to wait before retrying a 503 (the header ``Retry-After``).
RETRY_AFTER_S = 5


def error_response(status: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON ``{msg, status_code}`` response with ``status_code`` equal to the HTTP status;
    TRS's ``{code, message}`` for a request to the TRS API."""
    if has_request_context() and request.path.startswith(TRS_BASE_PATH + "/"):
        body = json.dumps({"code": status, "message": msg})
    else:
        body = ErrorResponse(msg=msg, status_code=status).model_dump_json()
    return Response(body, status=status, mimetype="application/json", headers=headers)


def _wes_error(exc: WesError) -> Response:
    if isinstance(exc, TooManyRequestsError):
        return error_response(exc.status_code, exc.msg, {"Retry-After": str(exc.retry_after_s)})
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status_code == 503 else None
    return error_response(exc.status_code, exc.msg, headers)


def _store_unavailable(exc: StoreUnavailableError) -> Response:
    # Any operation may find the store gone (a read, a submit, a cancel's transition); the
    # details, such as the database's address, go to the log only.
    logger.warning("%s %s: %s", request.method, request.path, exc)
    msg = _UNAVAILABLE_MSG
    if request.method == "POST" and IDEMPOTENCY_KEY_HEADER in request.headers:
        msg += _RESEND_WITH_KEY
    return error_response(503, msg, {"Retry-After": str(RETRY_AFTER_S)})


def _problem(exc: ProblemException) -> Response:
    status = int(exc.status or 500)
    if status >= 500:
        logger.error("request failed: %s: %s", exc.title, exc.detail)
        return error_response(status, _INTERNAL_MSG)
    msg = str(exc.detail or exc.title or "bad request")
    # jsonschema's message goes on to dump the whole schema (every State's description, for
    # one); its first paragraph says what to fix.
    msg = msg.split(_SCHEMA_DUMP, 1)[0]
    return error_response(status, msg, {k: v for k, v in (exc.headers or {}).items()})


def _http(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers: dict[str, str] = {}
    if status == 404:
        msg = (
            f"no such endpoint: {request.method} {request.path}; the WES API is under /ga4gh/wes/v1"
        )
    elif status == 405:
        allowed = sorted(getattr(exc, "valid_methods", None) or [])
        headers["Allow"] = ", ".join(allowed)
        msg = f"method {request.method} is not allowed on {request.path}; use {', '.join(allowed)}"
    elif status == 413:
        msg = too_large_message()
    elif status >= 500:
        logger.error("request failed: %s", exc)
        msg = _INTERNAL_MSG
    else:
        msg = exc.description or exc.name
    return error_response(status, msg, headers)


def _internal(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http(exc)
    logger.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(500, _INTERNAL_MSG)


def register_error_handlers(app: connexion.FlaskApp) -> None:
    """The one place that maps exceptions to responses; the lookup walks each class's MRO."""
    app.add_error_handler(WesError, _wes_error)
    app.add_error_handler(StoreUnavailableError, _store_unavailable)
    app.add_error_handler(ProblemException, _problem)
    app.add_error_handler(HTTPException, _http)
    # connexion registers its problem+json handler for each status code, and Flask prefers a
    # handler registered for the code over one for the class, so replace them code by code.
    for code in default_exceptions:
        app.add_error_handler(code, _http)
    app.add_error_handler(Exception, _internal)
