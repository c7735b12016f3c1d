"""Listing runs in several states at once, alone and with the tag and owner filters.

Every case is checked against the filtered newest-first sequence worked out here, page by page,
so a store that repeats, skips or misorders a run across pages fails.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from toolchest_wes.models import FAILED_STATES, STATE_GROUPS, TERMINAL_STATES, State
from toolchest_wes.store.base import RunRecord, StateStore

#: Run id -> (state, tags, owner) of the runs stored, oldest first.
Stored = dict[str, tuple[State, dict[str, str], str]]


def _fill(store: StateStore, make_record: Callable[..., RunRecord], count: int = 120) -> Stored:
    """``count`` runs in states, projects and owners that interleave; some moved state later."""
    rng = random.Random(7)
    # Weighted so that some states are frequent and others rare, as in a real history.
    weights = {state: 1 for state in State} | {State.COMPLETE: 12, State.RUNNING: 4}
    stored: Stored = {}
    for i in range(count):
        state = rng.choices(list(weights), list(weights.values()))[0]
        tags = {"project": rng.choice("ab")}
        owner = rng.choice(["alice", "bob"])
        record = make_record(f"r{i:03d}", state=state, tags=tags, owner=owner)
        store.create_run(record)
        stored[record.run_id] = (state, tags, owner)
    # Runs that change state after newer runs were stored keep their place in the order.
    for run_id, (state, tags, owner) in list(stored.items())[::9]:
        if state is State.RUNNING:
            store.transition(run_id, State.SYSTEM_ERROR, allowed_from=frozenset({state}))
            stored[run_id] = (State.SYSTEM_ERROR, tags, owner)
    return stored


def _pages(store: StateStore, page_size: int, **filters: object) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = store.list_runs(page_size=page_size, page_token=token, **filters)  # type: ignore[arg-type]
        pages.append([run.run_id for run in page.runs])
        token = page.next_page_token
        if token is None:
            return pages
        assert len(pages) <= 200, "pagination does not end"


def _expected(
    stored: Stored, states: frozenset[State], project: str | None, owner: str | None
) -> list[str]:
    return [
        run_id
        for run_id, (state, tags, who) in reversed(stored.items())
        if state in states
        and (project is None or tags["project"] == project)
        and (owner is None or who == owner)
    ]


SELECTIONS = {
    "two states": frozenset({State.RUNNING, State.EXECUTOR_ERROR}),
    "active": STATE_GROUPS["active"],
    "finished": STATE_GROUPS["finished"],
    "failed": STATE_GROUPS["failed"],
    "canceled": STATE_GROUPS["canceled"],
    "all states": frozenset(State),
}


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
@pytest.mark.parametrize(
    ("project", "owner"), [(None, None), ("a", None), (None, "bob"), ("b", "alice")]
)
@pytest.mark.parametrize("page_size", [1, 4, 50])
def test_several_states_page_newest_first(store, make_record, selection, project, owner, page_size):
    stored = _fill(store, make_record)
    states = SELECTIONS[selection]
    wanted = _expected(stored, states, project, owner)
    filters: dict[str, object] = {"states": states}
    if project is not None:
        filters["tag"] = ("project", project)
    if owner is not None:
        filters["owner"] = owner

    pages = _pages(store, page_size, **filters)

    listed = [run_id for page in pages for run_id in page]
    assert listed == wanted
    assert all(len(page) == page_size for page in pages[:-1])
    assert len(pages[-1]) == (len(wanted) - 1) % page_size + 1 if wanted else pages == [[]]


def test_groups_are_the_named_states(store, make_record):
    stored = _fill(store, make_record, count=60)

    failed = [run.run_id for run in store.list_runs(page_size=100, states=FAILED_STATES).runs]
    finished = [run.run_id for run in store.list_runs(page_size=100, states=TERMINAL_STATES).runs]

    assert failed == _expected(stored, FAILED_STATES, None, None)
    assert finished == _expected(stored, TERMINAL_STATES, None, None)
    assert failed and finished


def test_states_none_and_empty(store, make_record):
    stored = _fill(store, make_record, count=20)

    every = store.list_runs(page_size=100, states=None).runs
    assert [run.run_id for run in every] == list(reversed(stored))
    assert store.list_runs(page_size=100, states=frozenset()).runs == []


def test_states_with_none_stored(store, make_record):
    store.create_run(make_record("done", state=State.COMPLETE))

    page = store.list_runs(page_size=5, states=FAILED_STATES, tag=("project", "a"), owner="x")

    assert page.runs == []
    assert page.next_page_token is None
