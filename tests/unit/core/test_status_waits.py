"""StatusWaits: which requests wait, and for what (the store's own waits are in the contract)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from toolchest_wes.core.status_waits import MAX_WAIT_S, StatusWaits
from toolchest_wes.models import State


class _Store:
    """Records how each state was read; ``wait_for_state`` blocks until ``release`` is set."""

    def __init__(self, state: State | None) -> None:
        self.state = state
        self.calls: list[tuple[str, float]] = []
        self.waiting = threading.Event()
        self.release = threading.Event()
        self.done: Callable[[State | None], bool] | None = None

    def get_state(self, run_id: str) -> State | None:
        self.calls.append(("get", 0.0))
        return self.state

    def wait_for_state(
        self, run_id: str, done: Callable[[State | None], bool], timeout_s: float
    ) -> State | None:
        self.calls.append(("wait", timeout_s))
        self.done = done
        self.waiting.set()
        self.release.wait(30)
        return self.state


def test_only_a_request_with_wait_waits_and_never_past_the_maximum() -> None:
    store = _Store(State.RUNNING)
    store.release.set()
    waits = StatusWaits(store, limit=2)  # type: ignore[arg-type]
    assert waits.state("r") is State.RUNNING
    assert waits.state("r", wait_s=5) is State.RUNNING
    assert waits.state("r", wait_s=3600) is State.RUNNING
    assert store.calls == [("get", 0.0), ("wait", 5), ("wait", MAX_WAIT_S)]


def test_requests_past_the_limit_are_answered_at_once() -> None:
    store = _Store(State.QUEUED)
    waits = StatusWaits(store, limit=1)  # type: ignore[arg-type]
    held = threading.Thread(target=waits.state, args=("a", 30.0))
    held.start()
    assert store.waiting.wait(30)
    assert waits.state("b", wait_s=30) is State.QUEUED
    assert store.calls == [("wait", 30.0), ("get", 0.0)]
    store.release.set()
    held.join(30)
    # The slot is free again.
    assert waits.state("c", wait_s=1) is State.QUEUED
    assert store.calls[-1] == ("wait", 1)
    assert StatusWaits(store, limit=0).state("d", wait_s=1) is State.QUEUED  # type: ignore[arg-type]
    assert store.calls[-1] == ("get", 0.0)


def test_a_wait_is_over_when_the_run_ends_goes_or_leaves_the_state_seen() -> None:
    store = _Store(State.RUNNING)
    store.release.set()
    waits = StatusWaits(store, limit=1)  # type: ignore[arg-type]
    waits.state("r", wait_s=1)
    until_ended = store.done
    waits.state("r", wait_s=1, changed_from=State.QUEUED)
    until_changed = store.done
    assert until_ended is not None and until_changed is not None
    for state in (None, State.COMPLETE, State.CANCELED):
        assert until_ended(state) and until_changed(state)
    assert not until_ended(State.RUNNING) and not until_ended(State.QUEUED)
    assert until_changed(State.RUNNING) and not until_changed(State.QUEUED)


class _PollingStore:
    """Asks ``done`` every 10 ms, as the stores do each recheck; the state never changes."""

    def get_state(self, run_id: str) -> State:
        return State.RUNNING

    def wait_for_state(
        self, run_id: str, done: Callable[[State | None], bool], timeout_s: float
    ) -> State:
        deadline = time.monotonic() + timeout_s
        while not done(State.RUNNING) and time.monotonic() < deadline:
            time.sleep(0.01)
        return State.RUNNING


def test_released_waits_answer_now_and_later_ones_at_once() -> None:
    waits = StatusWaits(_PollingStore(), limit=2)  # type: ignore[arg-type]
    answers: list[State | None] = []
    held = threading.Thread(target=lambda: answers.append(waits.state("r", wait_s=30)))
    held.start()
    waits.release()
    held.join(30)  # within the 30 s only if released
    assert answers == [State.RUNNING] and not held.is_alive()
    assert waits.state("r", wait_s=30) is State.RUNNING
