"""Request building, retries and response decoding, written once for both clients.

Operations are generators in the "sans-I/O" style: they yield :class:`Send` (an
``httpx.Request`` to send; the answer, an ``httpx.Response`` or the ``httpx.RequestError`` that
sending raised, is sent back in), :class:`Fetch` (the same, with the body streamed into a
:class:`Sink`) and :class:`Sleep` (a pause). ``WesClient`` drives them with blocking calls and
``AsyncWesClient`` with ``await``, so retry, paging, wait, download and log-following logic
exist once.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from toolchest_wes.client import exceptions as exc

__all__ = [
    "API_PATH",
    "DEFAULT_RATE_LIMIT_WAIT",
    "Fetch",
    "Op",
    "RateLimitBudget",
    "RetryPolicy",
    "Send",
    "Sink",
    "Sleep",
    "api_error",
    "api_url",
    "decode",
    "request",
]

#: The base path every WES server serves its API under.
API_PATH = "/ga4gh/wes/v1"

#: Statuses after which a request may succeed if sent again.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: Seconds one request may spend in all waiting out 429 answers that say when to come back.
DEFAULT_RATE_LIMIT_WAIT = 600.0

#: The longest Retry-After the client honours; a server asking for more is asked again sooner.
MAX_RETRY_AFTER_S = 300.0

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Send this request; the driver sends back the response or the ``httpx.RequestError``."""

    request: httpx.Request


class Sink(Protocol):
    """Where a :class:`Fetch` streams a response body."""

    def start(self, response: httpx.Response) -> bool:
        """Get ready for ``response``; ``False``: its body is not wanted (an error, a 416)."""
        ...

    def write(self, chunk: bytes) -> None:
        """Take the next piece of the body."""
        ...

    def close(self) -> None:
        """The body has ended, or the connection broke; keep what was written."""
        ...


@dataclass(frozen=True)
class Fetch:
    """Send this request and stream the answer's body into ``sink``.

    The driver sends back the response, whose body is read into it when ``sink.start``
    declines it (an error's message), or the ``httpx.RequestError`` that broke the exchange,
    also in the middle of the body. Either way it closes the sink.
    """

    request: httpx.Request
    sink: Sink


@dataclass(frozen=True)
class Sleep:
    """Pause for this many seconds."""

    seconds: float


Effect = Send | Fetch | Sleep
Outcome = httpx.Response | httpx.RequestError
#: An operation: yields effects, receives outcomes, returns ``T``.
Op = Generator[Effect, Any, T]


def api_url(url: str) -> str:
    """The API root for a server address: ``host:8080`` → ``http://host:8080/ga4gh/wes/v1``."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if not url.endswith(API_PATH):
        url += API_PATH
    return url


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a request again.

    Attributes:
        retries: How many times a request is sent again at most.
        backoff: The first pause, in seconds; it doubles with each retry (with jitter).
        max_backoff: The longest pause, in seconds.
        rate_limit_wait: Seconds one request may spend in all waiting out 429 answers that
            carry ``Retry-After``; those waits do not count against ``retries``. ``None``:
            ``DEFAULT_RATE_LIMIT_WAIT``.
    """

    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    rate_limit_wait: float | None = None

    def rate_limit_budget(self) -> RateLimitBudget:
        """A fresh budget of ``rate_limit_wait`` seconds, for one request."""
        seconds = DEFAULT_RATE_LIMIT_WAIT if self.rate_limit_wait is None else self.rate_limit_wait
        return RateLimitBudget(seconds, self.backoff)

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """The pause before retry number ``attempt + 1``; honours ``Retry-After``."""
        if response is not None:
            asked = retry_after(response)
            if asked is not None:
                return min(asked, MAX_RETRY_AFTER_S)
        base = min(self.max_backoff, self.backoff * 2**attempt)
        # Jitter, so that many clients that failed together do not retry together.
        return float(base * (0.5 + random.random() / 2))


@dataclass
class RateLimitBudget:
    """What is left of the time one request may spend waiting out 429 answers.

    A server that says when to come back (429 with ``Retry-After``) is obeyed without using
    up ``RetryPolicy.retries``, so a burst of submissions waits its turn instead of failing.
    """

    left: float
    min_pause: float

    def pause_for(self, response: httpx.Response) -> float | None:
        """The pause a 429 with ``Retry-After`` asks for, if it fits in the budget.

        ``None``: not such an answer, or the budget is spent.
        """
        if response.status_code != 429:
            return None
        asked = retry_after(response)
        if asked is None:
            return None
        # A server that keeps saying "now" (Retry-After: 0) must not make a busy loop: every
        # wait lasts at least the backoff and costs at least a second of the budget.
        pause = max(min(asked, MAX_RETRY_AFTER_S), self.min_pause)
        cost = max(pause, 1.0)
        if cost > self.left:
            return None
        self.left -= cost
        return pause


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_BY_STATUS: dict[int, type[exc.WesApiError]] = {
    400: exc.BadRequestError,
    401: exc.UnauthorizedError,
    403: exc.ForbiddenError,
    404: exc.NotFoundError,
    409: exc.ConflictError,
    410: exc.GoneError,
}


def api_error(response: httpx.Response, *, run_url: bool = False) -> exc.WesApiError:
    """The exception for an error response, with the server's ``msg`` when it sent one.

    Args:
        response: An answer with a status of 400 or more.
        run_url: The request named a run itself, so a 404 means the run does not exist.
    """
    status = response.status_code
    msg = _error_msg(response)
    if status == 429:
        return exc.RateLimitedError(status, msg, retry_after(response))
    if status == 404 and run_url:
        return exc.RunNotFoundError(status, msg)
    if status >= 500:
        return exc.ServerError(status, msg)
    return _BY_STATUS.get(status, exc.WesApiError)(status, msg)


def _error_msg(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        # ErrorResponse; older servers and proxies use other keys.
        for key in ("msg", "message", "detail", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    text = response.text.strip() if response.content else ""
    return text[:500] or (response.reason_phrase or "error")


def decode(response: httpx.Response, model: type[M]) -> M:
    """Parse a success body into ``model``; raise ``UnexpectedResponseError`` if it does not fit."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError) as error:
        raise exc.UnexpectedResponseError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code} with a body that is not JSON: {response.text[:200]!r}"
        ) from error
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise exc.UnexpectedResponseError(
            f"{response.request.method} {response.request.url} answered a body that is not a "
            f"{model.__name__}: {json.dumps(data)[:300]}"
        ) from error


def request(
    build: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    retry: bool,
    run_url: bool = False,
    accept: frozenset[int] = frozenset(),
) -> Op[httpx.Response]:
    """Send a request, retrying transport errors and 429/502/503/504 when ``retry`` is set.

    Args:
        build: Makes the request; called again for every attempt.
        policy: How often and how long to wait.
        retry: Whether the request may be sent more than once (GET, cancel).
        run_url: A 404 means the run does not exist (``RunNotFoundError``).
        accept: Error statuses returned to the caller instead of raised (416 for logs).

    Returns:
        The response, with a success status or one of ``accept``.
    """
    attempt = 0
    budget = policy.rate_limit_budget()
    while True:
        outcome: Outcome = yield Send(build())
        pause = budget.pause_for(outcome) if retry and isinstance(outcome, httpx.Response) else None
        if pause is not None:
            yield Sleep(pause)
            continue
        if isinstance(outcome, httpx.RequestError):
            if not retry or attempt >= policy.retries:
                raise exc.TransportError(_describe(outcome)) from outcome
            yield Sleep(policy.delay(attempt))
        elif outcome.status_code in RETRY_STATUSES and retry and attempt < policy.retries:
            yield Sleep(policy.delay(attempt, outcome))
        elif outcome.status_code >= 400 and outcome.status_code not in accept:
            raise api_error(outcome, run_url=run_url)
        else:
            return outcome
        attempt += 1


def _describe(error: httpx.RequestError) -> str:
    what = type(error).__name__
    detail = str(error) or what
    try:
        where = f"{error.request.method} {error.request.url}"
    except RuntimeError:
        where = "request"
    return f"{where} failed: {detail}" + ("" if detail == what else f" ({what})")
