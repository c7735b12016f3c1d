"""What is particular to the Redis store; the shared behaviour is in tests/contract/.

Uses the session ``redis_server`` / ``redis_url`` fixtures of tests/redis_server.py (a plugin
of tests/conftest.py).
"""

from __future__ import annotations

import signal
import socket
import time
import uuid

import pytest
import redis

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store import redis_store, store_from_url
from toolchest_wes.store.base import (
    InvalidPageTokenError,
    RunRecord,
    RunUpdate,
    StoreUnavailableError,
)
from toolchest_wes.store.embedded_store import EmbeddedStateStore
from toolchest_wes.store.redis_store import REDIS_TIMEOUT_S, RedisStateStore, connect

ENDING = frozenset({State.RUNNING, State.CANCELING})
# A database of the session server that only the tests which look at every key use.
KEYSPACE_DB = 7


def _record(run_id: str, state: State = State.QUEUED, **tags: str) -> RunRecord:
    request = RunRequest(
        workflow_url="wf.cwl", workflow_type="CWL", workflow_type_version="v1.2", tags=tags
    )
    return RunRecord(run_id=run_id, state=state, request=request, created_at=0.0)


class RecordingRedis(redis.Redis):
    """A client that remembers the name of every command it sends outside pipelines."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    def execute_command(self, *args, **options):
        self.commands.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


@pytest.fixture
def prefix():
    return f"unit-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def store(redis_url, prefix):
    store = RedisStateStore(redis_url, prefix=prefix)
    yield store
    store.close()


@pytest.fixture
def recording(redis_url, prefix):
    client = RecordingRedis.from_url(redis_url, decode_responses=True)
    store = RedisStateStore(redis_url, prefix=prefix, client=client)
    yield store, client
    client.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- key layout ----------------------------------------------------------------------------------


def test_every_key_is_under_the_prefix(redis_url):
    url = redis_url.rsplit("/", 1)[0] + f"/{KEYSPACE_DB}"
    raw = redis.Redis.from_url(url, decode_responses=True)
    raw.flushdb()
    store = RedisStateStore(url, prefix="p")
    for i in range(15):
        store.create_run(_record(f"r{i}", State.RUNNING, project="a", user=f"u{i % 2}"))
    store.touch_lease("r0", 60)
    store.touch_lease("r1", 60)
    store.transition("r1", State.COMPLETE, allowed_from=ENDING)
    store.update_run("r2", RunUpdate(append_system_logs=["x"]))
    store.list_runs(page_size=5, page_token=store.list_runs(page_size=5).next_page_token)
    store.expired_leases()
    store.transition("r3", State.COMPLETE, allowed_from=ENDING)
    store.outputs_due(3600, limit=10)
    store.mark_outputs_removed("r3", "2024-01-01T00:00:00Z")
    store.delete_run("r3")

    keys = set(raw.scan_iter(match="*"))

    assert all(key.startswith("p:") for key in keys)
    assert {k for k in keys if not k.startswith("p:run:")} == {
        "p:seq",
        "p:runs",
        "p:counts",
        "p:leases",
        "p:lease:r0",
        "p:state:RUNNING",
        "p:state:COMPLETE",
        'p:tag:["project","a"]',
        'p:tag:["user","u0"]',
        'p:tag:["user","u1"]',
        "p:token-key",
        "p:outputs-kept",
        "p:outputs-kept-indexed",
    }
    assert raw.hget("p:run:r4", "seq") == "5"
    assert raw.zrange("p:runs", 0, 2, withscores=True) == [("r0", 1.0), ("r1", 2.0), ("r2", 3.0)]
    raw.flushdb()
    store.close()
    raw.close()


def test_tag_keys_are_unambiguous(store):
    store.create_run(_record("one", **{"a:b": "c"}))
    store.create_run(_record("two", a="b:c"))
    store.create_run(_record("three", **{"a\x00b": "c"}))

    assert [r.run_id for r in store.list_runs(page_size=5, tag=("a:b", "c")).runs] == ["one"]
    assert [r.run_id for r in store.list_runs(page_size=5, tag=("a", "b:c")).runs] == ["two"]
    assert [r.run_id for r in store.list_runs(page_size=5, tag=("a\x00b", "c")).runs] == ["three"]
    assert store.list_runs(page_size=5, tag=("a", "b\x00c")).runs == []


def test_prefixes_keep_stores_apart(redis_url, store):
    other = RedisStateStore(redis_url, prefix=f"{store.prefix}-other")
    store.create_run(_record("r"))

    assert other.get_state("r") is None
    assert other.count_by_state() == {}
    assert other.list_runs(page_size=5).runs == []
    other.close()


# -- counters, round trips -----------------------------------------------------------------------


def test_counts_are_kept_in_the_counts_hash(store, raw):
    for i in range(4):
        store.create_run(_record(f"r{i}", State.RUNNING))
    store.transition("r0", State.COMPLETE, allowed_from=ENDING)
    store.transition("r1", State.CANCELING, allowed_from=ENDING)
    store.transition("r1", State.CANCELED, allowed_from=ENDING)
    store.transition("r2", State.RUNNING, allowed_from=frozenset({State.QUEUED}))  # refused

    counts = raw.hgetall(f"{store.prefix}:counts")

    assert counts == {"RUNNING": "2", "COMPLETE": "1", "CANCELED": "1"}  # no zero entries
    assert store.count_by_state() == {State.RUNNING: 2, State.COMPLETE: 1, State.CANCELED: 1}
    for state, n in counts.items():
        assert raw.zcard(f"{store.prefix}:state:{state}") == int(n)


def test_count_by_state_reads_only_the_counts_hash(recording):
    store, client = recording
    for i in range(20):
        store.create_run(_record(f"r{i}", State.RUNNING if i % 2 else State.QUEUED))
    client.commands.clear()

    assert store.count_by_state() == {State.RUNNING: 10, State.QUEUED: 10}
    assert client.commands == ["HGETALL"]


def test_writes_are_one_round_trip(recording):
    store, client = recording
    store.create_run(_record("warm-up", State.RUNNING))
    store.transition("warm-up", State.COMPLETE, allowed_from=ENDING)
    store.update_run("warm-up", RunUpdate(exit_code=0))
    store.touch_lease("warm-up", 1)
    store.list_runs(page_size=5)
    client.commands.clear()

    store.create_run(_record("r", State.RUNNING, k="v"))
    store.transition(
        "r",
        State.COMPLETE,
        allowed_from=ENDING,
        update=RunUpdate(exit_code=0, append_system_logs=["a", "b"]),
    )
    store.transition("r", State.CANCELED, allowed_from=ENDING)
    store.update_run("r", RunUpdate(append_system_logs=["c"]))
    store.touch_lease("r", 1)
    store.get_state("r")
    store.list_runs(page_size=5)
    store.list_runs(page_size=5, states=frozenset({State.COMPLETE}))

    assert client.commands == ["EVALSHA"] * 5 + ["HMGET"] + ["EVALSHA"] * 2
    assert store.get_run("r").system_logs == ["a", "b", "c"]


def test_scripts_are_reloaded_after_a_script_flush(store, raw):
    store.create_run(_record("r", State.RUNNING))
    raw.script_flush()

    assert store.transition("r", State.COMPLETE, allowed_from=ENDING)
    assert store.get_state("r") is State.COMPLETE


def test_system_logs_survive_lua_json(store):
    lines = ["😀 emoji", "a/b\\c", "tab\tnl\nnul\x00end", "\u2028", '{"x": [1]}', "", "ü" * 3]
    store.create_run(_record("r"))

    store.update_run("r", RunUpdate(append_system_logs=lines[:3]))
    store.transition(
        "r",
        State.CANCELED,
        allowed_from=frozenset({State.QUEUED}),
        update=RunUpdate(append_system_logs=lines[3:]),
    )

    assert store.get_run("r").system_logs == lines


def test_state_and_tag_listing_walks_the_smaller_set_in_slices(store, monkeypatch):
    monkeypatch.setattr(redis_store, "_SCAN_SLICE", 3)
    wanted = []
    for i in range(60):
        state = State.RUNNING if i % 3 == 0 else State.COMPLETE
        tags = {"project": "a"} if i % 4 == 0 else {}
        store.create_run(_record(f"r{i:02d}", state, **tags))
        if state is State.RUNNING and tags:
            wanted.append(f"r{i:02d}")

    pages, token = [], None
    while True:
        page = store.list_runs(
            page_size=2, page_token=token, states=frozenset({State.RUNNING}), tag=("project", "a")
        )
        pages.append([r.run_id for r in page.runs])
        token = page.next_page_token
        if token is None:
            break

    assert [i for p in pages for i in p] == wanted[::-1]
    assert [len(p) for p in pages] == [2, 2, 1]


@pytest.mark.parametrize("states_smaller", [True, False])
def test_several_states_with_a_tag_walk_in_slices(store, monkeypatch, states_smaller):
    monkeypatch.setattr(redis_store, "_SCAN_SLICE", 3)
    picked = frozenset({State.RUNNING, State.QUEUED})
    wanted = []
    for i in range(60):
        state = [State.RUNNING, State.QUEUED, State.COMPLETE][i % 3] if i % 2 else State.COMPLETE
        # The tag's set is either larger or smaller than the union of the two states'.
        tagged = i % 4 != 0 if states_smaller else i % 7 == 0
        store.create_run(_record(f"r{i:02d}", state, **({"project": "a"} if tagged else {})))
        if state in picked and tagged:
            wanted.append(f"r{i:02d}")

    pages, token = [], None
    while True:
        page = store.list_runs(page_size=2, page_token=token, states=picked, tag=("project", "a"))
        pages.append([r.run_id for r in page.runs])
        token = page.next_page_token
        if token is None:
            break

    assert [i for p in pages for i in p] == wanted[::-1]
    assert all(len(p) == 2 for p in pages[:-1])


def test_huge_page_size(store):
    store.create_run(_record("r"))

    assert [r.run_id for r in store.list_runs(page_size=10**18).runs] == ["r"]


def test_token_of_another_prefix_is_rejected(redis_url, store):
    other = RedisStateStore(redis_url, prefix=f"{store.prefix}-other")
    for i in range(6):
        store.create_run(_record(f"r{i}"))
        other.create_run(_record(f"r{i}"))
    token = other.list_runs(page_size=3).next_page_token

    with pytest.raises(InvalidPageTokenError):
        store.list_runs(page_size=3, page_token=token)
    other.close()


# -- leases ------------------------------------------------------------------------------------


def test_lease_key_and_index(store, raw):
    p = store.prefix
    store.create_run(_record("r", State.RUNNING))

    store.touch_lease("r", 30)
    assert 29_000 < raw.pttl(f"{p}:lease:r") <= 30_000
    assert raw.zscore(f"{p}:leases", "r") > time.time() * 1000

    store.touch_lease("r", -1)
    assert not raw.exists(f"{p}:lease:r")
    assert store.expired_leases() == ["r"]

    store.transition("r", State.COMPLETE, allowed_from=ENDING)
    assert raw.zscore(f"{p}:leases", "r") is None
    store.touch_lease("r", -1)  # a finished run gets no lease back
    assert raw.zscore(f"{p}:leases", "r") is None
    assert not raw.exists(f"{p}:lease:r")


def test_unknown_runs_leave_no_keys(store, raw):
    store.touch_lease("nope", 60)
    store.update_run("nope", RunUpdate(exit_code=1, append_system_logs=["x"]))
    store.transition("nope", State.COMPLETE, allowed_from=frozenset(State))

    assert list(raw.scan_iter(match=f"{store.prefix}:*")) == []


# -- availability ------------------------------------------------------------------------------


def test_constructor_does_no_io():
    store = RedisStateStore(f"redis://127.0.0.1:{_closed_port()}/0")

    assert "RedisStateStore('redis://127.0.0.1:" in repr(store)
    store.close()


CALLS = {
    "ping": lambda s: s.ping(),
    "create_run": lambda s: s.create_run(_record("r")),
    "get_run": lambda s: s.get_run("r"),
    "get_state": lambda s: s.get_state("r"),
    "list_runs": lambda s: s.list_runs(page_size=5),
    "list_runs token": lambda s: s.list_runs(page_size=5, page_token="a.b"),
    "list_runs both": lambda s: s.list_runs(
        page_size=5, states=frozenset({State.RUNNING}), tag=("k", "v")
    ),
    "transition": lambda s: s.transition("r", State.RUNNING, allowed_from=frozenset(State)),
    "update_run": lambda s: s.update_run("r", RunUpdate(exit_code=1)),
    "count_by_state": lambda s: s.count_by_state(),
    "list_active": lambda s: s.list_active(),
    "touch_lease": lambda s: s.touch_lease("r", 1),
    "expired_leases": lambda s: s.expired_leases(),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_closed_port_is_unavailable_fast(call):
    store = RedisStateStore(f"redis://:secret@127.0.0.1:{_closed_port()}/0", socket_timeout_s=1.0)
    start = time.monotonic()

    with pytest.raises(StoreUnavailableError) as excinfo:
        call(store)

    assert time.monotonic() - start < 5
    assert "secret" not in str(excinfo.value)
    store.close()


def test_silent_server_times_out():
    # Listening but never answering: the connection opens, then every read times out.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        store = RedisStateStore(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.5)
        start = time.monotonic()

        with pytest.raises(StoreUnavailableError):
            store.get_state("r")

        assert time.monotonic() - start < 5
        store.close()


def test_server_restart(redis_server, store):
    store.create_run(_record("before", State.RUNNING))
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailableError):
            store.get_state("before")
        with pytest.raises(StoreUnavailableError):
            store.ping()
    finally:
        redis_server.start()

    # Nothing persisted (--save ""), but the store reconnects and reloads its scripts.
    store.ping()
    assert store.get_state("before") is None
    store.create_run(_record("after", State.RUNNING))
    assert store.transition("after", State.COMPLETE, allowed_from=ENDING)


def test_close_leaves_an_injected_client_open(redis_url, prefix):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStateStore(redis_url, prefix=prefix, client=client)
    store.ping()

    store.close()

    assert client.ping()
    client.close()


def test_close_then_reuse(store):
    store.create_run(_record("r"))
    store.close()

    assert store.get_state("r") is State.QUEUED


def test_client_must_decode_responses(redis_url):
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStateStore(redis_url, client=client)
    client.close()


def test_empty_prefix_is_refused(redis_url):
    with pytest.raises(ValueError, match="prefix"):
        RedisStateStore(redis_url, prefix="")


# -- store_from_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("REDIS://:secret@example.org:6380/2", "redis://example.org:6380/2"),
        ("redis://user:secret@example.org", "redis://example.org"),
        ("rediss://:secret@example.org:6380/1?ssl_cert_reqs=none", "rediss://example.org:6380/1"),
    ],
)
def test_store_from_url_redis(url, where):
    store = store_from_url(url)

    assert isinstance(store, RedisStateStore)
    assert store.prefix == "toolchest-wes"
    assert repr(store) == f"RedisStateStore({where!r}, prefix='toolchest-wes')"
    store.close()


def test_store_from_url_prefix(redis_url, prefix):
    store = store_from_url(redis_url, prefix=prefix)
    store.create_run(_record("r"))

    assert store.prefix == prefix
    assert redis.Redis.from_url(redis_url).exists(f"{prefix}:run:r")
    store.close()


def test_store_from_url_sqlite_ignores_the_prefix(tmp_path):
    store = store_from_url(f"sqlite:///{tmp_path / 's.db'}", prefix="ignored")

    assert isinstance(store, EmbeddedStateStore)
    store.close()


@pytest.mark.parametrize(
    ("url", "prefix", "match"),
    [
        ("redis://:secret@host:notaport/0", None, "malformed Redis"),
        ("redis://:secret@host/0?db=x", None, "malformed Redis"),
        ("redis://:secret@host/0?prefix=mine", None, "prefix="),
        ("redis://:secret@host/0", "", "prefix"),
    ],
)
def test_store_from_url_rejects(url, prefix, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        store_from_url(url, prefix=prefix)

    assert "secret" not in str(excinfo.value)


def test_store_from_url_lists_the_redis_forms():
    with pytest.raises(ValueError, match="redis://") as excinfo:
        store_from_url("postgres://user:secret@host/db")

    assert "secret" not in str(excinfo.value)


# -- retention and deletion ----------------------------------------------------------------------


def test_state_caches_forget_a_deleted_run(redis_url, prefix):
    writer = RedisStateStore(redis_url, prefix=prefix)
    reader = RedisStateStore(redis_url, prefix=prefix, cache_states=True)
    try:
        deadline = time.monotonic() + 10
        while not reader._cache.live:
            assert time.monotonic() < deadline, "state feed never came up"
            time.sleep(0.01)
        writer.create_run(_record("r", State.RUNNING))
        writer.transition("r", State.COMPLETE, allowed_from=ENDING)
        assert reader.get_state("r") is State.COMPLETE

        assert writer.delete_run("r") is State.COMPLETE

        # The feed delivers the deletion asynchronously; until then the cache may still
        # answer, and after it the state must come from Redis, where the run is gone.
        while reader.get_state("r") is not None:
            assert time.monotonic() < deadline, "a deleted run kept its cached state"
            time.sleep(0.01)
    finally:
        reader.close()
        writer.close()


def test_runs_that_ended_before_the_index_existed_are_indexed_once(store, raw, redis_url, prefix):
    for run_id in ("a", "b", "c"):
        store.create_run(_record(run_id, State.RUNNING))
        store.transition(
            run_id,
            State.COMPLETE,
            allowed_from=ENDING,
            update=RunUpdate(end_time="2020-01-01T00:00:00Z"),
        )
    store.mark_outputs_removed("c", "2021-01-01T00:00:00Z")
    # As a database written before the index existed.
    raw.delete(f"{prefix}:outputs-kept")
    fresh = RedisStateStore(redis_url, prefix=prefix)

    try:
        assert sorted(fresh.outputs_due(86400, limit=10)) == ["a", "b"]
        assert raw.get(f"{prefix}:outputs-kept-indexed") == "1"
    finally:
        fresh.close()


def test_clients_time_out_soon_and_never_retry():
    # A frozen Redis must cost a request at most REDIS_TIMEOUT_S, not redis-py's 5 s per try.
    kwargs = connect("redis://127.0.0.1:6379/0").connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == REDIS_TIMEOUT_S
    assert REDIS_TIMEOUT_S < 2.5
    assert kwargs["retry"].get_retries() == 0
    # The URL's own options win, as in redis-py.
    tuned = connect("redis://127.0.0.1:6379/0?socket_timeout=7").connection_pool.connection_kwargs
    assert tuned["socket_timeout"] == 7


def test_frozen_server_is_unavailable_within_the_timeout(redis_server):
    store = RedisStateStore(redis_server.url, prefix=f"frozen-{uuid.uuid4().hex[:8]}")
    store.ping()
    redis_server.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(StoreUnavailableError):
            store.get_state("r")
    finally:
        redis_server.send_signal(signal.SIGCONT)
    store.ping()
    store.close()


def test_a_client_serves_more_threads_at_once_than_redis_pys_default_pool(redis_url: str) -> None:
    # A worker with a thousand runs uses as many connections at once; redis-py 8 would fail
    # the 101st with "Too many connections".
    client = connect(redis_url)
    pool = client.connection_pool
    held = [pool.get_connection() for _ in range(150)]
    try:
        assert len({id(c) for c in held}) == 150
    finally:
        for conn in held:
            pool.release(conn)
        client.close()
