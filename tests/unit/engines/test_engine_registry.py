"""Several engines per workflow type: defaults, choice by name, and version matching."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.submission import RunSubmission, resolve_engine
from toolchest_wes.engines.base import EngineParameters, LaunchSpec, PreparedRun
from toolchest_wes.engines.registry import EngineRegistry, match_version
from toolchest_wes.models import DefaultWorkflowEngineParameter


@dataclass
class _Engine:
    """An engine that is only its name, type and versions: resolving never launches."""

    name: str
    workflow_type: str
    type_versions: tuple[str, ...]

    def version(self) -> str:
        return "1.0.0"

    def check_parameters(self, params: dict[str, Any]) -> EngineParameters:
        return EngineParameters()

    def default_parameters(self) -> list[DefaultWorkflowEngineParameter]:
        return []

    def launch_spec(self, run: PreparedRun) -> LaunchSpec:
        raise NotImplementedError

    def collect_outputs(self, run: PreparedRun, stdout_path: Path) -> dict[str, Any]:
        raise NotImplementedError


CWLTOOL = _Engine("cwltool", "CWL", ("v1.0", "v1.1", "v1.2"))
TOIL_CWL = _Engine("toil", "CWL", ("v1.0", "v1.1", "v1.2"))
TOIL_WDL = _Engine("toil", "WDL", ("1.0", "1.1"))
REGISTRY = EngineRegistry([CWLTOOL, TOIL_CWL, TOIL_WDL])


def _resolve(**fields: Any) -> tuple[Any, str]:
    return resolve_engine(REGISTRY, RunSubmission(**fields))


def test_the_first_engine_of_a_type_is_its_default() -> None:
    assert REGISTRY.for_type("cwl") is CWLTOOL
    assert REGISTRY.for_type("CWL", "Toil") is TOIL_CWL
    assert REGISTRY.for_type("WDL") is TOIL_WDL
    assert REGISTRY.engine_names("cwl") == ["cwltool", "toil"]
    assert REGISTRY.supported() == {"CWL": ["v1.0", "v1.1", "v1.2"], "WDL": ["1.0", "1.1"]}


def test_an_engine_is_registered_once_per_type() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        EngineRegistry([CWLTOOL, CWLTOOL])


@pytest.mark.parametrize(
    ("asked", "versions", "found"),
    [("1.2", ("v1.2",), "v1.2"), ("v1.0", ("1.0",), "1.0"), ("V1.1", ("1.1",), "1.1")],
)
def test_a_leading_v_is_optional_on_either_side(
    asked: str, versions: tuple[str, ...], found: str
) -> None:
    assert match_version(asked, versions) == found
    assert match_version("2.0", versions) is None


def test_a_request_picks_an_engine_by_name_or_by_its_program() -> None:
    engine, version = _resolve(
        workflow_type="CWL", workflow_type_version="1.2", workflow_engine="toil-cwl-runner"
    )
    assert (engine, version) == (TOIL_CWL, "v1.2")
    engine, version = _resolve(workflow_type="wdl", workflow_type_version="v1.1")
    assert (engine, version) == (TOIL_WDL, "1.1")


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        (
            {"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_engine": "miniwdl"},
            ["'miniwdl'", "'cwltool', 'toil'"],
        ),
        ({"workflow_type": "WDL", "workflow_type_version": "draft-2"}, ["'draft-2'", "1.0, 1.1"]),
        ({"workflow_type": "NFL", "workflow_type_version": "1"}, ["'NFL'", "CWL (v1.0"]),
        ({"workflow_type": "WDL"}, ["workflow_type_version is missing", "1.0, 1.1"]),
    ],
)
def test_a_request_no_engine_can_run_is_refused_with_the_choices(
    fields: dict[str, str], fragments: list[str]
) -> None:
    with pytest.raises(BadRequestError) as caught:
        _resolve(**fields)
    for fragment in fragments:
        assert fragment in str(caught.value)
