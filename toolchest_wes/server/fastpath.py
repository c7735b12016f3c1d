"""Lean views for the operations that clients poll, without connexion's per-request chain.

connexion routes every operation from the spec; for each request it then builds its own
request object, parses and validates parameters through several decorators and serialises
the result. For ``GetRunStatus``, which clients call in tight polling loops and whose only
parameter is a path string, that chain costs more than the rest of the request put
together (bench/README.md). The view connexion registered for it is replaced here by one
that does the same checks directly: the route, the resolved handler and the error handling
stay those of the spec-driven app. ``toolchest_wes.compat.connexion_views`` holds what this
relies on in connexion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import connexion
from flask import Response, request

from toolchest_wes.compat.connexion_views import replace_operation_view
from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.server.resolver import handler_name
from toolchest_wes.server.spec import BASE_PATH

__all__ = ["FAST_OPERATIONS", "install_fast_views"]

#: Operations served by a lean view: GET, path parameters only, a small JSON body.
FAST_OPERATIONS = ("GetRunStatus",)


def install_fast_views(app: connexion.FlaskApp, handlers: object, spec: dict[str, Any]) -> None:
    """Swap connexion's view of each fast operation for a lean one calling the same handler.

    Raises:
        LookupError: An operation is not in the spec, takes more than path parameters, or
            has no route in the app.
    """
    for operation_id in FAST_OPERATIONS:
        operation = _operation(spec, operation_id)
        if any(p.get("in") != "path" for p in operation.get("parameters", [])):
            raise LookupError(f"{operation_id} takes more than path parameters")
        handler = getattr(handlers, handler_name(operation_id))
        replace_operation_view(app, BASE_PATH, operation_id, _lean_view(handler))


def _operation(spec: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for item in spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return operation
    raise LookupError(f"{operation_id} is not in the spec")


def _lean_view(handler: Callable[..., dict[str, Any]]) -> Callable[..., Response]:
    def view(**path_params: str) -> Response:
        if request.args:
            # The same rule as connexion's strict validation: no undeclared query parameters.
            raise BadRequestError(f"Extra query parameter(s) {','.join(request.args)} not in spec")
        body = json.dumps(handler(**path_params))
        return Response(body, mimetype="application/json")

    return view
