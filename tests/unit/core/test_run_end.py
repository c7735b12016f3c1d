"""How the runs waiting on their engines share the store's reads, and how a run that failed
outside its engine ends."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.unit.core.test_executor import FakeHandle, stored_run
from toolchest_wes.core import run_end
from toolchest_wes.models import State
from toolchest_wes.store.base import StoreUnavailableError


def test_the_state_poll_spreads_out_with_many_runs_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # A thousand runs in one process read their states 500 times a second in all, not 5,000;
    # a few runs keep the configured interval.
    monkeypatch.setattr(run_end._WAITERS, "count", 3)
    assert run_end._state_poll_interval(0.2) == 0.2
    monkeypatch.setattr(run_end._WAITERS, "count", 1000)
    assert run_end._state_poll_interval(0.2) == 2.0


def test_a_failure_outside_the_engine_kills_it_and_ends_the_run(tmp_path: Path) -> None:
    store, deps = stored_run(tmp_path, State.RUNNING)
    handle = FakeHandle(None)
    try:
        raise ValueError("bad record")
    except ValueError as exc:
        run_end.fail_outside_engine(
            deps, "r", handle, exc, log_line="run failed", reason="the server failed"
        )

    record = store.get_run("r")
    store.close()
    assert handle.code == -int(signal.SIGKILL)
    assert record is not None and record.state is State.SYSTEM_ERROR
    assert record.system_logs == ["the server failed: ValueError: bad record"]


def test_a_store_outage_outside_the_engine_leaves_the_run_to_its_lease(tmp_path: Path) -> None:
    store, deps = stored_run(tmp_path, State.RUNNING)
    handle = FakeHandle(None)
    exc = StoreUnavailableError("Redis state store: connection refused")
    run_end.fail_outside_engine(deps, "r", handle, exc, log_line="run failed", reason="failed")

    record = store.get_run("r")
    store.close()
    assert handle.code == -int(signal.SIGKILL)
    assert record is not None and record.state is State.RUNNING and not record.system_logs
