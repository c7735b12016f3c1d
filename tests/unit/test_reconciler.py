"""The distributed reconcile pass against a real Redis and real broker messages."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from toolchest_wes.config import Settings
from toolchest_wes.models import RunRequest, State
from toolchest_wes.runner.celery_runner import CeleryTaskRunner
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.redis_store import RedisStateStore
from toolchest_wes.worker.celery_config import new_celery_app
from toolchest_wes.worker.reconciler import Reconciler

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")


@pytest.fixture
def setup(redis_server, tmp_path) -> Iterator[tuple[Settings, RedisStateStore, Reconciler]]:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path,
        redis_url=redis_server.url,
        redis_prefix=f"rec-{uuid.uuid4().hex[:8]}",
        queue_lost_after_s=60,
    )
    store = RedisStateStore(redis_server.url, prefix=settings.redis_prefix)
    client = redis.Redis.from_url(redis_server.url)
    yield settings, store, Reconciler(settings, store, client)
    client.close()
    store.close()


def test_queued_run_whose_message_is_gone_ends_system_error(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store, reconciler = setup
    old = time.time() - 120
    store.create_run(RunRecord("lost", State.QUEUED, REQUEST, created_at=old))
    store.create_run(RunRecord("waiting", State.QUEUED, REQUEST, created_at=old))
    store.create_run(RunRecord("young", State.QUEUED, REQUEST, created_at=time.time()))
    runner = CeleryTaskRunner(new_celery_app(settings))
    runner.submit("waiting")  # its message is in the queue: no worker has taken it yet
    runner.close()

    report = reconciler.run_once(force=True)

    assert report is not None and report.failed == ["lost"]
    record = store.get_run("lost")
    assert record is not None and record.state is State.SYSTEM_ERROR
    assert any("no longer in the queue" in line for line in record.system_logs)
    assert store.get_state("waiting") is State.QUEUED
    assert store.get_state("young") is State.QUEUED


def test_expired_lease_ends_the_run(setup) -> None:  # type: ignore[no-untyped-def]
    _settings, store, reconciler = setup
    for run_id, state in [
        ("dead", State.RUNNING),
        ("dying", State.CANCELING),
        ("alive", State.RUNNING),
    ]:
        store.create_run(RunRecord(run_id, state, REQUEST, created_at=time.time()))
    store.touch_lease("dead", 0.01)
    store.touch_lease("dying", 0.01)
    store.touch_lease("alive", 60)
    time.sleep(0.05)

    report = reconciler.run_once(force=True)

    assert report is not None
    assert report.failed == ["dead"] and report.cancelled == ["dying"]
    dead = store.get_run("dead")
    assert dead is not None and dead.state is State.SYSTEM_ERROR
    assert any("lease" in line for line in dead.system_logs)
    assert store.get_state("dying") is State.CANCELED
    assert store.get_state("alive") is State.RUNNING


def test_only_one_instance_acts_per_interval(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store, reconciler = setup
    other = Reconciler(settings, store, redis.Redis.from_url(settings.redis_url or ""))
    try:
        assert reconciler.run_once() is not None
        assert other.run_once() is None
    finally:
        other.client.close()


def _ended_run(store: RedisStateStore, settings: Settings, run_id: str) -> None:
    store.create_run(RunRecord(run_id=run_id, state=State.RUNNING, request=REQUEST, created_at=0))
    store.transition(run_id, State.COMPLETE, allowed_from=frozenset({State.RUNNING}))
    (settings.runs_dir / run_id / "outputs").mkdir(parents=True)


def test_one_sweep_per_interval_across_reconcilers(setup, redis_server) -> None:  # type: ignore[no-untyped-def]
    settings, store, _ = setup
    settings = settings.model_copy(
        update={"retention_days": 1e-9, "retention_sweep_interval_s": 3600}
    )
    first = Reconciler(settings, store, redis.Redis.from_url(redis_server.url))
    second = Reconciler(settings, store, redis.Redis.from_url(redis_server.url))
    try:
        _ended_run(store, settings, "a")
        deadline = time.monotonic() + 10
        while store.outputs_due(settings.retention_s or 0, limit=1) != ["a"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)

        assert first.sweep_once() == ["a"]
        _ended_run(store, settings, "b")
        assert second.sweep_once() is None  # the first holds the lock for the interval
        assert second.sweep_once(force=True) == ["b"]
        assert not (settings.runs_dir / "a" / "outputs").exists()
    finally:
        first.stop()
        second.stop()


def test_no_sweep_when_outputs_are_kept_forever(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store, _ = setup
    client = redis.Redis.from_url(settings.redis_url or "")
    forever = Reconciler(settings.model_copy(update={"retention_days": 0}), store, client)

    assert forever.sweep_once(force=True) is None
    forever.stop()
