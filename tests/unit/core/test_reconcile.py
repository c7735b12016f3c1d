"""Reconcile on a real (SQLite) store: after a restart, and for runs whose worker is gone.

The distributed loop around ``reconcile_runs`` (locks, the queue in Redis) is tested in
tests/unit/worker/test_reconciler.py; here each pass is called directly, and a run that
moves on while a pass looks at it is staged with a store whose listings are out of date.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.core.reconcile import MAX_REQUEUES, reconcile_runs, recover_after_restart
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStateStore]:
    made = EmbeddedStateStore(tmp_path / "runs.sqlite")
    yield made
    made.close()


def add(store: EmbeddedStateStore, run_id: str, state: State, **fields: Any) -> None:
    fields.setdefault("created_at", time.time())
    store.create_run(RunRecord(run_id, state, REQUEST, **fields))


class Outdated:
    """The store, but what it lists (and, with ``records``, each run it reads) is as it was
    when it was made, before the runs moved on."""

    def __init__(self, store: EmbeddedStateStore, *, records: bool = False) -> None:
        self._store = store
        self._active = store.list_active()
        self._expired = store.expired_leases()
        self._records = {r.run_id: r for r in self._active} if records else None

    def list_active(self) -> list[RunRecord]:
        return self._active

    def expired_leases(self) -> list[str]:
        return self._expired

    def get_run(self, run_id: str) -> RunRecord | None:
        if self._records is None:
            return self._store.get_run(run_id)
        return self._records.get(run_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def logs(store: EmbeddedStateStore, run_id: str) -> str:
    record = store.get_run(run_id)
    assert record is not None
    return "\n".join(record.system_logs)


def expire(store: EmbeddedStateStore, *run_ids: str) -> None:
    for run_id in run_ids:
        store.touch_lease(run_id, 0.001)
    time.sleep(0.01)


def reconcile(store: Any, requeued: list[str]) -> tuple[list[str], ...]:
    """One pass in which every queued run has its message; what it did."""
    report = reconcile_runs(
        store,
        message_alive=lambda run_id: True,
        requeue=requeued.append,
        queued_grace_s=60,
        now=time.time(),
    )
    return report.requeued, report.failed, report.cancelled


def test_a_restart_ends_what_was_running_and_queues_again_what_was_not(store):
    for run_id, state in [
        ("queued", State.QUEUED),
        ("starting", State.INITIALIZING),
        ("running", State.RUNNING),
        ("paused", State.PAUSED),
        ("canceling", State.CANCELING),
        ("done", State.COMPLETE),
    ]:
        add(store, run_id, state)
    requeued: list[str] = []

    report = recover_after_restart(store, requeued.append, reason="the server restarted")

    assert sorted(report.requeued) == sorted(requeued) == ["queued", "starting"]
    assert sorted(report.failed) == ["paused", "running"]
    assert report.cancelled == ["canceling"]
    assert store.get_state("queued") is State.QUEUED
    assert store.get_state("starting") is State.QUEUED
    assert store.get_state("running") is State.SYSTEM_ERROR
    assert store.get_state("canceling") is State.CANCELED
    assert store.get_state("done") is State.COMPLETE
    assert "the server restarted while the run was RUNNING" in logs(store, "running")
    ended = store.get_run("running")
    assert ended is not None and ended.end_time is not None


def test_a_restart_hands_started_runs_to_take_over(store):
    add(store, "adopted", State.RUNNING)
    add(store, "lost", State.RUNNING)
    add(store, "canceling", State.CANCELING)
    add(store, "starting", State.INITIALIZING)
    asked: list[str] = []

    def take_over(record: RunRecord) -> str | None:
        asked.append(record.run_id)
        return None if record.run_id == "adopted" else f"engine of {record.run_id} stopped"

    report = recover_after_restart(store, print, reason="the server restarted", take_over=take_over)

    # INITIALIZING never started an engine: nothing to take over.
    assert sorted(asked) == ["adopted", "canceling", "lost"]
    assert report.adopted == ["adopted"] and store.get_state("adopted") is State.RUNNING
    assert logs(store, "adopted") == ""
    assert store.get_state("lost") is State.SYSTEM_ERROR
    assert logs(store, "lost") == (
        "the server restarted while the run was RUNNING; engine of lost stopped"
    )
    assert store.get_state("canceling") is State.CANCELED
    assert store.get_state("starting") is State.QUEUED


def test_a_restart_queues_a_starting_run_again_a_few_times_at_most(store):
    add(store, "starting", State.INITIALIZING)
    add(store, "poison", State.INITIALIZING, system_logs=["queued again: x"] * MAX_REQUEUES)
    requeued: list[str] = []

    report = recover_after_restart(store, requeued.append, reason="the server restarted")

    assert report.requeued == requeued == ["starting"]
    assert logs(store, "starting") == (
        "queued again: the server restarted while the run was INITIALIZING, "
        "before its engine started"
    )
    assert report.failed == ["poison"]
    assert store.get_state("poison") is State.SYSTEM_ERROR
    assert f"queued again {MAX_REQUEUES} times already" in logs(store, "poison")
    # Each restart counts: the run that came back is queued again until the bound.
    for _ in range(MAX_REQUEUES - 1):
        store.transition("starting", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}))
        assert recover_after_restart(store, print, reason="restart").requeued == ["starting"]
    store.transition("starting", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}))
    assert recover_after_restart(store, print, reason="restart").failed == ["starting"]
    assert store.get_state("starting") is State.SYSTEM_ERROR


def test_a_restart_does_not_queue_again_a_starting_run_with_an_engine(store):
    add(store, "starting", State.INITIALIZING)
    add(store, "clean", State.INITIALIZING)
    requeued: list[str] = []

    report = recover_after_restart(
        store,
        requeued.append,
        reason="the server restarted",
        has_engine=lambda record: record.run_id == "starting",
    )

    assert requeued == report.requeued == ["clean"]
    assert report.failed == ["starting"]
    assert store.get_state("starting") is State.SYSTEM_ERROR
    assert logs(store, "starting") == (
        "the server restarted while the run was INITIALIZING; an engine process was recorded "
        "for it, so it was not queued again"
    )


def test_a_restart_leaves_alone_a_run_that_ended_meanwhile(store):
    add(store, "r", State.RUNNING)
    outdated = Outdated(store)
    store.transition("r", State.COMPLETE, allowed_from=frozenset({State.RUNNING}))

    report = recover_after_restart(outdated, print, reason="restart")  # type: ignore[arg-type]

    assert report.failed == [] and store.get_state("r") is State.COMPLETE


def test_expired_leases_end_the_run_or_queue_it_again(store):
    add(store, "running", State.RUNNING)
    add(store, "canceling", State.CANCELING)
    add(store, "starting", State.INITIALIZING)
    add(store, "poison", State.INITIALIZING, system_logs=["queued again: x"] * MAX_REQUEUES)
    expire(store, "running", "canceling", "starting", "poison")
    requeued: list[str] = []

    again, failed, cancelled = reconcile(store, requeued)

    assert again == requeued == ["starting"]
    assert sorted(failed) == ["poison", "running"] and cancelled == ["canceling"]
    assert store.get_state("starting") is State.QUEUED
    assert "before the engine started" in logs(store, "starting")
    assert f"queued again {MAX_REQUEUES} times already" in logs(store, "poison")


def test_an_expired_lease_of_a_run_that_ended_or_went_is_passed_over(store):
    add(store, "ended", State.RUNNING)
    add(store, "gone", State.RUNNING)
    expire(store, "ended", "gone")
    outdated = Outdated(store)
    store.transition("ended", State.COMPLETE, allowed_from=frozenset({State.RUNNING}))
    store.transition("gone", State.CANCELED, allowed_from=frozenset({State.RUNNING}))
    store.delete_run("gone")
    requeued: list[str] = []

    assert reconcile(outdated, requeued) == ([], [], [])
    assert store.get_state("ended") is State.COMPLETE and store.get_run("gone") is None


def test_a_run_that_moves_on_while_the_pass_reads_it_is_left_alone(store):
    add(store, "ended", State.RUNNING)
    add(store, "started", State.INITIALIZING)
    expire(store, "ended", "started")
    outdated = Outdated(store, records=True)
    store.transition("ended", State.COMPLETE, allowed_from=frozenset({State.RUNNING}))
    store.transition("started", State.RUNNING, allowed_from=frozenset({State.INITIALIZING}))
    requeued: list[str] = []

    assert reconcile(outdated, requeued) == ([], [], []) and requeued == []
    assert store.get_state("ended") is State.COMPLETE
    assert store.get_state("started") is State.RUNNING


def test_a_queued_run_is_queued_again_only_when_old_and_without_a_message(store):
    now = time.time()
    add(store, "young", State.QUEUED, created_at=now - 10)
    add(store, "waiting", State.QUEUED, created_at=now - 120)
    add(store, "lost", State.QUEUED, created_at=now - 120)
    asked: list[str] = []

    def message_alive(run_id: str) -> bool:
        asked.append(run_id)
        return run_id == "waiting"

    report = reconcile_runs(
        store, message_alive=message_alive, requeue=print, queued_grace_s=60, now=now
    )

    assert report.requeued == ["lost"]
    assert sorted(asked) == ["lost", "waiting"]  # the young run's message is not looked for
    assert store.get_state("lost") is State.QUEUED
    assert "queued again: the run's message was no longer in the queue" in logs(store, "lost")
