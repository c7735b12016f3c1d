"""A wrong input is reported at submit time, by name: by the client before it sends anything,
and by the server (400) for clients that do not check."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from toolchest_wes.cli.main import cli
from toolchest_wes.client import (
    AsyncWesClient,
    BadRequestError,
    InputTypeError,
    Journal,
    State,
    WesClient,
)

TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  count:
    type: int
    inputBinding: {position: 1}
  mode: {type: {type: enum, symbols: [fast, slow]}, default: fast}
  files: File[]?
outputs: []
"""


@pytest.fixture
def tool(tmp_path: Path) -> Path:
    path = tmp_path / "wf" / "tool.cwl"
    path.parent.mkdir()
    path.write_text(TOOL, encoding="utf-8")
    return path


def test_the_client_refuses_a_wrong_input_before_sending(
    wes: WesClient, journal: Journal, tool: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputTypeError) as info:
        wes.submit(tool, {"count": "three", "mode": "medium"})
    assert info.value.problems == [
        'input "count": expected int, got string "three"',
        'input "mode": expected one of "fast", "slow", got string "medium"',
    ]
    assert str(tool) in str(info.value)
    job = tmp_path / "job.yml"
    job.write_text("files: [a.txt]\n", encoding="utf-8")
    with pytest.raises(InputTypeError, match=r'input "count": expected int, got nothing'):
        wes.submit(tool, job)
    # Nothing was sent, or written down as sent.
    assert wes.runs(10) == []
    assert journal.entries(wes.url) == []
    run = wes.submit(tool, {"count": 2})
    assert run.wait(timeout=120, initial_interval=0.05).state is State.COMPLETE


def test_the_server_refuses_it_too_naming_the_input(wes: WesClient, tool: Path) -> None:
    with pytest.raises(BadRequestError) as info:
        wes.run_workflow("tool.cwl", {"count": "three"}, workflow_attachment=[("tool.cwl", tool)])
    assert info.value.status_code == 400
    assert info.value.msg == 'input "count": expected int, got string "three"'
    assert wes.runs(10) == []


def test_async_submit_and_the_cli_check_as_well(
    live: Any, journal: Journal, tool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:
            with pytest.raises(InputTypeError, match=r'input "files\[0\]": expected File'):
                await wes.submit(tool, {"count": 1, "files": ["a.txt"]})

    asyncio.run(main())
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    job = tmp_path / "job.json"
    job.write_text('{"count": 1.5}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["submit", str(tool), str(job)])
    assert result.exit_code == 2
    assert 'input "count": expected int, got float 1.5' in result.stderr
