"""Outputs are never silently empty: an unfinished run or globs that match nothing are errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.cli.main import cli
from toolchest_wes.client import (
    AsyncWesClient,
    NoMatchingOutputs,
    RunNotFinished,
    State,
    WesClient,
)

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"


def test_outputs_of_a_running_run_raise_naming_the_state(wes: WesClient, tmp_path: Path) -> None:
    run = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    try:
        with pytest.raises(RunNotFinished) as info:
            run.outputs()
        assert info.value.state in (State.QUEUED, State.INITIALIZING, State.RUNNING)
        assert str(info.value.state) in str(info.value) and "wait" in str(info.value)
        with pytest.raises(RunNotFinished):
            run.download(tmp_path / "out")
        assert not (tmp_path / "out").exists()
    finally:
        run.cancel()


def test_outputs_and_download_wait_when_asked(wes: WesClient, tmp_path: Path) -> None:
    run = wes.submit(HELLO, HELLO_JOB)
    assert [f.path for f in run.outputs(wait=True, timeout=120)] == ["hello.txt"]
    assert [p.name for p in run.download(tmp_path, wait=True)] == ["hello.txt"]


def test_include_that_matches_nothing_names_the_globs_and_the_files(
    wes: WesClient, tmp_path: Path
) -> None:
    run = wes.run(HELLO, HELLO_JOB, timeout=120)
    with pytest.raises(NoMatchingOutputs) as info:
        run.download(tmp_path, include=["missing.txt", "nope*"])
    text = str(info.value)
    assert "'missing.txt'" in text and "'nope*'" in text and "hello.txt" in text
    assert info.value.available == ["hello.txt"]
    with pytest.raises(NoMatchingOutputs):
        run.outputs(include=["nope*"])


def test_async_outputs_guard(live: Any, journal: Any) -> None:
    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:
            run = await wes.submit(CWL / "sleep.cwl", {"seconds": 600})
            with pytest.raises(RunNotFinished):
                await run.outputs()
            await run.cancel()
            done = await wes.submit(HELLO, HELLO_JOB)
            files = await done.outputs(wait=True, timeout=120)
            assert [f.path for f in files] == ["hello.txt"]
            with pytest.raises(NoMatchingOutputs):
                await done.outputs(include=["nope*"])

    asyncio.run(main())


def test_cli_exits_2_for_unfinished_runs_and_unmatched_globs(
    wes: WesClient, live: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    runner = CliRunner()
    slow = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    try:
        result = runner.invoke(cli, ["outputs", slow.run_id])
        assert result.exit_code == 2 and "not finished" in result.stderr
    finally:
        slow.cancel()
    done = wes.submit(HELLO, HELLO_JOB)
    result = runner.invoke(cli, ["download", done.run_id, str(tmp_path), "--wait"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().endswith("hello.txt")
    result = runner.invoke(cli, ["download", done.run_id, str(tmp_path), "--include", "nope*"])
    assert result.exit_code == 2
    assert "'nope*'" in result.stderr and "hello.txt" in result.stderr
