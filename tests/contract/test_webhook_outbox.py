"""The webhook outbox contract, run against the SQLite and the Redis outbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchest_wes.models import State
from toolchest_wes.store.outbox import Delivery, Outbox, RunHooks
from toolchest_wes.store.sqlite_outbox import SqliteOutbox


@pytest.fixture(params=["sqlite", "redis"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    if request.param == "sqlite":
        box: Outbox = SqliteOutbox(tmp_path / "runs.sqlite")
    else:
        from toolchest_wes.store.redis_outbox import RedisOutbox

        url = request.getfixturevalue("redis_url")
        box = RedisOutbox(url, prefix=f"test-{uuid.uuid4().hex[:12]}")
    yield box
    box.close()


def _one(url: str = "http://example.org/hook"):
    def build(hooks: RunHooks, to: State, at: float) -> list[Delivery]:
        previous = hooks.last_state.value if hooks.last_state else "-"
        body = f"{hooks.sequence}:{previous}->{to.value}"
        return [Delivery(f"{body}.0", f"evt-{hooks.sequence}", url, "", body, at)]

    return build


def test_a_run_without_hooks_queues_nothing(outbox: Outbox) -> None:
    assert outbox.record("unknown", State.QUEUED, 100.0, _one()) == 0
    assert outbox.pending() == 0


def test_events_carry_the_previous_state_and_sequence_in_order(outbox: Outbox) -> None:
    outbox.register(RunHooks("r1", "alice", "http://wes", "http://example.org/hook", "all"))
    for state in (State.QUEUED, State.INITIALIZING, State.RUNNING, State.COMPLETE):
        assert outbox.record("r1", state, 100.0, _one()) == 1
    due = outbox.claim_due(now=200.0, limit=10, hold_s=60)
    assert [d.body for d in due] == [
        "0:-->QUEUED",
        "1:QUEUED->INITIALIZING",
        "2:INITIALIZING->RUNNING",
        "3:RUNNING->COMPLETE",
    ]
    assert due[0].url == "http://example.org/hook"
    assert due[0].first_at == 100.0


def test_claimed_deliveries_are_held_then_due_again(outbox: Outbox) -> None:
    outbox.register(RunHooks("r1", None, "http://wes"))
    outbox.record("r1", State.QUEUED, 100.0, _one())
    assert len(outbox.claim_due(now=200.0, limit=10, hold_s=60)) == 1
    assert outbox.claim_due(now=210.0, limit=10, hold_s=60) == []
    assert len(outbox.claim_due(now=261.0, limit=10, hold_s=60)) == 1


def test_retry_and_done(outbox: Outbox) -> None:
    outbox.register(RunHooks("r1", None, "http://wes"))
    outbox.record("r1", State.QUEUED, 100.0, _one())
    (delivery,) = outbox.claim_due(now=200.0, limit=10, hold_s=60)
    outbox.retry_at(delivery.delivery_id, 205.0, 1)
    assert outbox.claim_due(now=204.0, limit=10, hold_s=60) == []
    (again,) = outbox.claim_due(now=205.0, limit=10, hold_s=60)
    assert again.attempts == 1
    outbox.done(again.delivery_id)
    assert outbox.pending() == 0
    assert outbox.claim_due(now=1e12, limit=10, hold_s=60) == []


def test_forgotten_runs_record_nothing_more(outbox: Outbox) -> None:
    outbox.register(RunHooks("r1", None, "http://wes"))
    outbox.forget("r1")
    assert outbox.record("r1", State.QUEUED, 100.0, _one()) == 0


def test_deliveries_survive_reopening(outbox: Outbox) -> None:
    outbox.register(RunHooks("r1", None, "http://wes"))
    outbox.record("r1", State.COMPLETE, 100.0, _one())
    outbox.close()
    assert outbox.pending() == 1


def test_the_sqlite_outbox_records_transitions_in_the_stores_transaction(tmp_path: Path) -> None:
    from toolchest_wes.models import RunRequest
    from toolchest_wes.store.base import RunRecord
    from toolchest_wes.store.embedded_store import EmbeddedStateStore
    from toolchest_wes.store.sqlite_outbox import disable

    path = tmp_path / "runs.sqlite"
    outbox = SqliteOutbox(path)
    store = EmbeddedStateStore(path)
    try:
        outbox.register(RunHooks("r1", None, "http://wes", "http://example.org/hook", "all"))
        request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x")
        store.create_run(RunRecord("r1", State.QUEUED, request, created_at=1.0))
        assert store.transition("r1", State.INITIALIZING, allowed_from=frozenset({State.QUEUED}))
        assert not store.transition("r1", State.RUNNING, allowed_from=frozenset({State.QUEUED}))
        assert outbox.pending() == 0
        assert outbox.drain(_one()) == 2
        bodies = [d.body for d in outbox.claim_due(now=1e12, limit=10, hold_s=60)]
        assert bodies == ["0:-->QUEUED", "1:QUEUED->INITIALIZING"]
        outbox.close()
        disable(path)
        store.transition("r1", State.RUNNING, allowed_from=frozenset({State.INITIALIZING}))
        assert store.get_state("r1") is State.RUNNING
    finally:
        store.close()


def test_a_terminal_event_is_the_runs_last(outbox: Outbox) -> None:
    outbox.register(RunHooks("r1", None, "http://wes"))
    assert outbox.record("r1", State.CANCELED, 100.0, _one()) == 1
    assert outbox.record("r1", State.SYSTEM_ERROR, 100.0, _one()) == 0


def test_recording_the_last_state_again_is_a_copy(outbox: Outbox) -> None:
    outbox.register(RunHooks("r1", None, "http://wes"))
    assert outbox.record("r1", State.RUNNING, 100.0, _one()) == 1
    assert outbox.record("r1", State.RUNNING, 100.0, _one()) == 0
