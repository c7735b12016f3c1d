"""The distributed reconcile pass against a real Redis and real broker messages."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
import redis

from toolchest_wes.config import Settings
from toolchest_wes.core.reconcile import MAX_REQUEUES
from toolchest_wes.models import RunRequest, State
from toolchest_wes.runner.celery_runner import CeleryTaskRunner
from toolchest_wes.store.base import RunRecord, StoreUnavailableError
from toolchest_wes.store.redis_store import RedisStateStore
from toolchest_wes.wiring.distributed import reconciler as build_reconciler
from toolchest_wes.worker.celery_config import new_celery_app, queue_name
from toolchest_wes.worker.reconciler import QueueSnapshot, Reconciler

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
    runner = CeleryTaskRunner(new_celery_app(settings))
    yield settings, store, Reconciler(settings, store, client, requeue=runner.submit)
    runner.close()
    client.close()
    store.close()


def _reconciler(settings: Settings, store: RedisStateStore, **kwargs: Any) -> Reconciler:
    """Another reconciler on the same Redis, closed by the caller (``stop()``)."""
    client = redis.Redis.from_url(settings.redis_url or "")
    return Reconciler(settings, store, client, requeue=lambda run_id: None, **kwargs)


def _waiting(reconciler: Reconciler) -> set[str]:
    return reconciler.probe.snapshot().waiting


def test_queued_run_whose_message_is_gone_is_queued_again(setup) -> None:  # type: ignore[no-untyped-def]
    _settings, store, reconciler = setup
    old = time.time() - 120
    store.create_run(RunRecord("lost", State.QUEUED, REQUEST, created_at=old))
    store.create_run(RunRecord("waiting", State.QUEUED, REQUEST, created_at=old))
    store.create_run(RunRecord("young", State.QUEUED, REQUEST, created_at=time.time()))
    reconciler.requeue("waiting")  # its message is in the queue: no worker has taken it yet

    report = reconciler.run_once(force=True)

    assert report is not None and report.requeued == ["lost"] and not report.failed
    record = store.get_run("lost")
    assert record is not None and record.state is State.QUEUED
    assert any("queued again" in line for line in record.system_logs)
    assert _waiting(reconciler) == {"lost", "waiting"}
    assert store.get_state("waiting") is State.QUEUED
    assert store.get_state("young") is State.QUEUED
    # Its message waits now: the next pass leaves it alone.
    again = reconciler.run_once(force=True)
    assert again is not None and again.requeued == []


@pytest.mark.parametrize("delivered_s_ago", [0, 120], ids=["fresh", "stale"])
def test_a_delivery_no_worker_acts_on_is_queued_again_after_the_grace_period(  # type: ignore[no-untyped-def]
    setup, delivered_s_ago: int
) -> None:
    """A worker took the message and died (or could not start the run) without
    acknowledging it: kombu would hand it out again only after the visibility timeout."""
    settings, store, reconciler = setup
    store.create_run(RunRecord("taken", State.QUEUED, REQUEST, created_at=time.time() - 300))
    reconciler.requeue("taken")
    with kombu.Connection(settings.redis_url) as conn:
        queue = conn.SimpleQueue(queue_name(settings), no_ack=False)
        message = queue.get(timeout=5)  # delivered, never acknowledged
        assert message.headers["id"] == "taken"
        later = _reconciler(settings, store, clock=lambda: time.time() + delivered_s_ago)
        later.requeue = reconciler.requeue
        try:
            report = later.run_once(force=True)
        finally:
            later.stop()
        assert report is not None
        if delivered_s_ago:
            assert report.requeued == ["taken"]
            assert _waiting(reconciler) == {"taken"}
            assert "taken" not in reconciler.probe.snapshot().delivered  # forgotten
        else:
            assert report.requeued == []
            assert _waiting(reconciler) == set()
        queue.close()
    assert store.get_state("taken") is State.QUEUED


def test_a_run_that_starts_meanwhile_is_not_queued_again(setup) -> None:  # type: ignore[no-untyped-def]
    _settings, store, reconciler = setup
    store.create_run(RunRecord("r", State.QUEUED, REQUEST, created_at=time.time() - 120))
    sent: list[str] = []
    reconciler.requeue = sent.append
    snapshot = reconciler.probe.snapshot

    def worker_starts_the_run_first() -> QueueSnapshot:
        # After the listing (the run was QUEUED) and before the requeue: a worker took the
        # message and started the run.
        store.transition("r", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}))
        return snapshot()

    reconciler.probe.snapshot = worker_starts_the_run_first  # type: ignore[method-assign]
    report = reconciler.run_once(force=True)

    assert report is not None and report.requeued == [] and sent == []
    record = store.get_run("r")
    assert record is not None and record.state is State.INITIALIZING and not record.system_logs


def test_expired_lease_ends_or_requeues_the_run(setup) -> None:  # type: ignore[no-untyped-def]
    _settings, store, reconciler = setup
    for run_id, state in [
        ("dead", State.RUNNING),
        ("dying", State.CANCELING),
        ("alive", State.RUNNING),
        ("starting", State.INITIALIZING),
    ]:
        store.create_run(RunRecord(run_id, state, REQUEST, created_at=time.time()))
    store.create_run(
        RunRecord(
            "poison",
            State.INITIALIZING,
            REQUEST,
            created_at=time.time(),
            system_logs=[f"queued again: attempt {i}" for i in range(MAX_REQUEUES)],
        )
    )
    for run_id in ("dead", "dying", "starting", "poison"):
        store.touch_lease(run_id, 0.01)
    store.touch_lease("alive", 60)
    time.sleep(0.05)

    report = reconciler.run_once(force=True)

    assert report is not None
    assert report.failed == ["dead", "poison"] and report.cancelled == ["dying"]
    assert report.requeued == ["starting"]
    dead = store.get_run("dead")
    assert dead is not None and dead.state is State.SYSTEM_ERROR
    assert any("lease" in line for line in dead.system_logs)
    assert store.get_state("dying") is State.CANCELED
    assert store.get_state("alive") is State.RUNNING
    # Its engine never started: it is QUEUED again, with a message for a worker to take.
    starting = store.get_run("starting")
    assert starting is not None and starting.state is State.QUEUED
    assert any("before the engine started" in line for line in starting.system_logs)
    assert _waiting(reconciler) == {"starting"}
    # A run that was queued again MAX_REQUEUES times ends instead.
    poison = store.get_run("poison")
    assert poison is not None and poison.state is State.SYSTEM_ERROR
    assert store.expired_leases() == []


def test_only_one_instance_acts_per_interval(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store, reconciler = setup
    other = _reconciler(settings, store)
    try:
        assert reconciler.run_once() is not None
        assert other.run_once() is None
    finally:
        other.stop()


def _ended_run(store: RedisStateStore, settings: Settings, run_id: str) -> None:
    store.create_run(RunRecord(run_id=run_id, state=State.RUNNING, request=REQUEST, created_at=0))
    store.transition(run_id, State.COMPLETE, allowed_from=frozenset({State.RUNNING}))
    (settings.runs_dir / run_id / "outputs").mkdir(parents=True)


def _wait_until_due(store: RedisStateStore, settings: Settings, run_id: str) -> None:
    """Wait until the run's end lies further back than the retention window.

    The window is a fraction of a millisecond, but the store's clock is only as fine as its
    timestamps, so a sweep right after the run ended may not see it yet.
    """
    deadline = time.monotonic() + 10
    while store.outputs_due(settings.retention_s or 0, limit=1) != [run_id]:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_one_sweep_per_interval_across_reconcilers(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store, _ = setup
    settings = settings.model_copy(
        update={"retention_days": 1e-9, "retention_sweep_interval_s": 3600}
    )
    first = _reconciler(settings, store)
    second = _reconciler(settings, store)
    try:
        _ended_run(store, settings, "a")
        _wait_until_due(store, settings, "a")

        assert first.sweep_once() == ["a"]
        _ended_run(store, settings, "b")
        _wait_until_due(store, settings, "b")
        assert second.sweep_once() is None  # the first holds the lock for the interval
        assert second.sweep_once(force=True) == ["b"]
        assert not (settings.runs_dir / "a" / "outputs").exists()
    finally:
        first.stop()
        second.stop()


def test_no_sweep_when_outputs_are_kept_forever(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store, _ = setup
    forever = _reconciler(settings.model_copy(update={"retention_days": 0}), store)

    assert forever.sweep_once(force=True) is None
    forever.stop()


def test_the_probe_skips_garbage_and_other_queues_deliveries(setup) -> None:  # type: ignore[no-untyped-def]
    settings, _store, reconciler = setup
    client = reconciler.client
    other = json.dumps([{"headers": {"id": "theirs"}}, "", "another-queue"])
    unreadable = {f"bad-{uuid.uuid4().hex}": "not json", f"other-{uuid.uuid4().hex}": other}
    # kombu's own keys: the unacknowledged deliveries of every queue on this Redis database.
    client.hset("unacked", mapping=unreadable)
    client.lpush(queue_name(settings), "not json", json.dumps({"headers": {"id": 7}}))
    try:
        snapshot = reconciler.probe.snapshot()
    finally:
        client.hdel("unacked", *unreadable)
        client.delete(queue_name(settings))

    assert snapshot.waiting == set() and snapshot.delivered == {}


def test_the_loop_outlives_failed_passes_and_sweeps(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    settings, store, _ = setup
    settings = settings.model_copy(
        update={
            "reconcile_interval_s": 0.05,
            "retention_days": 1.0,
            "retention_sweep_interval_s": 0.05,
        }
    )
    failures = {"expired_leases": 1, "outputs_due": 1}

    class FlakyStore:
        """The real store, whose first call of each method in ``failures`` fails."""

        def __getattr__(self, name: str) -> Any:
            if failures.get(name):
                failures[name] -= 1
                raise (StoreUnavailableError if name == "expired_leases" else OSError)(name)
            return getattr(store, name)

    store.create_run(RunRecord("stale", State.QUEUED, REQUEST, created_at=time.time() - 120))
    requeued: list[str] = []
    with caplog.at_level(logging.WARNING, logger="toolchest_wes.worker.reconciler"):
        reconciler = build_reconciler(settings, FlakyStore(), requeue=requeued.append)  # type: ignore[arg-type]
        reconciler.start()
        reconciler.start()  # already running: no second loop
        try:
            deadline = time.monotonic() + 20
            while not requeued or failures["outputs_due"]:
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.02)
        finally:
            reconciler.stop()

    assert requeued[0] == "stale"
    assert "reconcile pass failed" in caplog.text
    assert "reconcile requeued=1" in caplog.text
    assert "retention sweep failed" in caplog.text


def test_the_loop_needs_redis(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="needs --redis"):
        build_reconciler(Settings(data_dir=tmp_path), store=None, requeue=print)  # type: ignore[arg-type]
