"""Threads waiting for a run's state: woken by the store, and reading again on their own."""

from __future__ import annotations

import threading
import time

from toolchest_wes.models import State
from toolchest_wes.store._state_waits import StateWaits


def _ended(state: State | None) -> bool:
    return state is None or state.is_terminal


def test_a_wait_ends_when_the_store_says_the_run_changed() -> None:
    waits = StateWaits(recheck_s=3600)  # only a wake-up can end it before the timeout
    states = {"r": State.RUNNING}
    reads: list[State] = []

    def read() -> State:
        reads.append(states["r"])
        return states["r"]

    def end() -> None:
        while not waits._waiting:
            time.sleep(0.001)
        states["r"] = State.COMPLETE
        waits.changed("other")  # another run's change wakes nobody here
        waits.changed("r")

    threading.Thread(target=end).start()
    assert waits.wait("r", read, _ended, timeout_s=3600) is State.COMPLETE
    assert reads[-1] is State.COMPLETE
    assert waits._waiting == {}


def test_a_wait_reads_again_on_its_own_and_answers_at_the_timeout() -> None:
    waits = StateWaits(recheck_s=0.01)
    reads: list[State] = []

    def read() -> State:
        reads.append(State.RUNNING)
        return State.RUNNING

    assert waits.wait("r", read, _ended, timeout_s=0.1) is State.RUNNING
    assert len(reads) > 2  # changes made where the store hears nothing are still seen
    assert waits._waiting == {}


def test_a_wait_that_is_already_over_reads_once() -> None:
    reads: list[None] = []

    def read() -> None:
        reads.append(None)

    assert StateWaits().wait("gone", read, _ended, timeout_s=3600) is None
    assert reads == [None]


def test_every_waiter_of_a_run_is_woken() -> None:
    waits = StateWaits(recheck_s=3600)
    state = [State.QUEUED]
    results: list[State | None] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(waits.wait("r", lambda: state[0], _ended, 3600))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    while len(waits._waiting.get("r", [])) < 3:
        time.sleep(0.001)
    state[0] = State.CANCELED
    waits.changed("r")
    for thread in threads:
        thread.join(timeout=30)
    assert results == [State.CANCELED] * 3
