"""POST /runs checks the inputs against the types the workflow declares, before queueing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Wes
from toolchest_wes.models import State

TYPED = b"""\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
requirements:
  SchemaDefRequirement:
    types:
      - $import: ../outside.yml
inputs:
  count: int
  ratio: float?
  name: {type: string, default: x}
  flag: boolean?
  files: File[]?
  mode: {type: {type: enum, symbols: [fast, slow]}}
  sample:
    type:
      type: record
      fields:
        id: string
        reads: int?
  anything: Any?
  later: ../outside.yml#Thing
outputs: []
"""

#: The same tool in a packed document, run by its id.
PACKED = b"""\
cwlVersion: v1.2
$graph:
  - id: helper
    class: CommandLineTool
    baseCommand: echo
    inputs: {other: string}
    outputs: []
  - id: main
    class: CommandLineTool
    baseCommand: echo
    inputs: {count: int}
    outputs: []
"""

GOOD: dict[str, Any] = {"count": 3, "mode": "fast", "sample": {"id": "s1"}}


def _refused(wes: Wes, params: dict[str, Any], workflow: bytes = TYPED) -> str:
    body = wes.submit("tool.cwl", params, attach={"tool.cwl": workflow}, expect=400)
    assert set(body) == {"msg", "status_code"} and body["status_code"] == 400
    return str(body["msg"])


#: A change to GOOD, and the line the 400's msg must hold.
WRONG: list[tuple[dict[str, Any], str]] = [
    ({"count": "three"}, 'input "count": expected int, got string "three"'),
    ({"count": None}, 'input "count": expected int, got null'),
    ({"count": 2**40}, 'input "count": expected int (from -2147483648 to 2147483647), got int'),
    ({"ratio": "1.5"}, 'input "ratio": expected float, got string "1.5"'),
    ({"flag": "yes"}, 'input "flag": expected boolean, got string "yes"'),
    ({"files": ["a.txt"]}, 'input "files[0]": expected File, got string "a.txt"'),
    ({"files": {"class": "File"}}, 'input "files": expected array of File, got a File'),
    ({"mode": "medium"}, 'input "mode": expected one of "fast", "slow", got string "medium"'),
    ({"sample": {"reads": 2}}, 'input "sample.id": expected string, got nothing'),
    ({"sample": {"id": "s", "reads": 1.5}}, 'input "sample.reads": expected int, got float'),
    ({"sample": "s1"}, 'input "sample": expected an object with fields id, reads, got string'),
]


def test_a_wrong_input_is_a_400_naming_it(wes: Wes) -> None:
    for change, message in WRONG:
        assert message in _refused(wes, {**GOOD, **change}), change


def test_missing_inputs_are_named_together_and_nothing_is_stored(
    wes: Wes, make_settings: Any
) -> None:
    msg = _refused(wes, {"files": [1]})
    assert msg.split("; ") == [
        'input "count": expected int, got nothing (it is required)',
        'input "files[0]": expected File, got int 1',
        'input "mode": expected one of "fast", "slow", got nothing (it is required)',
        'input "sample": expected an object with fields id, reads, got nothing (it is required)',
    ]
    assert wes.get("/runs").get_json()["runs"] == []
    runs_dir: Path = make_settings().runs_dir
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


@pytest.mark.integration
def test_what_it_cannot_judge_or_what_fits_is_let_through(wes: Wes) -> None:
    """``later`` names a type in a file outside the attachments, which is never read; an
    undeclared input is cwltool's to judge (it ignores it); null is fine for an optional
    input and for one with a default; an int is a float, as to cwltool."""
    params = {
        **GOOD,
        "later": ["any", {"thing": 1}],
        "undeclared": True,
        "name": None,
        "anything": None,
        "ratio": 2,
    }
    run_id = wes.submit("tool.cwl", params, attach={"tool.cwl": TYPED})
    # cwltool itself then fails on the missing type file: judged at run time.
    assert wes.wait(run_id) is State.EXECUTOR_ERROR


def test_a_packed_workflow_is_checked_for_the_process_it_runs(wes: Wes) -> None:
    body = wes.submit(
        "packed.cwl",
        {"count": "x"},
        attach={"packed.cwl": PACKED},
        workflow_url="packed.cwl#main",
        expect=400,
    )
    assert body["msg"] == 'input "count": expected int, got string "x"'
    helper = wes.submit(
        "packed.cwl",
        {},
        attach={"packed.cwl": PACKED},
        workflow_url="packed.cwl#helper",
        expect=400,
    )
    assert helper["msg"] == 'input "other": expected string, got nothing (it is required)'


@pytest.mark.integration
def test_a_workflow_that_does_not_parse_is_left_to_the_engine(wes: Wes) -> None:
    run_id = wes.submit("bad.cwl", {"count": "x"}, attach={"bad.cwl": b"inputs: [unclosed\n"})
    assert wes.wait(run_id) is State.EXECUTOR_ERROR
