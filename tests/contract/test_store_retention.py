"""The retention and deletion part of the store contract, for every backend.

``outputs_due`` measures a run's age by the store's own clock, so "ended long ago" is asked as
a negative age (``outputs_due(-60)``: ended before a minute from now), which needs no sleep.
"""

from __future__ import annotations

import threading

import pytest

from toolchest_wes.models import ACTIVE_STATES, TERMINAL_STATES, State
from toolchest_wes.store.base import RunExistsError, RunUpdate, iso_now

ENDED = -60.0  # an age every run that has ended is past
ANYTIME = frozenset(State)


def _end(store, run_id, state=State.COMPLETE):
    """Move a run from wherever it is to ``state``, as the server does, with an end time."""
    assert store.transition(
        run_id, state, allowed_from=ANYTIME - {state}, update=RunUpdate(end_time=iso_now())
    )


def _start(store, make_record, run_id, **fields):
    store.create_run(make_record(run_id, state=State.RUNNING, **fields))


def test_a_new_record_has_its_outputs(store, make_record):
    _start(store, make_record, "r")

    assert store.get_run("r").outputs_removed_at is None


def test_outputs_removed_at_round_trips(store, make_record):
    record = make_record("r", state=State.COMPLETE, outputs_removed_at="2024-01-02T03:04:05Z")
    store.create_run(record)

    assert store.get_run("r") == record


def test_ended_runs_are_due_and_active_ones_never(store, make_record):
    for run_id in ("done", "failed", "cancelled"):
        _start(store, make_record, run_id)
    _end(store, "done")
    _end(store, "failed", State.EXECUTOR_ERROR)
    _end(store, "cancelled", State.CANCELED)
    for i, state in enumerate(sorted(ACTIVE_STATES)):
        store.create_run(make_record(f"active-{i}", state=state))

    assert sorted(store.outputs_due(ENDED, limit=100)) == ["cancelled", "done", "failed"]


def test_runs_are_not_due_before_the_period_is_over(store, make_record):
    _start(store, make_record, "r")
    _end(store, "r")

    assert store.outputs_due(3600, limit=100) == []
    assert store.outputs_due(ENDED, limit=100) == ["r"]


def test_due_respects_the_limit(store, make_record):
    for i in range(5):
        _start(store, make_record, f"r{i}")
        _end(store, f"r{i}")

    assert len(store.outputs_due(ENDED, limit=2)) == 2
    assert store.outputs_due(ENDED, limit=0) == []


def test_marking_removed_takes_the_run_out_of_the_due_runs(store, make_record):
    for run_id in ("a", "b"):
        _start(store, make_record, run_id)
        _end(store, run_id)

    assert store.mark_outputs_removed("a", "2024-05-06T07:08:09Z") is True

    assert store.outputs_due(ENDED, limit=100) == ["b"]
    record = store.get_run("a")
    assert record.outputs_removed_at == "2024-05-06T07:08:09Z"
    assert record.state is State.COMPLETE


def test_marking_an_unknown_run(store):
    assert store.mark_outputs_removed("nope", iso_now()) is False
    assert store.get_run("nope") is None


def test_other_stores_on_the_database_see_the_marks(open_store, make_record):
    first, second = open_store(), open_store()
    _start(first, make_record, "r")
    _end(first, "r")

    assert second.outputs_due(ENDED, limit=10) == ["r"]
    second.mark_outputs_removed("r", iso_now())
    assert first.outputs_due(ENDED, limit=10) == []


# -- delete ------------------------------------------------------------------------------------


def test_delete_unknown_run(store):
    assert store.delete_run("nope") is None


@pytest.mark.parametrize("state", sorted(ACTIVE_STATES))
def test_delete_leaves_an_active_run_alone(store, make_record, state):
    store.create_run(make_record("r", state=state, tags={"k": "v"}))

    assert store.delete_run("r") is state

    assert store.get_state("r") is state
    assert [r.run_id for r in store.list_runs(page_size=10, tag=("k", "v")).runs] == ["r"]
    assert store.count_by_state().get(state) == 1


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
def test_delete_removes_a_finished_run_everywhere(store, make_record, state):
    _start(store, make_record, "gone", tags={"project": "p", "user": "u"})
    _start(store, make_record, "kept", tags={"project": "p"})
    _end(store, "gone", state)
    _end(store, "kept", state)

    assert store.delete_run("gone") is state

    assert store.get_run("gone") is None
    assert store.get_state("gone") is None
    assert [r.run_id for r in store.list_runs(page_size=10).runs] == ["kept"]
    assert [r.run_id for r in store.list_runs(page_size=10, states=frozenset({state})).runs] == [
        "kept"
    ]
    assert [r.run_id for r in store.list_runs(page_size=10, tag=("project", "p")).runs] == ["kept"]
    assert store.list_runs(page_size=10, tag=("user", "u")).runs == []
    assert store.count_by_state() == {state: 1}
    assert store.outputs_due(ENDED, limit=10) == ["kept"]
    assert store.transition("gone", State.RUNNING, allowed_from=ANYTIME) is False
    assert store.delete_run("gone") is None


def test_the_last_run_of_a_state_leaves_the_counts(store, make_record):
    _start(store, make_record, "r")
    _end(store, "r")

    store.delete_run("r")

    assert store.count_by_state() == {}


def test_a_deleted_run_id_can_be_created_again(store, make_record):
    _start(store, make_record, "r")
    _end(store, "r")
    store.delete_run("r")

    store.create_run(make_record("r"))

    assert store.get_state("r") is State.QUEUED
    with pytest.raises(RunExistsError):
        store.create_run(make_record("r"))


def test_pages_stay_whole_across_a_deletion(store, make_record):
    for i in range(6):
        _start(store, make_record, f"r{i}")
        _end(store, f"r{i}")
    first = store.list_runs(page_size=3)

    store.delete_run("r2")

    rest = store.list_runs(page_size=3, page_token=first.next_page_token)
    assert [r.run_id for r in first.runs] == ["r5", "r4", "r3"]
    assert [r.run_id for r in rest.runs] == ["r1", "r0"]


def test_delete_races_with_the_run_ending(open_store, make_record):
    """A delete that meets a run on its way to CANCELED deletes it only once it has ended."""
    runs = [f"r{i}" for i in range(40)]
    setup = open_store()
    for run_id in runs:
        setup.create_run(make_record(run_id, state=State.CANCELING))
    ender, deleter = open_store(), open_store()
    results: dict[str, State | None] = {}
    barrier = threading.Barrier(2)

    def end_all() -> None:
        barrier.wait()
        for run_id in runs:
            _end(ender, run_id, State.CANCELED)

    def delete_all() -> None:
        barrier.wait()
        for run_id in runs:
            results[run_id] = deleter.delete_run(run_id)

    threads = [threading.Thread(target=end_all), threading.Thread(target=delete_all)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for run_id in runs:
        if results[run_id] is State.CANCELED:
            assert setup.get_run(run_id) is None
        else:
            assert results[run_id] is State.CANCELING
            assert setup.get_state(run_id) is State.CANCELED
    remaining = len(runs) - sum(1 for s in results.values() if s is State.CANCELED)
    assert sum(setup.count_by_state().values()) == remaining
    assert len(setup.list_runs(page_size=100).runs) == remaining


def test_bulk_loaded_runs_read_count_list_and_sweep_like_created_ones(store, make_record):
    from toolchest_wes.store.bulk_load import load_runs

    ended = {"end_time": "2020-01-01T00:00:00Z"}
    records = [
        make_record("done", state=State.COMPLETE, tags={"p": "a"}, **ended),
        make_record("failed", state=State.EXECUTOR_ERROR, tags={"p": "b"}, **ended),
        make_record("swept", state=State.COMPLETE, outputs_removed_at=iso_now(), **ended),
        make_record("active", state=State.RUNNING, tags={"p": "a"}),
    ]
    load_runs(store, records)
    # Loading again changes nothing: a stored id is skipped.
    load_runs(store, records)

    assert [store.get_run(r.run_id) for r in records] == records
    counts = {State.COMPLETE: 2, State.EXECUTOR_ERROR: 1, State.RUNNING: 1}
    assert store.count_by_state() == counts
    listed = store.list_runs(page_size=10, tag=("p", "a")).runs
    assert [run.run_id for run in listed] == ["active", "done"]
    assert sorted(store.outputs_due(ENDED, limit=10)) == ["done", "failed"]
    assert store.mark_outputs_removed("done", iso_now())
    assert store.outputs_due(ENDED, limit=10) == ["failed"]
    store.create_run(make_record("new", state=State.QUEUED))
    assert store.count_by_state() == {**counts, State.QUEUED: 1}
