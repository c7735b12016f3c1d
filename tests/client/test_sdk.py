"""The SDK against a real server over HTTP, in both modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.client import (
    Outputs,
    Run,
    RunFailed,
    RunGroup,
    RunNotFoundError,
    State,
    WaitTimeout,
    WesClient,
    format_runs,
)
from toolchest_wes.client._core import REQUEST_ID_TAG

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"
TWO_STEP = EXAMPLES / "two-step" / "count-lines.cwl"


def test_submit_returns_at_once_and_wait_reaches_complete(wes: WesClient) -> None:
    run = wes.submit(HELLO, HELLO_JOB, tags={"project": "demo"})
    assert isinstance(run, Run) and run.run_id
    assert isinstance(run.status(), State)
    log = run.wait(timeout=120, initial_interval=0.05)
    assert log.state == State.COMPLETE == "COMPLETE"
    assert run.status().is_terminal and run.status().is_success
    assert log.request is not None
    assert log.request.tags["project"] == "demo"
    assert REQUEST_ID_TAG in log.request.tags
    assert log.submitted_time


def test_outputs_table_and_download(wes: WesClient, tmp_path: Path) -> None:
    run = wes.run(HELLO, HELLO_JOB, timeout=120)
    outputs = run.outputs()
    assert isinstance(outputs, Outputs)
    assert [f.path for f in outputs] == ["hello.txt"]
    assert outputs[0].size > 0 and outputs[0].checksum
    table = str(outputs)
    assert "hello.txt" in table and "PATH" in table and "1 files" in table
    written = run.download(tmp_path / "out")
    assert written == [tmp_path / "out" / "hello.txt"]
    assert written[0].read_text().strip() == "Hello from toolchest-wes"
    # A second download finds the file complete and leaves it.
    mtime = written[0].stat().st_mtime_ns
    assert run.download(tmp_path / "out") == written
    assert written[0].stat().st_mtime_ns == mtime


def test_download_resumes_a_partial_file(wes: WesClient, tmp_path: Path) -> None:
    run = wes.run(HELLO, HELLO_JOB, timeout=120)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "hello.txt.part").write_bytes(b"Hello ")
    (path,) = run.download(dest)
    assert path.read_text().strip() == "Hello from toolchest-wes"
    assert not (dest / "hello.txt.part").exists()


def test_download_replaces_a_corrupt_partial_file(wes: WesClient, tmp_path: Path) -> None:
    from toolchest_wes.client import DownloadError

    run = wes.run(HELLO, HELLO_JOB, timeout=120)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "hello.txt.part").write_bytes(b"XXXXXX")
    with pytest.raises(DownloadError, match="checksum"):
        run.download(dest)
    # The bad part file is gone, so the next try starts over and succeeds.
    (path,) = run.download(dest)
    assert path.read_text().strip() == "Hello from toolchest-wes"


def test_selective_download_and_archive(wes: WesClient, tmp_path: Path) -> None:
    run = wes.run(TWO_STEP, EXAMPLES / "two-step" / "count-lines.json", timeout=120)
    paths = [f.path for f in run.outputs()]
    assert len(paths) >= 2
    chosen = run.outputs(include=[paths[0]])
    assert [f.path for f in chosen] == [paths[0]]
    written = run.download(tmp_path / "sel", include=[paths[0]])
    assert [p.name for p in written] == [Path(paths[0]).name]
    (archive,) = run.download(tmp_path / "zip", archive=True)
    assert archive.name.endswith(".zip") and archive.stat().st_size > 0


def test_failed_run_raises_with_reason(wes: WesClient) -> None:
    run = wes.submit(CWL / "fail.cwl")
    with pytest.raises(RunFailed) as info:
        run.wait(timeout=120, initial_interval=0.05)
    assert info.value.state == State.EXECUTOR_ERROR
    assert info.value.exit_code not in (None, 0)
    assert "something went wrong" in info.value.stderr_tail
    log = run.wait(timeout=5, raise_on_failure=False)
    assert log.state == State.EXECUTOR_ERROR


def test_wait_timeout_then_cancel(wes: WesClient) -> None:
    run = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    with pytest.raises(WaitTimeout) as info:
        run.wait(timeout=0.3, initial_interval=0.05)
    assert info.value.run_id == run.run_id
    run.cancel()
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60, initial_interval=0.05)
    assert failed.value.state == State.CANCELED


def test_cancel_on_interrupt_cancels_the_remote_run(wes: WesClient) -> None:
    run = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    with pytest.raises(KeyboardInterrupt), run.cancel_on_interrupt():
        raise KeyboardInterrupt
    log = run.wait(timeout=60, initial_interval=0.05, raise_on_failure=False)
    assert log.state in (State.CANCELED, State.CANCELING)


def test_logs_tasks_and_follow(wes: WesClient) -> None:
    run = wes.run(TWO_STEP, EXAMPLES / "two-step" / "count-lines.json", timeout=120)
    stderr = run.logs()
    assert "completed success" in stderr
    assert "".join(run.follow_logs()) == stderr
    assert "".join(run.logs(follow=True)) == stderr
    tasks = run.tasks()
    assert len(tasks) == 2
    assert isinstance(run.logs("stdout", task=tasks[0].id), str)


def test_get_run_and_from_id(wes: WesClient) -> None:
    run = wes.submit(HELLO, HELLO_JOB)
    again = wes.get_run(run.run_id)
    assert again == run
    assert Run.from_id(run.run_id, wes).wait(timeout=120).state is State.COMPLETE
    with pytest.raises(RunNotFoundError):
        wes.get_run("no-such-run")


def test_list_runs_pages_and_filters(wes: WesClient) -> None:
    ids = [wes.submit(HELLO, HELLO_JOB, tags={"batch": "b1"}).run_id for _ in range(5)]
    failing = wes.submit(CWL / "fail.cwl", tags={"batch": "b2"})
    RunGroup([Run(wes, i) for i in ids] + [failing]).get(timeout=120)
    listed = [r.run_id for r in wes.list_runs(page_size=2)]
    assert listed[:6] == [failing.run_id, *reversed(ids)]
    assert [r.run_id for r in wes.list_runs(tags={"batch": "b1"}, page_size=2)] == ids[::-1]
    assert [r.run_id for r in wes.list_runs(state="executor_error")] == [failing.run_id]
    assert len(list(wes.list_runs(limit=3, page_size=2))) == 3
    last = wes.runs(last_n=10, state=State.EXECUTOR_ERROR)
    assert [r.run_id for r in last] == [failing.run_id]
    table = format_runs(last)
    assert "EXECUTOR_ERROR" in table and "fail.cwl" in table and "SUBMITTED" in table


def test_run_group_as_completed_save_and_open(wes: WesClient, tmp_path: Path) -> None:
    slow = wes.submit(CWL / "sleep.cwl", {"seconds": 2})
    fast = wes.submit(HELLO, HELLO_JOB)
    group = RunGroup([slow, fast])
    group.save(tmp_path / "group.json")
    assert json.loads((tmp_path / "group.json").read_text())["run_ids"] == [
        slow.run_id,
        fast.run_id,
    ]
    reopened = RunGroup.open(tmp_path / "group.json", wes)
    order = [run.run_id for run in reopened.as_completed(timeout=120, initial_interval=0.05)]
    assert sorted(order) == sorted([slow.run_id, fast.run_id])
    assert reopened.is_ready
    assert set(reopened.statuses.values()) == {State.COMPLETE}
    logs = reopened.get(timeout=5)
    assert [log.run_id for log in logs] == [slow.run_id, fast.run_id]


def test_journal_records_every_submission(wes: WesClient) -> None:
    run = wes.submit(HELLO, HELLO_JOB)
    assert wes.journal is not None
    last = wes.journal.last(wes.url)
    assert last is not None and last.run_id == run.run_id
    assert wes.journal.pending() == []


def test_service_info(wes: WesClient) -> None:
    info = wes.get_service_info()
    assert "CWL" in info.workflow_type_versions
    assert info.supported_wes_versions


def test_a_burst_past_the_submit_rate_waits_its_turn(make_live, make_settings, journal) -> None:
    """The server allows 1 submission after a burst of 1 per second: the client waits out
    each 429 as its Retry-After says, and every run is made once."""
    live = make_live(make_settings(submit_rate=60, submit_burst=1))
    with WesClient(live.url, journal=journal, retries=0) as wes:
        runs = [wes.submit(HELLO, {"message": str(i)}) for i in range(3)]
        assert [r.wait(timeout=120).state for r in runs] == [State.COMPLETE] * 3
        assert len(list(wes.list_runs())) == 3


def test_wait_asks_a_server_that_can_to_hold_its_answer(wes: WesClient) -> None:
    sent: list[str] = []
    send = wes.http.send

    def recording(request, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return send(request, **kwargs)

    wes.http.send = recording  # type: ignore[method-assign]
    run = wes.submit(HELLO, HELLO_JOB)
    # With polling from 30 s, only a held answer ends this wait within the test's minutes.
    assert run.wait(timeout=600, initial_interval=30).state == State.COMPLETE
    status = [line for line in sent if line.split("?")[0].endswith("/status")]
    assert status == [f"GET /ga4gh/wes/v1/runs/{run.run_id}/status?wait=20"], sent
