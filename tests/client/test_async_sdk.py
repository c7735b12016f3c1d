"""The asyncio client against a real server over HTTP, in both modes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.client import (
    AsyncRun,
    AsyncRunGroup,
    AsyncWesClient,
    Journal,
    RunFailed,
    RunNotFoundError,
    State,
    WaitTimeout,
)

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"


def test_async_submit_wait_outputs_and_download(
    live: object, journal: Journal, tmp_path: Path
) -> None:
    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:  # type: ignore[attr-defined]
            run = await wes.submit(HELLO, HELLO_JOB, tags={"via": "async"})
            assert isinstance(run, AsyncRun)
            log = await run.wait(timeout=120, initial_interval=0.05)
            assert log.state is State.COMPLETE
            outputs = await run.outputs()
            assert [f.path for f in outputs] == ["hello.txt"]
            (path,) = await run.download(tmp_path / "out")
            assert path.read_text().strip() == "Hello from toolchest-wes"
            assert "completed success" in await run.logs()
            assert "".join([t async for t in run.follow_logs()]) == await run.logs()
            listed = [r.run_id async for r in wes.list_runs(tags={"via": "async"})]
            assert listed == [run.run_id]
            assert [r.run_id for r in await wes.runs(5)] == [run.run_id]
            assert (await wes.get_service_info()).supported_wes_versions

    asyncio.run(main())


def test_async_group_failures_timeouts_and_cancel(live: object, journal: Journal) -> None:
    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:  # type: ignore[attr-defined]
            fail = await wes.submit(CWL / "fail.cwl")
            hello = await wes.submit(HELLO, HELLO_JOB)
            group = AsyncRunGroup([fail, hello])
            done = [r.run_id async for r in group.as_completed(timeout=120, initial_interval=0.05)]
            assert sorted(done) == sorted([fail.run_id, hello.run_id])
            assert await group.is_ready()
            with pytest.raises(RunFailed) as info:
                await fail.wait(timeout=5)
            assert info.value.state is State.EXECUTOR_ERROR
            sleeper = await wes.submit(CWL / "sleep.cwl", {"seconds": 600})
            with pytest.raises(WaitTimeout):
                await sleeper.wait(timeout=0.2, initial_interval=0.05)
            with pytest.raises(asyncio.CancelledError):
                async with sleeper.cancel_on_interrupt():
                    raise asyncio.CancelledError
            log = await sleeper.wait(timeout=60, initial_interval=0.05, raise_on_failure=False)
            assert log.state in (State.CANCELED, State.CANCELING)

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_async_operations_and_handles(live: object, journal: Journal, tmp_path: Path) -> None:
    """Every WES operation of the asyncio client, and what its run handles add to them."""

    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:  # type: ignore[attr-defined]
            assert repr(wes) == f"AsyncWesClient({wes.url!r})"
            run_id = await wes.run_workflow(
                HELLO.name,
                json.loads(HELLO_JOB.read_text()),
                workflow_attachment=[(HELLO.name, HELLO)],
            )
            log = await wes.wait_for_run(run_id, timeout=120, initial_interval=0.05)
            assert log.state is State.COMPLETE
            run = await wes.get_run(run_id)
            tasks = await run.tasks()
            paged = [t.id async for t in wes.list_tasks(run_id, page_size=1)]
            assert tasks and paged == [t.id for t in tasks]
            assert (await wes.get_task(run_id, tasks[0].id)).name == tasks[0].name
            assert isinstance(await run.logs("stderr", task=tasks[0].name), str)
            again = AsyncRun.from_id(run_id, wes)
            assert await again.status() is State.COMPLETE
            assert await again.cancel() is False  # nothing left to cancel
            await run.delete()
            with pytest.raises(RunNotFoundError):
                await wes.get_run(run_id)

            done = await wes.run(HELLO, HELLO_JOB, timeout=120, download=tmp_path / "out")
            assert (await done.log()).state is State.COMPLETE
            assert (
                tmp_path / "out" / "hello.txt"
            ).read_text().strip() == "Hello from toolchest-wes"

    asyncio.run(main())
