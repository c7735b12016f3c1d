"""Fuzz every operation of the merged spec with schemathesis; shared by the suite and bench/.

Random run ids almost always answer 404, which says little about the other 200 paths, so the
caller passes *seeds*: path parameters of real runs (``run_id``, ``task_id``, output
``path``). Each operation is fuzzed with random parameters, with each seed's parameters, and
with schema-violating (negative) requests. Operations that delete go last, so they cannot
remove the seeded runs before the others are fuzzed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import hypothesis
import hypothesis.strategies as st
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

_PATH_PARAM = re.compile(r"{([^}]+)}")

#: Sends a case and returns the response (through a WSGI app or over HTTP).
Call = Callable[[schemathesis.Case], Any]


def _strategy(operation: Any, seeds: list[dict[str, str]]) -> st.SearchStrategy[Any]:
    names = set(_PATH_PARAM.findall(operation.path))
    strategies = [
        operation.as_strategy(),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    for seed in seeds:
        if names and names <= set(seed):
            strategies.append(
                operation.as_strategy(path_parameters={name: seed[name] for name in names})
            )
    return st.one_of(strategies)


def fuzz(
    schema: Any,
    call: Call,
    *,
    max_examples: int,
    seeds: list[dict[str, str]] | None = None,
    on_response: Callable[[str, int], None] | None = None,
    undocumented: Callable[[Any], None] | None = None,
) -> dict[str, str]:
    """Fuzz every operation of ``schema``; the first failure of each, by operation label.

    Args:
        schema: A schemathesis schema (``schemathesis.openapi.from_wsgi``/``from_url``).
        call: Sends a case and returns the response.
        max_examples: Examples per operation.
        seeds: Path parameters of real resources to fuzz around.
        on_response: Called with the operation label and status of every response.
        undocumented: Checks a response whose status the spec does not document (a spec
            without 400s, such as TRS, still has requests that break it); by default such a
            response fails.
    """
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    failures: dict[str, str] = {}
    for operation in operations:

        @hypothesis.given(case=_strategy(operation, seeds or []))
        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def check(case: schemathesis.Case) -> None:
            response = call(case)
            if on_response is not None:
                on_response(case.operation.label, response.status_code)
            documented = case.operation.definition.raw.get("responses", {})
            if undocumented is not None and str(response.status_code) not in documented:
                undocumented(response)
                case.validate_response(
                    response, checks=[c for c in CHECKS if c is not status_code_conformance]
                )
            else:
                case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # report every operation's failure, not only the first
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    return failures
