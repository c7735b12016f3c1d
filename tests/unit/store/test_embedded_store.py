"""What is particular to the SQLite store; the shared behaviour is in tests/contract/."""

from __future__ import annotations

import base64
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store import store_from_url
from toolchest_wes.store._state_waits import StateWaits
from toolchest_wes.store.base import (
    InvalidPageTokenError,
    RunRecord,
    StoreError,
    StoreUnavailableError,
)
from toolchest_wes.store.embedded_store import (
    _OUTPUTS_DUE_SQL,
    MEMORY,
    SCHEMA_VERSION,
    EmbeddedStateStore,
    _list_query,
)


def _record(run_id: str, state: State = State.QUEUED, **tags: str) -> RunRecord:
    request = RunRequest(
        workflow_url="wf.cwl", workflow_type="CWL", workflow_type_version="v1.2", tags=tags
    )
    return RunRecord(run_id=run_id, state=state, request=request, created_at=0.0)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "state.db"


@pytest.fixture
def store(db_path):
    store = EmbeddedStateStore(db_path)
    yield store
    store.close()


@pytest.fixture
def memory_store():
    store = EmbeddedStateStore(MEMORY)
    yield store
    store.close()


# -- file and connection settings --------------------------------------------------------------


def test_constructor_touches_nothing(db_path):
    store = EmbeddedStateStore(db_path)

    assert not db_path.exists()
    store.close()


def test_first_use_creates_the_file_in_wal_mode(store, db_path):
    store.ping()

    with store._connection() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (10_000,)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    raw.close()


def test_reopening_keeps_the_data(db_path):
    first = EmbeddedStateStore(db_path)
    first.create_run(_record("r", tag="x"))
    first.close()

    second = EmbeddedStateStore(db_path)
    try:
        assert second.get_state("r") is State.QUEUED
        assert [r.run_id for r in second.list_runs(page_size=5, tag=("tag", "x")).runs] == ["r"]
    finally:
        second.close()


def test_newer_schema_is_refused(db_path):
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    store = EmbeddedStateStore(db_path)

    with pytest.raises(StoreError, match="schema version"):
        store.get_state("r")
    store.close()


def test_unopenable_file_is_unavailable(tmp_path):
    store = EmbeddedStateStore(tmp_path / "missing-dir" / "state.db")

    with pytest.raises(StoreUnavailableError):
        store.ping()
    with pytest.raises(StoreUnavailableError):
        store.get_state("r")
    store.close()


def test_locked_database_is_unavailable(db_path):
    store = EmbeddedStateStore(db_path, busy_timeout_s=0.01)
    store.create_run(_record("r", State.RUNNING))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError, match="locked"):
            store.transition("r", State.COMPLETE, allowed_from=frozenset({State.RUNNING}))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.transition("r", State.COMPLETE, allowed_from=frozenset({State.RUNNING}))
    store.close()


def test_close_closes_every_threads_connection_and_the_store_reopens(store):
    store.create_run(_record("r"))
    thread = threading.Thread(target=store.get_state, args=("r",))
    thread.start()
    thread.join()
    conns = list(store._conns.values())
    assert len(conns) == 2

    store.close()

    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    assert store.get_state("r") is State.QUEUED


def test_connections_of_finished_threads_are_closed(store):
    for _ in range(5):
        thread = threading.Thread(target=store.ping)
        thread.start()
        thread.join()

    store.ping()

    assert list(store._conns) == [threading.current_thread()]


# -- :memory: ----------------------------------------------------------------------------------


def test_memory_store_is_shared_between_threads(memory_store):
    memory_store.create_run(_record("r", State.RUNNING))
    results = []
    threads = [
        threading.Thread(
            target=lambda to: results.append(
                memory_store.transition("r", to, allowed_from=frozenset({State.RUNNING}))
            ),
            args=(to,),
        )
        for to in (State.COMPLETE, State.CANCELING) * 4
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(True) == 1
    assert memory_store.get_state("r") in {State.COMPLETE, State.CANCELING}


def test_memory_stores_are_separate(memory_store):
    other = EmbeddedStateStore(MEMORY)
    memory_store.create_run(_record("r"))

    assert other.get_run("r") is None
    other.close()


def test_memory_store_starts_empty_after_close(memory_store):
    memory_store.create_run(_record("r"))
    memory_store.close()

    assert memory_store.get_run("r") is None
    memory_store.create_run(_record("r"))


# -- page tokens -------------------------------------------------------------------------------


def _fill(store: EmbeddedStateStore, n: int) -> None:
    for i in range(n):
        store.create_run(_record(f"r{i:02d}"))


def test_forged_position_is_rejected(store):
    _fill(store, 15)
    token = store.list_runs(page_size=5).next_page_token
    payload, mac = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**data, "seq": 3}).encode()).rstrip(b"=")

    with pytest.raises(InvalidPageTokenError):
        store.list_runs(page_size=5, page_token=f"{forged.decode()}.{mac}")


def test_edited_token_is_rejected(store):
    _fill(store, 15)
    token = store.list_runs(page_size=5).next_page_token
    # The last character of the MAC has bits that base64 decoding would drop.
    positions = {0, len(token) // 2, token.index("."), len(token) - 1}
    edits = {token[:i] + c + token[i + 1 :] for i in positions for c in "AB."} - {token}

    for edited in edits:
        with pytest.raises(InvalidPageTokenError):
            store.list_runs(page_size=5, page_token=edited)
    for edited in (token + "A", token[:-1], " " + token, token + "="):
        with pytest.raises(InvalidPageTokenError):
            store.list_runs(page_size=5, page_token=edited)


def test_token_of_another_database_is_rejected(store, tmp_path):
    other = EmbeddedStateStore(tmp_path / "other.db")
    _fill(store, 15)
    _fill(other, 15)
    token = other.list_runs(page_size=5).next_page_token
    other.close()

    with pytest.raises(InvalidPageTokenError):
        store.list_runs(page_size=5, page_token=token)


def _plan(store, **filters) -> str:
    store.ping()
    sql, params = _list_query(100, 11, **{"states": None, "tag": None, "owner": None, **filters})
    with store._connection() as conn:
        return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"states": ["RUNNING"]},
        {"tag": ("k", "v")},
        {"states": ["QUEUED", "RUNNING"], "tag": ("k", "v")},
    ],
)
def test_listing_is_an_index_walk_without_a_sort(store, filters):
    plan = _plan(store, **filters)

    assert "TEMP B-TREE" not in plan
    assert "SCAN" not in plan.replace("SCAN r USING INTEGER PRIMARY KEY", "")


@pytest.mark.parametrize("owner", [None, "alice"])
def test_listing_several_states_walks_an_index_per_state(store, owner):
    plan = _plan(store, states=["COMPLETE", "EXECUTOR_ERROR", "RUNNING"], owner=owner)

    # Each state's walk is a bounded index search (the sorts are of its `limit` rows only),
    # merged without sorting the union.
    assert plan.count("SEARCH r USING INDEX") == 3
    assert "MERGE (UNION ALL)" in plan
    assert "SCAN r" not in plan


# -- processes ---------------------------------------------------------------------------------


def _transition_inherited(store, results):
    results.put(store.transition("r", State.COMPLETE, allowed_from=frozenset({State.RUNNING})))


def test_forked_child_can_use_the_parents_store(store):
    store.create_run(_record("r", State.RUNNING))
    assert store.get_state("r") is State.RUNNING  # the parent now holds an open connection
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_transition_inherited, args=(store, results))
    child.start()
    try:
        won = results.get(timeout=60)
    finally:
        child.join(timeout=60)
        results.close()
        results.join_thread()

    assert (won, child.exitcode) == (True, 0)
    assert store.get_state("r") is State.COMPLETE


def _initialise(path, barrier):
    barrier.wait()
    store = EmbeddedStateStore(path)
    store.create_run(_record(f"r-{multiprocessing.current_process().name}"))
    store.close()


def test_processes_can_create_the_schema_at_the_same_time(db_path):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4, timeout=60)
    children = [ctx.Process(target=_initialise, args=(db_path, barrier)) for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)

    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    store = EmbeddedStateStore(db_path)
    assert sum(store.count_by_state().values()) == 4
    store.close()


# -- store_from_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///state.db", "state.db"),
        ("sqlite:///var/runs/state.db", "var/runs/state.db"),
        ("sqlite:////var/runs/state.db", "/var/runs/state.db"),
        ("SQLite:////abs.db", "/abs.db"),
        ("sqlite://:memory:", MEMORY),
    ],
)
def test_store_from_url(url, path):
    store = store_from_url(url)

    assert isinstance(store, EmbeddedStateStore)
    assert store.path == path
    store.close()


def test_store_from_url_memory_works():
    store = store_from_url("sqlite://:memory:")
    store.create_run(_record("r"))

    assert store.get_state("r") is State.QUEUED
    store.close()


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///", "sqlite://host/state.db", "sqlite:///s.db?mode=ro", "sqlite:"],
)
def test_store_from_url_rejects_malformed_sqlite_urls(url):
    with pytest.raises(ValueError, match="sqlite"):
        store_from_url(url)


@pytest.mark.parametrize("url", ["postgres://user:secret@host/x", "state.db", ""])
def test_store_from_url_rejects_other_schemes(url):
    with pytest.raises(ValueError, match="supported: sqlite") as excinfo:
        store_from_url(url)

    assert "secret" not in str(excinfo.value)


@pytest.mark.parametrize(
    "data",
    [
        {"v": 1, "seq": 0},
        {"v": 1, "seq": -1},
        {"v": 1, "seq": 2**63},
        {"v": 1, "seq": "5"},
        {"v": 1, "seq": True},
        {"v": 1, "seq": 5.0},
        {"v": 2, "seq": 5},
        {"v": True, "seq": 5},
        {"v": 1, "seq": 5, "state": "RUNNING"},
        {"seq": 5},
        [1, 5],
    ],
)
def test_signed_but_malformed_token_is_rejected(store, data):
    _fill(store, 3)
    payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    with pytest.raises(InvalidPageTokenError):
        store.list_runs(page_size=5, page_token=f"{payload}.{store._mac(payload)}")


# -- owners ------------------------------------------------------------------------------------


def test_owner_listing_is_an_index_walk_without_a_sort(store):
    plan = _plan(store, owner="alice")

    assert "ix_runs_owner_seq" in plan
    assert "TEMP B-TREE" not in plan


# -- retention -----------------------------------------------------------------------------------

_V1_RUNS = """CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT UNIQUE NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, request TEXT NOT NULL, engine_args TEXT NOT NULL DEFAULT '[]',
    start_time TEXT, end_time TEXT, exit_code INTEGER, cmd TEXT,
    system_logs TEXT NOT NULL DEFAULT '[]', outputs TEXT, output_files TEXT, owner TEXT,
    lease_expires REAL)"""


def test_a_version_1_database_is_upgraded(db_path):
    raw = sqlite3.connect(db_path)
    raw.execute(_V1_RUNS)
    raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    raw.execute("INSERT INTO meta VALUES ('page_token_key', '00ff')")
    request = _record("x").request.model_dump_json()
    raw.execute(
        "INSERT INTO runs (run_id, state, created_at, request, end_time) VALUES (?, ?, ?, ?, ?)",
        ("old", "COMPLETE", 0.0, request, "2020-01-01T00:00:00Z"),
    )
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()

    store = EmbeddedStateStore(db_path)
    try:
        assert store.get_owner("old") is None
        with store._connection() as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "ix_runs_owner_seq" in names
        # The counts table starts from the runs already stored, then follows every write.
        assert store.count_by_state() == {State.COMPLETE: 1}
        store.create_run(_record("new"))
        assert store.count_by_state() == {State.COMPLETE: 1, State.QUEUED: 1}
        assert store.get_run("old").outputs_removed_at is None
        assert store.outputs_due(86400, limit=10) == ["old"]
        assert store.mark_outputs_removed("old", "2024-01-01T00:00:00Z")
        assert store.get_run("old").outputs_removed_at == "2024-01-01T00:00:00Z"
        assert store.outputs_due(86400, limit=10) == []
    finally:
        store.close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_due_runs_are_a_walk_of_the_partial_index(store):
    store.ping()
    with store._connection() as conn:
        plan = conn.execute(
            f"EXPLAIN QUERY PLAN {_OUTPUTS_DUE_SQL}", ["2030-01-01T00:00:00Z", 10]
        ).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "ix_runs_outputs_kept" in details
    assert "TEMP B-TREE" not in details


# Threads change runs while another thread closes the store again and again, in a process of
# its own: a connection closed under a running statement crashes the interpreter.
_CLOSE_RACE = """
import sys, threading, time
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore

store = EmbeddedStateStore(sys.argv[1])
request = RunRequest(workflow_url="wf.cwl", workflow_type="CWL", workflow_type_version="v1.2")
for i in range(4):
    store.create_run(RunRecord(run_id=f"r{i}", state=State.QUEUED, request=request, created_at=0))
stop = time.monotonic() + 2
errors = []

def flip(run_id):
    states = [State.QUEUED, State.INITIALIZING]
    while time.monotonic() < stop:
        try:
            store.transition(run_id, states[1], allowed_from=frozenset({states[0]}))
            store.get_state(run_id)
        except Exception as error:
            errors.append(repr(error))
        states.reverse()

threads = [threading.Thread(target=flip, args=(f"r{i}",)) for i in range(4)]
for thread in threads:
    thread.start()
closes = 0
while time.monotonic() < stop:
    store.close()
    closes += 1
    time.sleep(0.001)
for thread in threads:
    thread.join()
print(closes, errors)
"""


def test_close_while_other_threads_run_statements_waits_for_each_statement(db_path):
    done = subprocess.run(
        [sys.executable, "-c", _CLOSE_RACE, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    closes, errors = done.stdout.split(" ", 1)
    assert int(closes) > 100
    assert errors.strip() == "[]"


def test_a_wait_is_woken_by_a_change_that_another_connection_commits(db_path):
    """As when another API process of the server ends the run: its commit moves SQLite's
    data_version, which the waiting store watches while a thread waits."""
    waiting = EmbeddedStateStore(db_path)
    other = EmbeddedStateStore(db_path)
    # Only the watcher can end the wait before the timeout: the state is read again only
    # once an hour.
    waiting._waits = StateWaits(recheck_s=3600, version=waiting._data_version)
    try:
        other.create_run(_record("r", State.RUNNING))

        def end() -> None:
            while not waiting._waits._waiting:
                time.sleep(0.001)
            time.sleep(0.05)
            other.transition("r", State.COMPLETE, allowed_from=frozenset({State.RUNNING}))

        ender = threading.Thread(target=end)
        ender.start()
        state = waiting.wait_for_state("r", lambda s: s is State.COMPLETE, timeout_s=60)
        ender.join()
        assert state is State.COMPLETE
    finally:
        waiting.close()
        other.close()


def test_closing_the_store_ends_its_watcher(db_path):
    store = EmbeddedStateStore(db_path)
    store.create_run(_record("r", State.RUNNING))
    assert store.wait_for_state("r", lambda s: s is State.COMPLETE, timeout_s=0.05) is (
        State.RUNNING
    )
    watcher = store._waits._watcher
    assert watcher is not None and watcher.is_alive()  # it lingers for the next wait
    store.close()
    watcher.join(5)
    assert not watcher.is_alive()
    assert not store._conns  # and it opened no connection after the close
