"""The change-fed state cache of API processes, against a real redis-server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord, StoreUnavailableError
from toolchest_wes.store.redis_store import RedisStateStore

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def stores(redis_server) -> Iterator[tuple[RedisStateStore, RedisStateStore]]:  # type: ignore[no-untyped-def]
    """A caching store (an API process) and a plain one (a worker), on one prefix."""
    prefix = f"cache-{uuid.uuid4().hex[:8]}"
    api = RedisStateStore(redis_server.url, prefix=prefix, cache_states=True)
    worker = RedisStateStore(redis_server.url, prefix=prefix)
    eventually(lambda: api._cache is not None and api._cache.live)
    yield api, worker
    api.close()
    worker.close()


def test_other_processes_transitions_reach_the_cache(stores) -> None:  # type: ignore[no-untyped-def]
    api, worker = stores
    worker.create_run(RunRecord("r1", State.QUEUED, REQUEST, created_at=time.time()))
    assert api.get_state("r1") is State.QUEUED  # a miss, read from Redis and cached
    for target in (State.INITIALIZING, State.RUNNING, State.COMPLETE):
        current = api.get_state("r1")
        assert current is not None
        assert worker.transition("r1", target, allowed_from=frozenset({current}))
        eventually(lambda t=target: api.get_state("r1") is t)
    assert api.get_state("missing") is None


def test_a_stale_read_never_replaces_a_newer_state(stores) -> None:  # type: ignore[no-untyped-def]
    api, worker = stores
    worker.create_run(RunRecord("r2", State.QUEUED, REQUEST, created_at=time.time()))
    assert worker.transition("r2", State.CANCELED, allowed_from=frozenset({State.QUEUED}))
    assert api._cache is not None
    eventually(lambda: api.get_state("r2") is State.CANCELED)
    api._cache.offer("r2", 0, State.QUEUED)  # what a reader that raced the feed would offer
    assert api.get_state("r2") is State.CANCELED


def test_own_transitions_are_read_back_at_once(stores) -> None:  # type: ignore[no-untyped-def]
    api, _worker = stores
    api.create_run(RunRecord("r3", State.QUEUED, REQUEST, created_at=time.time()))
    assert api.transition("r3", State.CANCELED, allowed_from=frozenset({State.QUEUED}))
    assert api.get_state("r3") is State.CANCELED


def test_a_lost_feed_empties_the_cache_and_reads_go_to_redis(redis_server, stores) -> None:  # type: ignore[no-untyped-def]
    api, worker = stores
    worker.create_run(RunRecord("r4", State.QUEUED, REQUEST, created_at=time.time()))
    assert api.get_state("r4") is State.QUEUED
    redis_server.stop()
    try:
        assert api._cache is not None
        eventually(lambda: not api._cache.live, timeout=15)
        with pytest.raises(StoreUnavailableError):
            api.get_state("r4")
    finally:
        redis_server.start()
    # The server started empty (no persistence): the run is gone, and the cache knows it.
    eventually(lambda: api._cache.live, timeout=15)
    assert api.get_state("r4") is None


def test_each_feed_message_is_told_once_the_cache_holds_it(redis_server) -> None:  # type: ignore[no-untyped-def]
    prefix = f"cache-{uuid.uuid4().hex[:8]}"
    told: list[tuple[str, State | None]] = []
    api = RedisStateStore(redis_server.url, prefix=prefix, cache_states=True)
    worker = RedisStateStore(redis_server.url, prefix=prefix)
    try:
        cache = api._cache
        assert cache is not None
        # What the threads waiting on a run's state are woken by: they read the cache then.
        cache._on_change = lambda run_id: told.append((run_id, cache.get(run_id)))
        eventually(lambda: cache.live)
        worker.create_run(RunRecord("r5", State.QUEUED, REQUEST, created_at=time.time()))
        assert worker.transition("r5", State.CANCELED, allowed_from=frozenset({State.QUEUED}))
        eventually(lambda: ("r5", State.CANCELED) in told)
    finally:
        api.close()
        worker.close()
