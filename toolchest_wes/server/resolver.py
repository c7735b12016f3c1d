"""Map each operationId to the ``WesApi`` method of the same name in snake_case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import inflection
from connexion.resolver import Resolver

__all__ = ["WesResolver", "handler_name"]


def handler_name(operation_id: str) -> str:
    """``GetRunLog`` -> ``get_run_log``."""
    return str(inflection.underscore(operation_id))


class WesResolver(Resolver):  # type: ignore[misc]  # connexion ships no type hints
    """Resolves operationIds to bound methods of one handler object.

    Fails at startup, naming the operation, when a method is missing, so a spec operation
    can never be left unserved.
    """

    def __init__(self, handlers: object) -> None:
        self.handlers = handlers
        super().__init__(function_resolver=self._lookup)

    def _lookup(self, operation_id: str) -> Callable[..., Any]:
        name = handler_name(operation_id)
        method = getattr(self.handlers, name, None)
        if not callable(method):
            raise LookupError(
                f"operationId {operation_id!r} has no handler {type(self.handlers).__name__}.{name}"
            )
        return method  # type: ignore[no-any-return]
