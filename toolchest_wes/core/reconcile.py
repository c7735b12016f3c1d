"""Reconcile: end the runs whose executor is gone, so no run stays active forever."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from toolchest_wes.core.states import allowed_from
from toolchest_wes.models import State
from toolchest_wes.store.base import RunUpdate, StateStore, iso_now

__all__ = ["ReconcileReport", "end_lost_runs", "recover_after_restart"]

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What a reconcile pass did, by run id."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def recover_after_restart(
    store: StateStore, requeue: Callable[[str], None], *, reason: str
) -> ReconcileReport:
    """End every active run of a server that stopped; queue again those that never started.

    For the embedded mode, where the server process owns every engine process: after a
    restart, no run past QUEUED can still be running. QUEUED runs had not started, so they
    are simply queued again; the others end SYSTEM_ERROR (or CANCELED if a cancel was
    pending) with ``reason`` in ``system_logs``.
    """
    report = ReconcileReport()
    for record in store.list_active():
        run_id, state = record.run_id, record.state
        if state is State.QUEUED:
            requeue(run_id)
            report.requeued.append(run_id)
            continue
        target = State.CANCELED if state is State.CANCELING else State.SYSTEM_ERROR
        line = f"{reason} while the run was {state}; its engine process was lost"
        if state in allowed_from(target) and _end(store, run_id, state, target, line):
            (report.cancelled if target is State.CANCELED else report.failed).append(run_id)
    return report


def end_lost_runs(
    store: StateStore,
    *,
    message_exists: Callable[[str], bool],
    queued_grace_s: float,
    now: float,
) -> ReconcileReport:
    """End the runs no worker will ever finish (distributed mode).

    - A started run whose lease expired: its worker stopped renewing it, so it died or lost
      the store. It ends SYSTEM_ERROR (CANCELED if a cancel was pending).
    - A run QUEUED for longer than ``queued_grace_s`` whose message is in no queue: the
      broker lost it (flushed, or restored without persistence). It ends SYSTEM_ERROR.

    Every ending is a compare-and-set from the state observed, so a run that moves on in the
    meantime is left alone.
    """
    report = ReconcileReport()
    for run_id in store.expired_leases():
        state = store.get_state(run_id)
        if state is None or state.is_terminal:
            continue
        target = State.CANCELED if state is State.CANCELING else State.SYSTEM_ERROR
        line = (
            f"the worker executing the run stopped renewing its lease while the run was "
            f"{state}; the worker process died or lost its connection"
        )
        if _end(store, run_id, state, target, line):
            (report.cancelled if target is State.CANCELED else report.failed).append(run_id)
    for record in store.list_active():
        if record.state is not State.QUEUED or now - record.created_at < queued_grace_s:
            continue
        if message_exists(record.run_id):
            continue
        line = (
            "the run's message is no longer in the queue (was the broker flushed or "
            "restarted without persistence?); it will never start"
        )
        if _end(store, record.run_id, State.QUEUED, State.SYSTEM_ERROR, line):
            report.failed.append(record.run_id)
    return report


def _end(store: StateStore, run_id: str, state: State, target: State, line: str) -> bool:
    done = store.transition(
        run_id,
        target,
        allowed_from=frozenset({state}),
        update=RunUpdate(end_time=iso_now(), append_system_logs=[line]),
    )
    if done:
        logger.warning("run ended by reconcile run_id=%s was=%s now=%s", run_id, state, target)
    return done
