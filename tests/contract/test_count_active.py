"""Contract: counting unfinished runs, per owner and in all, in every store."""

from __future__ import annotations

from toolchest_wes.models import ACTIVE_STATES, TERMINAL_STATES, State


def test_count_active_counts_unfinished_runs_per_owner(store, make_record):
    for state in State:
        store.create_run(make_record(state=state, owner="alice"))
        store.create_run(make_record(state=state, owner="bob"))
        store.create_run(make_record(state=state))

    assert store.count_active("alice") == len(ACTIVE_STATES)
    assert store.count_active("bob") == len(ACTIVE_STATES)
    assert store.count_active("carol") == 0
    assert store.count_active(None) == 3 * len(ACTIVE_STATES)
    assert store.count_active() == 3 * len(ACTIVE_STATES)


def test_count_active_follows_transitions(store, make_record):
    records = [make_record(owner="alice") for _ in range(3)]
    for record in records:
        store.create_run(record)
    assert store.count_active("alice") == 3

    assert store.transition(
        records[0].run_id, State.INITIALIZING, allowed_from=frozenset({State.QUEUED})
    )
    assert store.count_active("alice") == 3
    assert store.transition(records[1].run_id, State.CANCELED, allowed_from=frozenset(State))
    assert store.count_active("alice") == 2
    assert store.count_active() == 2
    assert State.CANCELED in TERMINAL_STATES


def test_count_active_is_zero_on_an_empty_store(store):
    assert store.count_active() == 0
    assert store.count_active("alice") == 0
