"""Failures explain themselves, cancels read as cancels, and only Ctrl-C or SIGTERM cancel."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.cli.main import cli
from toolchest_wes.client import (
    AsyncRunGroup,
    AsyncWesClient,
    RunFailed,
    RunGroup,
    State,
    WaitTimeout,
    WesClient,
)
from toolchest_wes.client.run import Terminated

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"
ACTIVE = (State.QUEUED, State.INITIALIZING, State.RUNNING)


@pytest.fixture
def runner(live: Any, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    return CliRunner()


def test_run_failed_names_the_task_its_exit_code_and_its_stderr(wes: WesClient) -> None:
    run = wes.submit(CWL / "fail.cwl")
    with pytest.raises(RunFailed) as info:
        run.wait(timeout=120, initial_interval=0.05)
    failed = info.value
    assert failed.task is not None and failed.task.exit_code == 3
    assert "something went wrong" in failed.task_stderr_tail
    text = str(failed)
    assert f"task {failed.task.name!r} exited with 3" in text
    assert "engine exited with status" not in text  # the engine's log is not repeated
    assert "--- stderr of task" in text and "something went wrong" in text
    assert not failed.cancelled


def test_cli_names_the_failed_task(wes: WesClient, runner: CliRunner) -> None:
    run = wes.submit(CWL / "fail.cwl")
    result = runner.invoke(cli, ["wait", run.run_id])
    assert result.exit_code == 1
    assert "error:" in result.stderr and "exited with 3" in result.stderr
    assert "something went wrong" in result.stderr


def test_a_cancelled_run_reads_as_cancelled(wes: WesClient, runner: CliRunner) -> None:
    run = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    assert run.cancel() is True
    with pytest.raises(RunFailed) as info:
        run.wait(timeout=60, initial_interval=0.05)
    assert info.value.cancelled and str(info.value) == f"run {run.run_id} was cancelled (CANCELED)"
    result = runner.invoke(cli, ["wait", run.run_id])
    assert result.exit_code == 4
    assert result.stderr.splitlines()[-1] == f"run {run.run_id} was cancelled (CANCELED)"
    assert "error" not in result.stderr and "exit code" not in result.stderr
    assert result.stdout.strip() == "CANCELED"


def test_cancelling_a_finished_run_says_so(wes: WesClient, runner: CliRunner) -> None:
    run = wes.run(HELLO, HELLO_JOB, timeout=120)
    assert run.cancel() is False
    assert run.status() is State.COMPLETE
    result = runner.invoke(cli, ["cancel", run.run_id])
    assert result.exit_code == 0
    assert result.stdout.strip() == (
        f"run {run.run_id} had already finished (COMPLETE); nothing to cancel"
    )
    as_json = runner.invoke(cli, ["cancel", run.run_id, "--json"])
    assert '"cancel_requested": false' in as_json.stdout


def test_cancel_on_interrupt_leaves_the_run_on_timeout(wes: WesClient) -> None:
    run = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    with pytest.raises(WaitTimeout), run.cancel_on_interrupt():
        run.wait(timeout=0.2, initial_interval=0.05)
    assert run.status() in ACTIVE
    with pytest.raises(RuntimeError), run.cancel_on_interrupt():
        raise RuntimeError("not an interrupt")
    assert run.status() in ACTIVE

    def terminated_while_waiting() -> None:
        with run.cancel_on_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            run.wait(timeout=30, initial_interval=0.05)

    with pytest.raises(Terminated) as info:
        terminated_while_waiting()
    assert info.value.code == 143
    log = run.wait(timeout=60, initial_interval=0.05, raise_on_failure=False)
    assert log.state in (State.CANCELED, State.CANCELING)
    # The handler is gone with the block.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_run_group_cancel_on_interrupt(wes: WesClient) -> None:
    group = RunGroup([wes.submit(CWL / "sleep.cwl", {"seconds": 600}) for _ in range(2)])
    with pytest.raises(WaitTimeout), group.cancel_on_interrupt():
        group.get(timeout=0.2, initial_interval=0.05)
    assert all(state in ACTIVE for state in group.statuses.values())
    with pytest.raises(KeyboardInterrupt), group.cancel_on_interrupt():
        raise KeyboardInterrupt
    logs = [run.wait(timeout=60, initial_interval=0.05, raise_on_failure=False) for run in group]
    assert {log.state for log in logs} <= {State.CANCELED, State.CANCELING}


def test_async_cancel_on_interrupt(live: Any, journal: Any) -> None:
    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:
            run = await wes.submit(CWL / "sleep.cwl", {"seconds": 600})
            with pytest.raises(WaitTimeout):
                async with run.cancel_on_interrupt():
                    await run.wait(timeout=0.2, initial_interval=0.05)
            assert await run.status() in ACTIVE
            group = AsyncRunGroup([run])
            with pytest.raises(KeyboardInterrupt):
                async with group.cancel_on_interrupt():
                    raise KeyboardInterrupt
            log = await run.wait(timeout=60, initial_interval=0.05, raise_on_failure=False)
            assert log.state in (State.CANCELED, State.CANCELING)
            assert await run.cancel() is False

    asyncio.run(main())


def test_outputs_wait_on_a_failed_run_raises_run_failed(wes: WesClient, tmp_path: Path) -> None:
    run = wes.submit(CWL / "fail.cwl")
    with pytest.raises(RunFailed):
        run.download(tmp_path, wait=True, timeout=120)
