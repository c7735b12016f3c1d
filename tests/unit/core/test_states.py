from __future__ import annotations

import itertools

from toolchest_wes.core.states import TRANSITIONS, allowed_from
from toolchest_wes.models import ACTIVE_STATES, TERMINAL_STATES, State


def test_all_eleven_states_and_terminal_ones() -> None:
    assert len(State) == 11
    assert {
        State.COMPLETE,
        State.EXECUTOR_ERROR,
        State.SYSTEM_ERROR,
        State.CANCELED,
    } == TERMINAL_STATES
    assert State.COMPLETE.is_terminal and State.COMPLETE.is_success
    assert not State.EXECUTOR_ERROR.is_success
    assert not State.PREEMPTED.is_terminal
    assert State.COMPLETE == "COMPLETE"


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL_STATES:
        assert state not in TRANSITIONS
    assert ACTIVE_STATES.isdisjoint(TERMINAL_STATES)


def test_normal_path_and_cancel_path() -> None:
    path = [State.QUEUED, State.INITIALIZING, State.RUNNING, State.COMPLETE]
    for src, dst in itertools.pairwise(path):
        assert dst in TRANSITIONS[src]
    assert State.CANCELED in TRANSITIONS[State.CANCELING]
    assert State.CANCELED in TRANSITIONS[State.QUEUED]
    assert allowed_from(State.CANCELING) == {
        State.QUEUED,
        State.INITIALIZING,
        State.RUNNING,
        State.PAUSED,
    }
    # The engine can finish before a kill lands: CANCELING may still end COMPLETE.
    assert State.CANCELING in allowed_from(State.COMPLETE)
