"""The one contract every ``StateStore`` passes; backends come from ``conftest.STORE_BACKENDS``."""

from __future__ import annotations

import base64
import json
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from toolchest_wes.core.states import allowed_from
from toolchest_wes.models import ACTIVE_STATES, RunRequest, State
from toolchest_wes.store.base import (
    IdempotencyClaim,
    IdempotencyKeyReusedError,
    InvalidPageTokenError,
    RunExistsError,
    RunRecord,
    RunUpdate,
    StateStore,
)

ENDING = frozenset({State.RUNNING, State.CANCELING})


def _all_pages(store, **filters) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = store.list_runs(page_size=10, page_token=token, **filters)
        pages.append([run.run_id for run in page.runs])
        token = page.next_page_token
        if token is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


def _create(store, make_record, count, **kwargs) -> list[str]:
    ids = []
    for _ in range(count):
        record = make_record(**kwargs)
        store.create_run(record)
        ids.append(record.run_id)
    return ids


def test_is_a_state_store(store):
    assert isinstance(store, StateStore)


# -- create / get ------------------------------------------------------------------------------


def test_round_trip_full_record(store):
    request = RunRequest.model_validate(
        {
            "workflow_url": "https://example.org/wf.cwl",
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_params": {"n": 3, "files": [{"class": "File", "location": "a"}], "x": None},
            "tags": {"project": "p1", "ünïcode": "✓"},
            "workflow_engine_parameters": {"--parallel": ""},
            "workflow_engine": "cwltool",
            "some_extension_field": {"kept": True},
        }
    )
    record = RunRecord(
        run_id="full",
        state=State.RUNNING,
        request=request,
        created_at=1700000000.25,
        engine_args=["--parallel"],
        start_time="2024-01-01T00:00:00Z",
        end_time=None,
        exit_code=None,
        cmd=["cwltool", "wf.cwl", "job.json"],
        system_logs=["ignored engine parameter --foo"],
        outputs={"out": {"class": "File", "location": "file:///runs/full/out.txt"}},
        output_files=[{"path": "out.txt", "size": 3, "checksum": "sha1$abc"}],
        owner="alice",
    )
    store.create_run(record)

    got = store.get_run("full")

    assert got == record
    assert isinstance(got.state, State)
    assert isinstance(got.request, RunRequest)


def test_round_trip_minimal_record(store, make_record):
    record = make_record()
    store.create_run(record)

    assert store.get_run(record.run_id) == record


def test_duplicate_run_id_raises_and_keeps_the_original(store, make_record):
    store.create_run(make_record("dup", tags={"a": "1"}))

    with pytest.raises(RunExistsError):
        store.create_run(make_record("dup", state=State.RUNNING, tags={"b": "2"}))

    assert store.get_state("dup") is State.QUEUED
    assert store.get_run("dup").request.tags == {"a": "1"}
    assert [r.run_id for r in store.list_runs(page_size=10, tag=("b", "2")).runs] == []


# -- idempotency keys --------------------------------------------------------------------------


def test_a_claimed_key_returns_the_first_run_and_stores_nothing_more(store, make_record):
    claim = IdempotencyClaim("key-1", "fp-a", ttl_s=60)
    first = make_record(owner="alice", tags={"k": "v"})
    assert store.create_run(first, claim=claim) == first.run_id
    assert store.find_claim("alice", "key-1") == ("fp-a", first.run_id)

    again = make_record(owner="alice", tags={"k": "v"})
    assert store.create_run(again, claim=claim) == first.run_id
    assert store.get_run(again.run_id) is None
    assert [r.run_id for r in store.list_runs(page_size=10).runs] == [first.run_id]
    assert store.count_by_state() == {State.QUEUED: 1}
    assert [r.run_id for r in store.list_runs(page_size=10, tag=("k", "v")).runs] == [first.run_id]


def test_a_key_reused_for_another_request_is_refused(store, make_record):
    first = make_record(owner="alice")
    store.create_run(first, claim=IdempotencyClaim("key-1", "fp-a", ttl_s=60))

    with pytest.raises(IdempotencyKeyReusedError) as caught:
        store.create_run(make_record(owner="alice"), claim=IdempotencyClaim("key-1", "fp-b", 60))
    assert caught.value.run_id == first.run_id
    assert store.count_by_state() == {State.QUEUED: 1}


def test_keys_belong_to_their_owner(store, make_record):
    claim = IdempotencyClaim("shared", "fp", ttl_s=60)
    runs = [make_record(owner=owner) for owner in ("alice", "bob", None)]

    assert [store.create_run(r, claim=claim) for r in runs] == [r.run_id for r in runs]
    assert store.find_claim("bob", "shared") == ("fp", runs[1].run_id)
    assert store.find_claim(None, "shared") == ("fp", runs[2].run_id)
    assert store.find_claim("carol", "shared") is None


def test_a_key_expires_after_its_window(store, make_record):
    first = make_record()
    store.create_run(first, claim=IdempotencyClaim("brief", "fp", ttl_s=0.2))
    time.sleep(0.3)

    assert store.find_claim(None, "brief") is None
    later = make_record()
    assert store.create_run(later, claim=IdempotencyClaim("brief", "fp-new", 60)) == later.run_id
    assert store.find_claim(None, "brief") == ("fp-new", later.run_id)


def test_concurrent_creates_with_one_key_store_one_run(open_store, make_record):
    stores = [open_store() for _ in range(4)]
    claim = IdempotencyClaim("race", "fp", ttl_s=60)
    records = [make_record(owner="alice") for _ in range(16)]
    with ThreadPoolExecutor(8) as pool:
        held = list(
            pool.map(lambda i: stores[i % 4].create_run(records[i], claim=claim), range(16))
        )

    assert len(set(held)) == 1
    assert [r.run_id for r in stores[0].list_runs(page_size=50).runs] == held[:1]


def test_unknown_run(store):
    assert store.get_run("nope") is None
    assert store.get_state("nope") is None
    assert store.transition("nope", State.RUNNING, allowed_from=frozenset(State)) is False
    store.update_run("nope", RunUpdate(exit_code=1))
    store.touch_lease("nope", 60)
    assert store.get_run("nope") is None


def test_get_state(store, make_record):
    store.create_run(make_record("r", state=State.INITIALIZING))

    assert store.get_state("r") is State.INITIALIZING


# -- transitions -------------------------------------------------------------------------------


def test_transition_succeeds_from_an_allowed_state(store, make_record):
    store.create_run(make_record("r"))

    assert store.transition("r", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}))
    assert store.get_state("r") is State.INITIALIZING


def test_transition_fails_from_another_state(store, make_record):
    store.create_run(make_record("r"))

    assert not store.transition("r", State.COMPLETE, allowed_from=frozenset({State.RUNNING}))
    assert not store.transition("r", State.COMPLETE, allowed_from=frozenset())
    assert store.get_state("r") is State.QUEUED


def test_update_is_applied_only_when_the_transition_happens(store, make_record):
    store.create_run(make_record("r", state=State.RUNNING))
    update = RunUpdate(
        end_time="2024-01-01T00:01:00Z",
        exit_code=0,
        outputs={"out": 1},
        output_files=[{"path": "o", "size": 1, "checksum": None}],
        append_system_logs=["done"],
    )

    assert not store.transition(
        "r", State.COMPLETE, allowed_from=frozenset({State.QUEUED}), update=update
    )
    unchanged = store.get_run("r")
    assert (unchanged.end_time, unchanged.exit_code, unchanged.outputs) == (None, None, None)
    assert unchanged.output_files is None
    assert unchanged.system_logs == []

    assert store.transition("r", State.COMPLETE, allowed_from=ENDING, update=update)
    done = store.get_run("r")
    assert done.state is State.COMPLETE
    assert (done.end_time, done.exit_code, done.outputs) == ("2024-01-01T00:01:00Z", 0, {"out": 1})
    assert done.output_files == [{"path": "o", "size": 1, "checksum": None}]
    assert done.system_logs == ["done"]


def test_transition_without_update_changes_only_the_state(store, make_record):
    record = make_record("r", state=State.RUNNING, start_time="2024-01-01T00:00:00Z", cmd=["x"])
    store.create_run(record)

    assert store.transition("r", State.CANCELING, allowed_from=frozenset({State.RUNNING}))

    record.state = State.CANCELING
    assert store.get_run("r") == record


def test_update_none_fields_leave_values_alone(store, make_record):
    store.create_run(make_record("r", state=State.RUNNING, start_time="t0", exit_code=3))

    store.update_run("r", RunUpdate(cmd=["a", "b"]))

    got = store.get_run("r")
    assert (got.start_time, got.exit_code, got.cmd, got.state) == ("t0", 3, ["a", "b"], "RUNNING")


def test_terminal_state_is_sticky(store, make_record):
    store.create_run(make_record("r", state=State.RUNNING))
    assert store.transition("r", State.COMPLETE, allowed_from=allowed_from(State.COMPLETE))

    assert not store.transition("r", State.CANCELED, allowed_from=ENDING)
    assert not store.transition("r", State.SYSTEM_ERROR, allowed_from=ACTIVE_STATES)
    assert store.get_state("r") is State.COMPLETE


def test_system_logs_accumulate_in_order(store, make_record):
    store.create_run(make_record("r", state=State.QUEUED, system_logs=["submitted"]))
    # Quotes, JSON-looking text and more lines than one SQL function call takes.
    many = [f'line {i} "quoted" {{"json": [{i}]}}' for i in range(150)]

    store.transition(
        "r",
        State.INITIALIZING,
        allowed_from=frozenset({State.QUEUED}),
        update=RunUpdate(append_system_logs=["ünïcode ✓"]),
    )
    store.update_run("r", RunUpdate(append_system_logs=many))
    store.update_run("r", RunUpdate(append_system_logs=["last"]))

    assert store.get_run("r").system_logs == ["submitted", "ünïcode ✓", *many, "last"]


@pytest.mark.parametrize("round_", range(50))
def test_concurrent_transitions_have_exactly_one_winner(store, make_record, round_):
    threads = 16
    store.create_run(make_record("race", state=State.CANCELING))
    barrier = threading.Barrier(threads, timeout=30)
    targets = [State.CANCELED if i % 2 else State.COMPLETE for i in range(threads)]

    def attempt(to: State) -> bool:
        barrier.wait()
        return store.transition(
            "race",
            to,
            allowed_from=frozenset({State.CANCELING}),
            update=RunUpdate(append_system_logs=[f"won by {to}"]),
        )

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(attempt, targets))

    assert results.count(True) == 1
    winner = targets[results.index(True)]
    assert store.get_state("race") is winner
    assert store.get_run("race").system_logs == [f"won by {winner}"]


# -- listing -----------------------------------------------------------------------------------


def test_empty_listing(store):
    page = store.list_runs(page_size=10)

    assert (page.runs, page.next_page_token) == ([], None)


def test_pages_are_newest_first_without_gaps_or_duplicates(store, make_record):
    ids = _create(store, make_record, 25)

    pages = _all_pages(store)

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p] == ids[::-1]


@pytest.mark.parametrize(("count", "sizes"), [(20, [10, 10]), (3, [3]), (10, [10])])
def test_last_page_has_no_token(store, make_record, count, sizes):
    _create(store, make_record, count)

    assert [len(p) for p in _all_pages(store)] == sizes


def test_summaries_carry_state_times_and_tags(store, make_record):
    store.create_run(
        make_record(
            "r",
            state=State.COMPLETE,
            tags={"k": "v"},
            start_time="2024-01-01T00:00:00Z",
            end_time="2024-01-01T00:00:05Z",
        )
    )

    (summary,) = store.list_runs(page_size=5).runs

    assert summary == store.get_run("r").summary()


def test_new_runs_do_not_shift_later_pages(store, make_record):
    ids = _create(store, make_record, 25)
    first = store.list_runs(page_size=10)

    newer = _create(store, make_record, 7)
    second = store.list_runs(page_size=10, page_token=first.next_page_token)

    assert [r.run_id for r in first.runs] == ids[:-11:-1]
    assert [r.run_id for r in second.runs] == ids[-11:-21:-1]
    assert [r.run_id for r in store.list_runs(page_size=7).runs] == newer[::-1]


def test_state_filter_pages(store, make_record):
    running = []
    for i in range(30):
        record = make_record(state=State.RUNNING if i % 2 else State.COMPLETE)
        store.create_run(record)
        if i % 2:
            running.append(record.run_id)

    pages = _all_pages(store, states=frozenset({State.RUNNING}))

    assert [len(p) for p in pages] == [10, 5]
    assert [i for p in pages for i in p] == running[::-1]


def test_state_filter_follows_transitions(store, make_record):
    store.create_run(make_record("r", state=State.RUNNING))
    store.transition("r", State.COMPLETE, allowed_from=ENDING)

    assert store.list_runs(page_size=5, states=frozenset({State.RUNNING})).runs == []
    assert [
        r.run_id for r in store.list_runs(page_size=5, states=frozenset({State.COMPLETE})).runs
    ] == ["r"]


def test_tag_filter_pages(store, make_record):
    tagged = []
    for i in range(35):
        tags = {"project": "a" if i % 3 == 0 else "b", "other": "a"}
        record = make_record(tags=tags)
        store.create_run(record)
        if i % 3 == 0:
            tagged.append(record.run_id)

    pages = _all_pages(store, tag=("project", "a"))

    assert [len(p) for p in pages] == [10, 2]
    assert [i for p in pages for i in p] == tagged[::-1]
    assert _all_pages(store, tag=("project", "zzz")) == [[]]
    assert _all_pages(store, tag=("a", "project")) == [[]]


def test_state_and_tag_filters_combine(store, make_record):
    wanted = []
    for i in range(40):
        state = State.RUNNING if i % 2 else State.QUEUED
        tags = {"project": "a" if i % 4 < 2 else "b"}
        record = make_record(state=state, tags=tags)
        store.create_run(record)
        if state is State.RUNNING and tags["project"] == "a":
            wanted.append(record.run_id)

    pages = _all_pages(store, states=frozenset({State.RUNNING}), tag=("project", "a"))

    assert [i for p in pages for i in p] == wanted[::-1]
    assert [len(p) for p in pages] == [10]


def test_empty_token_means_first_page(store, make_record):
    ids = _create(store, make_record, 3)

    assert [r.run_id for r in store.list_runs(page_size=10, page_token="").runs] == ids[::-1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "!!!",
        "ünïcode",
        "\x00",
        ".",
        "a.b.c",
        _b64(b"not json at all"),
        _b64(b"\xff\xfe\xfd"),
        _b64(json.dumps([1, 2]).encode()),
        _b64(json.dumps({"v": 1, "seq": -5}).encode()),
        _b64(json.dumps({"v": 1, "seq": 10**30}).encode()),
        _b64(json.dumps({"v": 1, "seq": "5"}).encode()),
        _b64(json.dumps({"v": 1, "seq": 5.0}).encode()),
        _b64(json.dumps({"v": 1, "seq": True}).encode()),
        _b64(json.dumps({"v": 1, "seq": 5}).encode()),
        "x" * 5000,
    ],
)
def test_invalid_page_tokens_raise(store, make_record, token):
    _create(store, make_record, 3)

    with pytest.raises(InvalidPageTokenError):
        store.list_runs(page_size=10, page_token=token)


def test_page_token_is_a_value_error(store):
    with pytest.raises(ValueError, match="token"):
        store.list_runs(page_size=10, page_token="garbage")


@pytest.mark.parametrize("page_size", [0, -1])
def test_page_size_must_be_positive(store, page_size):
    with pytest.raises(ValueError, match="page_size"):
        store.list_runs(page_size=page_size)


# -- counts, active runs, leases ---------------------------------------------------------------


def test_count_by_state(store, make_record):
    assert store.count_by_state() == {}
    for state, n in [(State.QUEUED, 3), (State.RUNNING, 2), (State.COMPLETE, 1)]:
        _create(store, make_record, n, state=state)
    store.transition(
        store.list_runs(page_size=1, states=frozenset({State.RUNNING})).runs[0].run_id,
        State.EXECUTOR_ERROR,
        allowed_from=ENDING,
    )

    counts = {s: n for s, n in store.count_by_state().items() if n}

    assert counts == {
        State.QUEUED: 3,
        State.RUNNING: 1,
        State.COMPLETE: 1,
        State.EXECUTOR_ERROR: 1,
    }
    assert all(isinstance(s, State) for s in counts)


def test_list_active_oldest_first(store, make_record):
    expected = []
    for i, state in enumerate(State):
        record = make_record(f"r{i:02d}", state=state)
        store.create_run(record)
        if state in ACTIVE_STATES:
            expected.append(record)

    assert store.list_active() == expected


def test_expired_leases(store, make_record):
    for state in (State.QUEUED, State.INITIALIZING, State.RUNNING, State.CANCELING):
        store.create_run(make_record(f"expired-{state}", state=state))
        store.touch_lease(f"expired-{state}", -1)
    store.create_run(make_record("fresh", state=State.RUNNING))
    store.touch_lease("fresh", 3600)
    store.create_run(make_record("never-leased", state=State.RUNNING))
    store.create_run(make_record("finished", state=State.RUNNING))
    store.touch_lease("finished", -1)
    store.transition("finished", State.COMPLETE, allowed_from=ENDING)

    assert sorted(store.expired_leases()) == [
        "expired-CANCELING",
        "expired-INITIALIZING",
        "expired-RUNNING",
    ]


def test_lease_runs_out_and_can_be_renewed(store, make_record):
    store.create_run(make_record("r", state=State.RUNNING))
    store.touch_lease("r", 0.05)
    deadline = time.monotonic() + 30
    while "r" not in store.expired_leases():
        assert time.monotonic() < deadline, "lease never expired"
        time.sleep(0.01)

    store.touch_lease("r", 3600)

    assert store.expired_leases() == []


def test_transition_can_take_a_lease_in_the_same_step(store, make_record):
    store.create_run(make_record("short", state=State.QUEUED))
    store.create_run(make_record("long", state=State.QUEUED))
    store.create_run(make_record("refused", state=State.RUNNING))

    assert store.transition(
        "short", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}), lease_ttl_s=0.05
    )
    assert store.transition(
        "long", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}), lease_ttl_s=3600
    )
    assert not store.transition(
        "refused", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}), lease_ttl_s=0.05
    )

    # A lease that runs out is reported like one set by touch_lease; a transition that did
    # not happen took no lease (a run that never had one is never reported).
    deadline = time.monotonic() + 30
    while store.expired_leases() != ["short"]:
        assert time.monotonic() < deadline, store.expired_leases()
        time.sleep(0.01)


def test_a_terminal_transition_takes_no_lease(store, make_record):
    store.create_run(make_record("r", state=State.RUNNING))
    store.touch_lease("r", 3600)

    assert store.transition("r", State.COMPLETE, allowed_from=ENDING, lease_ttl_s=0.01)
    time.sleep(0.05)

    assert store.expired_leases() == []


def test_ping(store):
    store.ping()


# -- several stores on one database (several processes) --------------------------------------


def test_stores_on_one_database_see_each_others_writes(open_store, make_record):
    one, two = open_store(), open_store()
    one.create_run(make_record("r", state=State.RUNNING))

    assert two.get_state("r") is State.RUNNING
    assert two.transition("r", State.CANCELING, allowed_from=ENDING)
    assert one.get_state("r") is State.CANCELING
    assert not one.transition("r", State.CANCELING, allowed_from=frozenset({State.RUNNING}))
    with pytest.raises(RunExistsError):
        two.create_run(make_record("r"))


def test_page_tokens_work_across_stores_on_one_database(open_store, make_record):
    one, two = open_store(), open_store()
    ids = _create(one, make_record, 15)

    first = one.list_runs(page_size=10)
    second = two.list_runs(page_size=10, page_token=first.next_page_token)

    assert [r.run_id for r in second.runs] == ids[4::-1]


def _race_in_child(open_store, to, run_ids, barrier, results) -> None:
    store = open_store()
    won = []
    for run_id in run_ids:
        barrier.wait()
        won.append(store.transition(run_id, to, allowed_from=frozenset({State.CANCELING})))
    store.close()
    results.put((to.value, won))


def test_processes_racing_a_transition_have_one_winner(open_store, make_record):
    store = open_store()
    run_ids = _create(store, make_record, 20, state=State.CANCELING)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2, timeout=60)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_race_in_child, args=(open_store, to, run_ids, barrier, results))
        for to in (State.CANCELED, State.COMPLETE)
    ]
    for child in children:
        child.start()
    try:
        outcome = dict(results.get(timeout=120) for _ in children)
    finally:
        for child in children:
            child.join(timeout=60)
        results.close()
        results.join_thread()

    assert [child.exitcode for child in children] == [0, 0]
    for i, run_id in enumerate(run_ids):
        canceled, completed = outcome["CANCELED"][i], outcome["COMPLETE"][i]
        assert canceled != completed, run_id
        assert store.get_state(run_id) is (State.CANCELED if canceled else State.COMPLETE)


# -- owners ------------------------------------------------------------------------------------


def test_get_owner(store, make_record):
    store.create_run(make_record("mine", owner="alice"))
    store.create_run(make_record("nobody's"))

    assert store.get_owner("mine") == "alice"
    assert store.get_owner("nobody's") is None
    assert store.get_owner("missing") is None


def test_owner_filter_pages(store, make_record):
    alice = []
    for i in range(35):
        owner = "alice" if i % 3 == 0 else ("bob" if i % 3 == 1 else None)
        record = make_record(owner=owner)
        store.create_run(record)
        if owner == "alice":
            alice.append(record.run_id)

    pages = _all_pages(store, owner="alice")

    assert [len(p) for p in pages] == [10, 2]
    assert [i for p in pages for i in p] == alice[::-1]
    assert _all_pages(store, owner="carol") == [[]]
    assert len([i for p in _all_pages(store) for i in p]) == 35


def test_owner_state_and_tag_filters_combine(store, make_record):
    wanted, alice_running = [], []
    for i in range(48):
        state = State.RUNNING if i % 2 else State.QUEUED
        tags = {"project": "a" if i % 4 < 2 else "b"}
        owner = "alice" if i % 3 else "bob"
        record = make_record(state=state, tags=tags, owner=owner)
        store.create_run(record)
        if owner == "alice" and state is State.RUNNING:
            alice_running.append(record.run_id)
            if tags["project"] == "a":
                wanted.append(record.run_id)

    both = _all_pages(store, states=frozenset({State.RUNNING}), owner="alice")
    three = _all_pages(
        store, states=frozenset({State.RUNNING}), tag=("project", "a"), owner="alice"
    )

    assert [i for p in both for i in p] == alice_running[::-1]
    assert [len(p) for p in both] == [10, 6]
    assert [i for p in three for i in p] == wanted[::-1]
    assert _all_pages(store, tag=("project", "a"), owner="carol") == [[]]


# -- waiting for a state -----------------------------------------------------------------------


def _over(state: State | None) -> bool:
    return state is None or state.is_terminal


def _later(action, *args, **kwargs) -> threading.Thread:
    def run() -> None:
        time.sleep(0.2)
        action(*args, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_wait_answers_the_change_this_store_makes(store, make_record):
    store.create_run(make_record("w1", state=State.RUNNING))
    thread = _later(store.transition, "w1", State.COMPLETE, allowed_from=ENDING)
    # An hour's timeout: only the change can end the wait.
    assert store.wait_for_state("w1", _over, 3600) is State.COMPLETE
    thread.join()


def test_a_wait_sees_a_change_another_process_makes(open_store, make_record):
    store, other = open_store(), open_store()
    store.create_run(make_record("w2", state=State.RUNNING))
    thread = _later(other.transition, "w2", State.EXECUTOR_ERROR, allowed_from=ENDING)
    assert store.wait_for_state("w2", _over, 3600) is State.EXECUTOR_ERROR
    thread.join()


def test_a_wait_answers_the_state_at_its_timeout(store, make_record):
    store.create_run(make_record("w3", state=State.RUNNING))
    assert store.wait_for_state("w3", _over, 0.05) is State.RUNNING
    assert store.wait_for_state("w3", lambda s: s is not State.RUNNING, 0) is State.RUNNING


def test_a_wait_for_a_run_that_is_gone_or_goes_answers_none(store, make_record):
    assert store.wait_for_state("missing", _over, 3600) is None
    store.create_run(make_record("w4", state=State.COMPLETE))
    assert store.wait_for_state("w4", lambda s: s is None, 0) is State.COMPLETE
    thread = _later(store.delete_run, "w4")
    assert store.wait_for_state("w4", lambda s: s is None, 3600) is None
    thread.join()
