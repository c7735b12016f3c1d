"""Listings give run handles, filtered by several states or state groups."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.cli.main import cli
from toolchest_wes.client import AsyncRun, AsyncWesClient, Run, RunGroup, State, WesClient
from toolchest_wes.client._listing import parse_states
from toolchest_wes.models import STATE_GROUPS, TERMINAL_STATES

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"


def test_parse_states_takes_states_groups_and_lists() -> None:
    assert parse_states(None) is None
    assert parse_states("complete") == {State.COMPLETE}
    assert parse_states(["failed", State.CANCELED]) == {
        State.EXECUTOR_ERROR,
        State.SYSTEM_ERROR,
        State.PREEMPTED,
        State.CANCELED,
    }
    assert parse_states("Running,queued") == {State.RUNNING, State.QUEUED}
    assert parse_states("active") == STATE_GROUPS["active"]
    assert parse_states("finished") == TERMINAL_STATES
    assert parse_states("canceled") == {State.CANCELED, State.CANCELING}
    with pytest.raises(ValueError, match="not a WES state or a group"):
        parse_states("sleeping")


def test_listings_are_run_handles_with_cached_logs(wes: WesClient, tmp_path: Path) -> None:
    done = wes.run(HELLO, HELLO_JOB, timeout=120)
    failing = wes.submit(CWL / "fail.cwl")
    failing.wait(timeout=120, raise_on_failure=False)
    slow = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    try:
        runs = wes.runs(3)
        assert all(isinstance(run, Run) for run in runs)
        assert [run.run_id for run in runs] == [slow.run_id, failing.run_id, done.run_id]
        assert runs[0].summary is not None and runs[0].summary.run_id == slow.run_id
        # A finished run's RunLog is read once and kept; an active one's is read each time.
        assert runs[2].log() is runs[2].log()
        assert runs[0].log() is not runs[0].log()
        RunGroup(wes.runs(3)).save(tmp_path / "group.json")
        assert json.loads((tmp_path / "group.json").read_text())["run_ids"] == [
            r.run_id for r in runs
        ]
        assert [r.run_id for r in wes.runs(10, state="active")] == [slow.run_id]
        assert [r.run_id for r in wes.runs(10, state=["failed", "complete"])] == [
            failing.run_id,
            done.run_id,
        ]
        assert [r.run_id for r in wes.list_runs(state="finished")] == [
            failing.run_id,
            done.run_id,
        ]
    finally:
        slow.cancel()


def test_async_listings_are_handles(live: Any, journal: Any) -> None:
    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:
            run = await wes.submit(HELLO, HELLO_JOB)
            await run.wait(timeout=120)
            (listed,) = await wes.runs(5, state="finished")
            assert isinstance(listed, AsyncRun) and listed == run
            assert listed.known_log().state is State.COMPLETE  # read by runs(), kept
            assert await wes.runs(5, state="active") == []

    asyncio.run(main())


def test_cli_list_takes_several_states_and_groups(
    wes: WesClient, live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    runner = CliRunner()
    done = wes.run(HELLO, HELLO_JOB, timeout=120)
    failing = wes.submit(CWL / "fail.cwl")
    failing.wait(timeout=120, raise_on_failure=False)
    failed = runner.invoke(cli, ["list", "--state", "failed"])
    assert failed.exit_code == 0
    assert failing.run_id in failed.stdout and done.run_id not in failed.stdout
    both = runner.invoke(cli, ["list", "--state", "failed", "--state", "COMPLETE", "--json"])
    assert [r["run_id"] for r in json.loads(both.stdout)] == [failing.run_id, done.run_id]
    listed = runner.invoke(cli, ["list", "--state", "active,canceled"])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 1
    bad = runner.invoke(cli, ["list", "--state", "sleeping"])
    assert bad.exit_code == 2 and "active, finished, failed, canceled" in bad.stderr
