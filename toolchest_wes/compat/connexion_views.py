"""How connexion 2 registers a spec operation with Flask, which the status fast path and the
request metrics rely on.

connexion 2 adds each API as a Flask blueprint named after its base path, and each operation
as a route of that blueprint whose endpoint is the operationId, dots replaced by underscores:
``/ga4gh/wes/v1.GetRunStatus``. The view function Flask holds for that endpoint is the whole
of connexion's per-request chain (parameter parsing, validation, serialisation), so putting
another view in its place (``toolchest_wes.server.fastpath``) serves the route without that
chain, while the route itself, the error handlers and the other hooks stay connexion's.

Importing this module runs :func:`verify`, which builds a one-route connexion app and checks
both facts on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import connexion
from flask import Response

from toolchest_wes.compat.private_api import SupportedRange

__all__ = [
    "CONNEXION",
    "operation_endpoint",
    "operation_id_of",
    "replace_operation_view",
    "verify",
]

CONNEXION = SupportedRange("connexion", "==2.15.1")

_PROBE_BASE_PATH = "/probe/v1"
_PROBE_OPERATION = "Probe.GetItem"
_PROBE_SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "probe", "version": "1"},
    "paths": {
        "/items/{item_id}": {
            "get": {
                "operationId": _PROBE_OPERATION,
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": {"description": "the item"}},
            }
        }
    },
}


def _endpoint_name(identifier: str) -> str:
    return identifier.replace(".", "_")


def operation_endpoint(base_path: str, operation_id: str) -> str:
    """The Flask endpoint connexion gives ``operation_id`` of the API at ``base_path``."""
    return f"{_endpoint_name(base_path)}.{_endpoint_name(operation_id)}"


def operation_id_of(endpoint: str) -> str:
    """The operationId part of a Flask endpoint (dots in operationIds read as underscores)."""
    return endpoint.rpartition(".")[2]


def replace_operation_view(
    app: connexion.FlaskApp, base_path: str, operation_id: str, view: Callable[..., Response]
) -> Callable[..., Any]:
    """Serve ``operation_id`` with ``view``, called with the path parameters as keywords;
    return connexion's view, which ``view`` may call in turn with the same keywords.

    Raises:
        LookupError: The app has no route for the operation.
    """
    endpoint = operation_endpoint(base_path, operation_id)
    if endpoint not in app.app.view_functions:
        raise LookupError(f"no route for {operation_id}")
    replaced: Callable[..., Any] = app.app.view_functions[endpoint]
    app.app.view_functions[endpoint] = view
    return replaced


def verify() -> None:
    """Check on a one-route app that endpoints are named, and views replaced, as above.

    Raises:
        PrivateApiChangedError: The endpoint has another name or the new view is not called.
    """
    app = connexion.FlaskApp(__name__, options={"swagger_ui": False})
    try:
        app.add_api(
            _PROBE_SPEC,
            base_path=_PROBE_BASE_PATH,
            resolver=connexion.resolver.Resolver(function_resolver=lambda _: _probe_handler),
        )
    except Exception as exc:
        raise CONNEXION.changed(f"cannot add a one-operation API ({exc})") from exc
    endpoint = operation_endpoint(_PROBE_BASE_PATH, _PROBE_OPERATION)
    if endpoint not in app.app.view_functions:
        raise CONNEXION.changed(
            f"names the Flask endpoint of operation {_PROBE_OPERATION!r} otherwise than "
            f"{endpoint!r} (it has {sorted(app.app.view_functions)})"
        )
    if operation_id_of(endpoint) != _endpoint_name(_PROBE_OPERATION):
        raise CONNEXION.changed(f"has an endpoint {endpoint!r} that does not end in the operation")
    replaced: list[Callable[..., Any]] = []

    def view(item_id: str) -> Response:
        if item_id == "chain":
            return cast(Response, replaced[0](item_id=item_id))
        return Response(f"lean {item_id}")

    replaced.append(replace_operation_view(app, _PROBE_BASE_PATH, _PROBE_OPERATION, view))
    client = app.app.test_client()
    answer = client.get(f"{_PROBE_BASE_PATH}/items/x")
    if answer.get_data(as_text=True) != "lean x":
        raise CONNEXION.changed(
            "does not serve a route through the view function Flask holds for its endpoint"
        )
    answer = client.get(f"{_PROBE_BASE_PATH}/items/chain")
    if answer.status_code != 200 or answer.get_json() != {"item": "chain"}:
        raise CONNEXION.changed(
            "does not answer through its own view once another view calls it with the path "
            f"parameters (status {answer.status_code})"
        )


def _probe_handler(item_id: str) -> dict[str, str]:
    return {"item": item_id}


verify()
