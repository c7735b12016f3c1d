"""The spec drives the app: every operationId has a handler and every handler an operation."""

from __future__ import annotations

import inspect

import yaml

from toolchest_wes.server.api import WesApi
from toolchest_wes.server.resolver import handler_name
from toolchest_wes.server.spec import load_spec

WES_OPERATIONS = {
    "GetServiceInfo",
    "ListRuns",
    "RunWorkflow",
    "GetRunLog",
    "GetRunStatus",
    "ListTasks",
    "GetTask",
    "CancelRun",
}


def operation_ids(spec: dict) -> set[str]:
    return {
        op["operationId"]
        for item in spec["paths"].values()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


def test_vendored_spec_has_the_eight_wes_operations() -> None:
    from importlib import resources

    text = (
        resources.files("toolchest_wes.openapi")
        .joinpath("workflow_execution_service.openapi.yaml")
        .read_text()
    )
    assert operation_ids(yaml.safe_load(text)) == WES_OPERATIONS


def test_every_operation_has_a_handler_and_back() -> None:
    ops = operation_ids(load_spec())
    assert ops >= WES_OPERATIONS
    handlers = {
        name
        for name, member in inspect.getmembers(WesApi, inspect.isfunction)
        if not name.startswith("_")
    }
    assert {handler_name(op) for op in ops} == handlers


def test_merged_spec_is_valid_openapi() -> None:
    from openapi_spec_validator import validate

    validate(load_spec())
