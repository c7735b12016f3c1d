"""How the runs waiting on their engines share the store's reads."""

from __future__ import annotations

import pytest

from toolchest_wes.core import run_end


def test_the_state_poll_spreads_out_with_many_runs_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # A thousand runs in one process read their states 500 times a second in all, not 5,000;
    # a few runs keep the configured interval.
    monkeypatch.setattr(run_end._WAITERS, "count", 3)
    assert run_end._state_poll_interval(0.2) == 0.2
    monkeypatch.setattr(run_end._WAITERS, "count", 1000)
    assert run_end._state_poll_interval(0.2) == 2.0
