"""Per-run cores, memory and runtime: asked for by a run, limited by the operator, enforced."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import API, CWL, EXAMPLES, Wes
from toolchest_wes.models import State

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"


@pytest.fixture
def limited(make_app: Any, make_settings: Any) -> Wes:
    """A server whose runs get one core and may take at most a minute and 2G."""
    settings = make_settings(
        run_defaults={"cores": "1"},
        run_limits={"runtime": "60", "memory": "2G"},
        run_fixed=["cores"],
    )
    return Wes(make_app(settings).app.test_client())


def test_a_run_over_its_runtime_is_stopped_as_an_executor_error(wes: Wes) -> None:
    run_id = wes.submit(CWL / "sleep.cwl", {"seconds": 120}, engine_params={"runtime": "1"})
    assert wes.wait(run_id, timeout=30) is State.EXECUTOR_ERROR
    log = wes.log(run_id)
    assert any("runtime limit of 1 s" in line for line in log["run_log"]["system_logs"])


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_run_over_its_memory_is_stopped_as_an_executor_error(wes: Wes) -> None:
    run_id = wes.submit(CWL / "hog.cwl", {"mib": 400}, engine_params={"max-memory": "200M"})
    assert wes.wait(run_id, timeout=60) is State.EXECUTOR_ERROR
    (line,) = [s for s in wes.log(run_id)["run_log"]["system_logs"] if "memory" in s]
    assert "over its limit of 200M" in line


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_run_within_its_memory_completes(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {}, engine_params={"memory": "2G", "runtime": "10m"})
    assert wes.wait(run_id) is State.COMPLETE


def test_the_operators_cores_hold_the_runs_tools(limited: Wes) -> None:
    run_id = limited.submit(CWL / "nproc.cwl", {})
    assert limited.wait(run_id) is State.COMPLETE
    assert limited.log(run_id)["outputs"]["cores"] == "1"


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({"cores": "4"}, ["'cores' is set by this server (fixed at 1)"]),
        ({"runtime": "2h"}, ["'runtime' asks for 7200", "at most 60"]),
        ({"--maxMemory": "3G"}, ["'memory' asks for 3G", "at most 2G"]),
        ({"memory": "plenty"}, ["'memory' takes a size"]),
    ],
)
def test_requests_outside_the_policy_are_refused_by_name(
    limited: Wes, params: dict[str, str], fragments: list[str]
) -> None:
    body = limited.submit(HELLO, {}, engine_params=params, expect=400)
    assert body["status_code"] == 400
    for fragment in fragments:
        assert fragment in body["msg"]


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_service_info_lists_the_resources_and_each_engine(limited: Wes) -> None:
    info = limited.client.get(f"{API}/service-info").get_json()
    assert {p["name"]: p for p in info["toolchest_wes_run_parameters"]}["cores"] == {
        "name": "cores",
        "type": "int",
        "default": "1",
        "maximum": None,
        "user_settable": False,
    }
    defaults = {p["name"]: p["default_value"] for p in info["default_workflow_engine_parameters"]}
    assert defaults["cores"] == "1"
    assert defaults["runtime"] == "60"
    cwltool = info["toolchest_wes_engines"]["cwltool"]
    assert cwltool["workflow_types"] == {"CWL": ["v1.0", "v1.1", "v1.2"]}
    assert cwltool["default_for"] == ["CWL"]
