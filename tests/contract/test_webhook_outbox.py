"""The webhook outbox contract, run against the SQLite and the Redis outbox with their stores.

Events come from the store's own writes, as in a server: each transition of a run with hooks
records its event in the same transaction.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord, StateStore
from toolchest_wes.store.embedded_store import EmbeddedStateStore
from toolchest_wes.store.outbox import Delivery, Outbox, RunHooks
from toolchest_wes.store.sqlite_outbox import SqliteOutbox

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x")
ORDER = (State.QUEUED, State.INITIALIZING, State.RUNNING, State.COMPLETE)


@dataclass
class Pair:
    """A store and the outbox in the same database, and how to open another outbox there."""

    store: StateStore
    outbox: Outbox
    reopen: object

    def create(self, run_id: str = "r1", *, record_created: bool = True) -> None:
        self.store.create_run(RunRecord(run_id, State.QUEUED, REQUEST, created_at=100.0))
        if record_created and not self.outbox.records_creations:
            self.outbox.record_created(run_id, State.QUEUED, 100.0)

    def move(self, run_id: str, *states: State) -> None:
        for before, after in itertools.pairwise(states):
            assert self.store.transition(run_id, after, allowed_from=frozenset({before}))


@pytest.fixture(params=["sqlite", "redis"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    if request.param == "sqlite":
        path = tmp_path / "runs.sqlite"
        outbox: Outbox = SqliteOutbox(path)
        store: StateStore = EmbeddedStateStore(path)
        pair = Pair(store, outbox, lambda: SqliteOutbox(path))
    else:
        from toolchest_wes.store.redis_outbox import RedisOutbox
        from toolchest_wes.store.redis_store import RedisStateStore

        url = request.getfixturevalue("redis_url")
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        outbox = RedisOutbox(url, prefix=prefix)
        store = RedisStateStore(url, prefix=prefix)
        pair = Pair(store, outbox, lambda: RedisOutbox(url, prefix=prefix))
    yield pair
    outbox.close()
    store.close()


def _one(url: str = "http://example.org/hook"):
    def build(hooks: RunHooks, to: State, at: float) -> list[Delivery]:
        previous = hooks.last_state.value if hooks.last_state else "-"
        body = f"{hooks.sequence}:{previous}->{to.value}"
        return [
            Delivery(f"{hooks.run_id}.{hooks.sequence}", f"evt-{hooks.sequence}", url, "", body, at)
        ]

    return build


def _bodies(outbox: Outbox) -> list[str]:
    """Every queued body, as the delivery loop would send them all successfully."""
    bodies: list[str] = []
    while due := outbox.claim_due(now=1e12, limit=100, hold_s=60):
        for delivery in due:
            bodies.append(delivery.body)
            outbox.done(delivery.delivery_id)
    return bodies


def test_a_run_without_hooks_queues_nothing(pair: Pair) -> None:
    pair.create()
    pair.move("r1", *ORDER)
    pair.outbox.drain(_one())
    assert pair.outbox.pending() == 0


def test_each_transition_records_its_event_in_the_stores_own_write(pair: Pair) -> None:
    pair.outbox.register(RunHooks("r1", "alice", "http://wes", "http://example.org/hook", "all"))
    pair.create()
    pair.move("r1", *ORDER)
    assert not pair.store.transition("r1", State.RUNNING, allowed_from=frozenset({State.QUEUED}))
    assert pair.outbox.pending() == 0  # recorded, not yet turned into deliveries
    assert pair.outbox.drain(_one()) == 4
    assert pair.outbox.drain(_one()) == 0
    assert pair.outbox.pending() == 4
    assert _bodies(pair.outbox) == [
        "0:-->QUEUED",
        "1:QUEUED->INITIALIZING",
        "2:INITIALIZING->RUNNING",
        "3:RUNNING->COMPLETE",
    ]
    assert pair.outbox.pending() == 0


def test_a_creation_whose_event_was_not_recorded_comes_first_at_the_first_transition(
    pair: Pair,
) -> None:
    pair.outbox.register(RunHooks("r1", None, "http://wes"))
    # As if the process that created the run died before recording its creation.
    pair.create(record_created=False)
    pair.move("r1", State.QUEUED, State.INITIALIZING)
    assert not pair.outbox.record_created("r1", State.QUEUED, 100.0)
    pair.outbox.drain(_one())
    assert _bodies(pair.outbox) == ["0:-->QUEUED", "1:QUEUED->INITIALIZING"]


def test_a_terminal_event_is_the_runs_last(pair: Pair) -> None:
    pair.outbox.register(RunHooks("r1", None, "http://wes"))
    pair.create()
    pair.move("r1", State.QUEUED, State.CANCELED)
    pair.outbox.drain(_one())
    assert not pair.outbox.record_created("r1", State.QUEUED, 100.0)
    pair.outbox.drain(_one())
    assert _bodies(pair.outbox) == ["0:-->QUEUED", "1:QUEUED->CANCELED"]


def test_a_runs_deliveries_to_one_url_go_out_one_at_a_time_in_order(pair: Pair) -> None:
    for run_id in ("r1", "r2"):
        pair.outbox.register(RunHooks(run_id, None, "http://wes", None, "all"))
        pair.create(run_id)
        pair.move(run_id, *ORDER)
    pair.outbox.drain(_one())
    first = pair.outbox.claim_due(now=1e12, limit=10, hold_s=60)
    assert sorted(d.delivery_id for d in first) == ["r1.0", "r2.0"]
    # r1's first delivery fails: the next one of r1 waits for it, r2's goes on.
    failed = next(d for d in first if d.delivery_id == "r1.0")
    pair.outbox.retry_at(failed.delivery_id, 2e12, 1)
    pair.outbox.done("r2.0")
    assert [d.delivery_id for d in pair.outbox.claim_due(1e12 + 1, 10, 60)] == ["r2.1"]
    pair.outbox.done("r2.1")
    claimed = pair.outbox.claim_due(2e12, 10, 60)
    assert sorted(d.delivery_id for d in claimed) == ["r1.0", "r2.2"]
    assert next(d for d in claimed if d.delivery_id == "r1.0").attempts == 1
    pair.outbox.done("r1.0")
    assert [d.delivery_id for d in pair.outbox.claim_due(2e12 + 1, 10, 60)] == ["r1.1"]


def test_claimed_deliveries_are_held_then_due_again(pair: Pair) -> None:
    pair.outbox.register(RunHooks("r1", None, "http://wes"))
    pair.create()
    pair.outbox.drain(_one())
    assert len(pair.outbox.claim_due(now=200.0, limit=10, hold_s=60)) == 1
    assert pair.outbox.claim_due(now=210.0, limit=10, hold_s=60) == []
    assert len(pair.outbox.claim_due(now=261.0, limit=10, hold_s=60)) == 1


def test_retry_and_done(pair: Pair) -> None:
    pair.outbox.register(RunHooks("r1", None, "http://wes"))
    pair.create()
    pair.outbox.drain(_one())
    (delivery,) = pair.outbox.claim_due(now=200.0, limit=10, hold_s=60)
    pair.outbox.retry_at(delivery.delivery_id, 205.0, 1)
    assert pair.outbox.claim_due(now=204.0, limit=10, hold_s=60) == []
    (again,) = pair.outbox.claim_due(now=205.0, limit=10, hold_s=60)
    assert again.attempts == 1
    pair.outbox.done(again.delivery_id)
    assert pair.outbox.pending() == 0
    assert pair.outbox.claim_due(now=1e12, limit=10, hold_s=60) == []


def test_forgotten_runs_record_nothing_more(pair: Pair) -> None:
    pair.outbox.register(RunHooks("r1", None, "http://wes"))
    pair.outbox.forget("r1")
    pair.create()
    pair.move("r1", *ORDER)
    pair.outbox.drain(_one())
    assert pair.outbox.pending() == 0


def test_recorded_events_and_deliveries_survive_reopening(pair: Pair) -> None:
    pair.outbox.register(RunHooks("r1", None, "http://wes", "http://example.org/hook", "all"))
    pair.create()
    pair.outbox.drain(_one())
    pair.move("r1", State.QUEUED, State.INITIALIZING)
    pair.outbox.close()
    other = pair.reopen()  # type: ignore[operator]
    try:
        assert other.pending() == 1
        assert other.drain(_one()) == 1
        assert _bodies(other) == ["0:-->QUEUED", "1:QUEUED->INITIALIZING"]
    finally:
        other.close()


def test_concurrent_drains_turn_each_event_into_deliveries_once(pair: Pair) -> None:
    runs = [f"r{i}" for i in range(20)]
    for run_id in runs:
        pair.outbox.register(RunHooks(run_id, None, "http://wes", None, "all"))
        pair.create(run_id)
        pair.move(run_id, *ORDER)
    boxes = [pair.reopen() for _ in range(4)]  # type: ignore[operator]
    taken: list[int] = []
    threads = [threading.Thread(target=lambda b=b: taken.append(b.drain(_one()))) for b in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for box in boxes:
        box.close()
    assert sum(taken) == len(runs) * len(ORDER)
    assert pair.outbox.pending() == len(runs) * len(ORDER)
    delivered = []
    while due := pair.outbox.claim_due(now=1e12, limit=1000, hold_s=60):
        delivered += [d.delivery_id for d in due]
        for d in due:
            pair.outbox.done(d.delivery_id)
    assert sorted(delivered) == sorted(
        f"{run_id}.{n}" for run_id in runs for n in range(len(ORDER))
    )


def test_an_unreadable_redis_event_is_dropped_not_kept_at_the_head(redis_url: str) -> None:
    from toolchest_wes.store.redis_outbox import RedisOutbox, log_key

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    outbox = RedisOutbox(redis_url, prefix=prefix)
    try:
        import redis

        client = redis.Redis.from_url(redis_url)
        entry = {"run_id": "r1", "state": "QUEUED", "previous": "", "sequence": 1}
        client.rpush(log_key(prefix), "not json", json.dumps({**entry, "hooks": {}}))
        client.close()
        assert outbox.drain(_one()) == 2
        assert outbox.pending() == 0
    finally:
        outbox.close()


def test_redis_hooks_expire_until_their_run_has_an_event(
    redis_url: str,
) -> None:
    import redis

    from toolchest_wes.store.redis_outbox import RedisOutbox, hooks_key
    from toolchest_wes.store.redis_store import RedisStateStore

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    outbox = RedisOutbox(redis_url, prefix=prefix)
    store = RedisStateStore(redis_url, prefix=prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        for run_id in ("created", "lost"):
            outbox.register(RunHooks(run_id, None, "http://wes"))
            assert client.ttl(hooks_key(prefix, run_id)) > 0
        pair = Pair(store, outbox, None)
        pair.create("created")
        assert client.ttl(hooks_key(prefix, "created")) == -1
        pair.create("lost", record_created=False)
        pair.move("lost", State.QUEUED, State.INITIALIZING)
        assert client.ttl(hooks_key(prefix, "lost")) == -1
    finally:
        client.close()
        store.close()
        outbox.close()


def test_deliveries_queued_by_an_earlier_version_are_still_sent(
    tmp_path: Path, redis_url: str
) -> None:
    import sqlite3

    import redis

    from toolchest_wes.store.redis_outbox import RedisOutbox

    path = tmp_path / "runs.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE webhook_deliveries (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "delivery_id TEXT UNIQUE NOT NULL, event_id TEXT NOT NULL, url TEXT NOT NULL, "
        "subscriber TEXT NOT NULL, body TEXT NOT NULL, first_at REAL NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL);"
        "INSERT INTO webhook_deliveries (delivery_id, event_id, url, subscriber, body, "
        "first_at, due_at) VALUES ('old.0', 'old', 'http://example.org/', '', 'b', 1, 0);"
    )
    conn.close()
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(redis_url)
    client.hset(
        f"{prefix}:webhooks:d:old.0",
        mapping={"event_id": "old", "url": "http://example.org/", "subscriber": "", "body": "b"}
        | {"first_at": 1, "attempts": 0},
    )
    client.zadd(f"{prefix}:webhooks:due", {"old.0": 1})
    client.close()
    for box in (SqliteOutbox(path), RedisOutbox(redis_url, prefix=prefix)):
        try:
            assert box.pending() == 1
            (delivery,) = box.claim_due(now=100.0, limit=10, hold_s=60)
            assert delivery.delivery_id == "old.0"
            box.done("old.0")
            assert box.pending() == 0
        finally:
            box.close()
