"""RunGroup: saving without a path, cached statuses, refresh, run ids and downloads per run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.client import AsyncRunGroup, AsyncWesClient, RunGroup, State, WesClient

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"


class Counting:
    """Counts the status requests a client sends."""

    def __init__(self, wes: Any) -> None:
        self.calls: list[str] = []
        original = wes.get_run_status

        def counted(run_id: str) -> Any:
            self.calls.append(run_id)
            return original(run_id)

        wes.get_run_status = counted


def test_save_without_a_path_goes_to_the_state_folder(
    wes: WesClient, tmp_path: Path, journal: Any
) -> None:
    group = RunGroup([wes.submit(HELLO, HELLO_JOB) for _ in range(2)])
    path = group.save()
    assert path.parent == journal.path.parent / "groups" and path.is_file()
    assert RunGroup.open(path, wes).run_ids == group.run_ids
    nested = group.save(tmp_path / "new" / "folder" / "batch.json")
    assert nested.is_file()
    group.get(timeout=120)


def test_statuses_poll_only_unfinished_runs(wes: WesClient) -> None:
    done = wes.run(HELLO, HELLO_JOB, timeout=120)
    slow = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    group = RunGroup([done, slow])
    counter = Counting(wes)
    try:
        assert group.statuses[done.run_id] is State.COMPLETE
        assert sorted(counter.calls) == sorted([done.run_id, slow.run_id])
        counter.calls.clear()
        states = group.refresh()
        assert counter.calls == [slow.run_id]
        assert states[done.run_id] is State.COMPLETE and not group.is_ready
    finally:
        group.cancel()
    assert slow.run_id in counter.calls  # cancel asks only the unfinished run
    group.get(timeout=60)
    counter.calls.clear()
    assert group.is_ready and group.refresh()[slow.run_id] in (State.CANCELED, State.CANCELING)
    assert counter.calls in ([], [slow.run_id])  # CANCELING is not an end, CANCELED is


def test_download_puts_each_run_in_its_own_folder(wes: WesClient, tmp_path: Path) -> None:
    group = RunGroup([wes.submit(HELLO, {"message": str(i)}) for i in range(2)])
    written = group.download(tmp_path / "all", wait=True, timeout=120)
    assert list(written) == group.run_ids
    for run_id, paths in written.items():
        assert paths == [tmp_path / "all" / run_id / "hello.txt"]


def test_async_group_refresh_and_download(live: Any, journal: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWesClient(live.url, journal=journal) as wes:
            group = AsyncRunGroup([await wes.submit(HELLO, HELLO_JOB)])
            await group.get(timeout=120)
            assert set((await group.refresh()).values()) == {State.COMPLETE}
            written = await group.download(tmp_path)
            assert written == {group.run_ids[0]: [tmp_path / group.run_ids[0] / "hello.txt"]}
            path = group.save()
            assert AsyncRunGroup.open(path, wes).run_ids == group.run_ids

    asyncio.run(main())


def test_saving_runs_of_two_servers_is_refused(wes: WesClient, journal: Any) -> None:
    from toolchest_wes.client import Run

    other = WesClient("http://127.0.0.1:9", journal=journal)
    with pytest.raises(ValueError, match="one server"):
        RunGroup([Run(wes, "a"), Run(other, "b")]).save()
