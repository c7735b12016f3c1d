"""Errors that reach the client as a WES ``ErrorResponse``; no HTTP imports here."""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InsufficientStorageError",
    "InvalidTokenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RunNotFoundError",
    "ServiceUnavailableError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnprocessableContentError",
    "WesError",
]


class WesError(Exception):
    """Base of every error whose message is meant for the client."""

    status_code: int = 500

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


class BadRequestError(WesError):
    """The request is malformed; ``msg`` says what to fix."""

    status_code = 400


class UnauthorizedError(WesError):
    """No valid credentials."""

    status_code = 401


class ForbiddenError(WesError):
    """Valid credentials, but the action is not allowed."""

    status_code = 403


class NotFoundError(WesError):
    """Something other than a run was not found (a task, a log, an output file)."""

    status_code = 404


class RunNotFoundError(NotFoundError):
    """No run with this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} not found")
        self.run_id = run_id


class ServiceUnavailableError(WesError):
    """A backing service (the store) does not answer; the client may retry."""

    status_code = 503


class InvalidTokenError(UnauthorizedError):
    """A bearer token was given but is not valid (unknown, expired, not for this server)."""


class ConflictError(WesError):
    """The run's state does not allow the action now (such as deleting an active run)."""

    status_code = 409


class UnprocessableContentError(WesError):
    """The request is well formed but cannot be applied as sent (an idempotency key reused
    for another request)."""

    status_code = 422


class GoneError(WesError):
    """The resource existed but was removed on purpose (outputs past their retention)."""

    status_code = 410


class InsufficientStorageError(WesError):
    """The server has no room left to store what the request needs (a full disk or quota)."""

    status_code = 507


class PayloadTooLargeError(WesError):
    """The request is larger than a configured limit; ``msg`` names the limit."""

    status_code = 413


class TooManyRequestsError(WesError):
    """A per-user limit is reached for now; the client may retry after ``retry_after_s``."""

    status_code = 429

    def __init__(self, msg: str, *, retry_after_s: int) -> None:
        super().__init__(msg)
        self.retry_after_s = max(1, retry_after_s)
