"""Lean views for the operations that clients poll, without connexion's per-request chain.

connexion routes every operation from the spec; for each request it then builds its own
request object, parses and validates parameters through several decorators and serialises
the result. For ``GetRunStatus``, which clients call in tight polling loops and whose only
parameter is a path string, that chain costs more than the rest of the request put
together (bench/README.md). The view connexion registered for it is replaced here by one
that does the same checks directly: the route, the resolved handler and the error handling
stay those of the spec-driven app. ``toolchest_wes.compat.connexion_views`` holds what this
relies on in connexion.

``GetRunStatus`` goes one step further: :func:`install_status_lane` answers a plain status poll
before Flask sees it (a WSGI middleware around the Flask app). Flask's request context, URL
matching and hooks cost as much again as the poll itself; in embedded mode, where one process
serves every request, that decided how many polls a second the server can answer
(bench/README.md). The lane answers only what it can answer exactly as the full path would: a
``GET`` of ``/runs/{run_id}/status`` with no query string and no body, from a caller the
authenticator knows, of a run that caller may see. Everything else (a 401, a 404, an
unavailable store, an extra query parameter) goes on to Flask and gets its answer there, so
the errors stay those of the spec-driven app. The state is read from the store at every
request, as the lean view reads it, so the lane answers no older state than it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any, cast

import connexion
from flask import Response, request

from toolchest_wes.compat.connexion_views import replace_operation_view
from toolchest_wes.core.caller import ANONYMOUS, Caller
from toolchest_wes.models import State
from toolchest_wes.server import render
from toolchest_wes.server.auth import Authenticator, caller_from_header
from toolchest_wes.server.metrics import RecordRequest
from toolchest_wes.server.resolver import handler_name
from toolchest_wes.server.spec import BASE_PATH

__all__ = ["FAST_OPERATIONS", "StatusLane", "install_fast_views", "install_status_lane"]

_WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_STATUS_OPERATION = "GetRunStatus"
_RUNS_PREFIX = f"{BASE_PATH}/runs/"
_STATUS_SUFFIX = "/status"

#: Operations served by a lean view: GET, path parameters only, a small JSON body.
FAST_OPERATIONS = ("GetRunStatus",)


def install_fast_views(app: connexion.FlaskApp, handlers: object, spec: dict[str, Any]) -> None:
    """Swap connexion's view of each fast operation for a lean one calling the same handler.

    The lean view answers requests with path parameters only; a request with a query string
    (``GetRunStatus``'s ``wait``) goes on to connexion's own view, which parses and validates
    the query as for every other operation.

    Raises:
        LookupError: An operation is not in the spec, has a parameter that is neither in the
            path nor optional in the query, or has no route in the app.
    """
    for operation_id in FAST_OPERATIONS:
        operation = _operation(spec, operation_id)
        for parameter in operation.get("parameters", []):
            where = parameter.get("in")
            if where != "path" and (where != "query" or parameter.get("required")):
                raise LookupError(
                    f"{operation_id} takes a parameter the lean view cannot leave to "
                    f"connexion: {parameter.get('name')!r} in {where}"
                )
        view = _LeanView(getattr(handlers, handler_name(operation_id)))
        view.full = replace_operation_view(app, BASE_PATH, operation_id, view)


def _operation(spec: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for item in spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return operation
    raise LookupError(f"{operation_id} is not in the spec")


class _LeanView:
    """The view of a fast operation: ``handler`` for a request with path parameters only,
    connexion's own view (``full``) for one with a query string, declared parameters and
    undeclared ones (a 400) alike."""

    def __init__(self, handler: Callable[..., dict[str, Any]]) -> None:
        self.handler = handler
        self.full: Callable[..., Any] | None = None

    def __call__(self, **path_params: str) -> Response:
        if request.args and self.full is not None:
            return cast(Response, self.full(**path_params))
        body = json.dumps(self.handler(**path_params))
        return Response(body, mimetype="application/json")


def install_status_lane(
    app: connexion.FlaskApp,
    get_state: Callable[[str, Caller], State],
    authenticator: Authenticator | None,
    record: RecordRequest | None,
) -> None:
    """Answer plain ``GET /runs/{run_id}/status`` requests of ``app`` before Flask.

    Args:
        app: The app; its Flask WSGI callable is wrapped.
        get_state: A run's state as a caller may see it; raises for a run the caller may
            not see (``RunService.get_state``).
        authenticator: The app's authenticator; ``None`` when authentication is off.
        record: Counts the requests the lane answers in the request metrics.
    """
    app.app.wsgi_app = StatusLane(app.app.wsgi_app, get_state, authenticator, record)


class StatusLane:
    """A WSGI middleware answering status polls; see the module docstring for what it takes."""

    def __init__(
        self,
        app: _WsgiApp,
        get_state: Callable[[str, Caller], State],
        authenticator: Authenticator | None,
        record: RecordRequest | None,
    ) -> None:
        self._app = app
        self._get_state = get_state
        self._authenticator = authenticator
        self._record = record

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Answer the request if it is a plain status poll, else pass it to the app."""
        started = perf_counter()
        body = self._answer(environ)
        if body is None:
            return self._app(environ, start_response)
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        if self._record is not None:
            self._record(_STATUS_OPERATION, "GET", 200, perf_counter() - started)
        return [body]

    def _answer(self, environ: dict[str, Any]) -> bytes | None:
        """The body of the 200 answer, or ``None`` to leave the request to the app."""
        path: str = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or not path.startswith(_RUNS_PREFIX)
            or not path.endswith(_STATUS_SUFFIX)
            or environ.get("QUERY_STRING")
            or environ.get("CONTENT_LENGTH") not in (None, "", "0")
            or "HTTP_TRANSFER_ENCODING" in environ
        ):
            return None
        run_id = path[len(_RUNS_PREFIX) : -len(_STATUS_SUFFIX)]
        if not run_id or "/" in run_id:
            return None
        try:
            caller = ANONYMOUS
            if self._authenticator is not None:
                header = environ.get("HTTP_AUTHORIZATION", "")
                known = caller_from_header(self._authenticator, header)
                if known is None:
                    return None
                caller = known
            state = self._get_state(run_id, caller)
        except Exception:
            # Not found, not the caller's, a store or token file that does not answer: the
            # app answers each in its own words, after asking again.
            return None
        return json.dumps(render.run_status(run_id, state)).encode()
