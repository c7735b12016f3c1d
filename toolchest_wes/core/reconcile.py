"""Reconcile: queue again or end the runs whose executor is gone, so no run stays active
forever."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from toolchest_wes.core.states import allowed_from
from toolchest_wes.models import State
from toolchest_wes.store.base import RunRecord, RunUpdate, StateStore, iso_now

__all__ = ["MAX_REQUEUES", "ReconcileReport", "reconcile_runs", "recover_after_restart"]

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What a reconcile pass did, by run id."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)


def recover_after_restart(
    store: StateStore,
    requeue: Callable[[str], None],
    *,
    reason: str,
    take_over: Callable[[RunRecord], str | None] | None = None,
    has_engine: Callable[[RunRecord], bool] | None = None,
) -> ReconcileReport:
    """Take over, end or queue again every active run of a server process that stopped.

    For the embedded mode, where one server process executes every run. QUEUED runs had not
    started, so they are queued again. So are INITIALIZING runs, whose engine had not started
    either, up to ``MAX_REQUEUES`` times (counted as the reconcile loop of distributed mode
    counts them, in case it is the run that kills its server process), unless ``has_engine``
    finds an engine recorded for one. A RUNNING or CANCELING run goes to ``take_over``,
    which either adopts it (its engine outlived the process that started it; it answers
    ``None`` and the run goes on) or stops what is left of its engine and answers why the
    run cannot go on. The others end SYSTEM_ERROR (or CANCELED if a cancel was pending), with
    ``reason`` and that answer (without ``take_over``: that the engine was lost) in
    ``system_logs``.
    """
    report = ReconcileReport()
    for record in store.list_active():
        run_id, state = record.run_id, record.state
        if state is State.QUEUED:
            requeue(run_id)
            report.requeued.append(run_id)
            continue
        fate = "its engine process was lost"
        if state is State.INITIALIZING:
            refusal = _starting_fate(record, has_engine)
            if refusal is None:
                line = f"{_REQUEUED} {reason} while the run was {state}, before its engine started"
                if _requeue(store, run_id, state, requeue, line):
                    report.requeued.append(run_id)
                continue
            fate = refusal
        if take_over is not None and state in (State.RUNNING, State.CANCELING):
            answer = take_over(record)
            if answer is None:
                report.adopted.append(run_id)
                continue
            fate = answer
        target = State.CANCELED if state is State.CANCELING else State.SYSTEM_ERROR
        line = f"{reason} while the run was {state}; {fate}"
        if state in allowed_from(target) and _end(store, run_id, state, target, line):
            (report.cancelled if target is State.CANCELED else report.failed).append(run_id)
    return report


def reconcile_runs(
    store: StateStore,
    *,
    message_alive: Callable[[str], bool],
    requeue: Callable[[str], None],
    queued_grace_s: float,
    now: float,
) -> ReconcileReport:
    """Give every run that no worker holds back to the queue, or end it (distributed mode).

    - A run whose lease expired: its worker stopped renewing it, so it died or lost the
      store. If it was INITIALIZING, its engine never started, so it is queued again (up to
      ``MAX_REQUEUES`` times, in case it is the run that kills its workers); RUNNING ends
      SYSTEM_ERROR and CANCELING ends CANCELED.
    - A run QUEUED for longer than ``queued_grace_s`` with no live message (``message_alive``
      is false: none waiting, none delivered recently to a worker): the message was lost (a
      flushed broker, a worker that died holding it, a send that failed) or consumed by a
      worker that could not start the run. It is queued again; a QUEUED run is never ended.

    The Celery task id is the run id and the executor starts a run only by compare-and-set
    from QUEUED, so a second message for a run is harmless: whichever arrives later finds the
    run started and does nothing. Every state change is a compare-and-set from the state
    observed, so a run that moves on in the meantime is left alone.
    """
    report = ReconcileReport()
    for run_id in store.expired_leases():
        record = store.get_run(run_id)
        if record is None or record.state.is_terminal:
            continue
        state = record.state
        if state is State.INITIALIZING and _requeues(record) < MAX_REQUEUES:
            line = (
                f"{_REQUEUED} the worker that was starting the run stopped renewing its lease "
                "before the engine started (it died or lost its connection)"
            )
            if _requeue(store, run_id, State.INITIALIZING, requeue, line):
                report.requeued.append(run_id)
            continue
        target = State.CANCELED if state is State.CANCELING else State.SYSTEM_ERROR
        line = (
            f"the worker executing the run stopped renewing its lease while the run was "
            f"{state}; the worker process died or lost its connection"
        )
        if state is State.INITIALIZING:
            line += f" (the run was queued again {MAX_REQUEUES} times already)"
        if _end(store, run_id, state, target, line):
            (report.cancelled if target is State.CANCELED else report.failed).append(run_id)
    for record in store.list_active():
        if record.state is not State.QUEUED or now - record.created_at < queued_grace_s:
            continue
        if message_alive(record.run_id):
            continue
        line = (
            f"{_REQUEUED} the run's message was no longer in the queue (the broker lost it, "
            "or the worker that took it could not start the run)"
        )
        if _requeue(store, record.run_id, State.QUEUED, requeue, line):
            report.requeued.append(record.run_id)
    return report


#: How often a run whose worker died before its engine started is queued again before it
#: ends SYSTEM_ERROR: a run that kills every worker that starts it must not go round forever.
MAX_REQUEUES = 3
_REQUEUED = "queued again:"


def _starting_fate(record: RunRecord, has_engine: Callable[[RunRecord], bool] | None) -> str | None:
    """Why an INITIALIZING run left by a stopped process cannot be queued again, or ``None``."""
    # The executor records the move to RUNNING before it starts the engine, so an engine
    # recorded for an INITIALIZING run is a leftover of something else; starting the run a
    # second time next to it could make two engines write one run's files.
    if has_engine is not None and has_engine(record):
        return "an engine process was recorded for it, so it was not queued again"
    if _requeues(record) >= MAX_REQUEUES:
        return f"its engine had not started (the run was queued again {MAX_REQUEUES} times already)"
    return None


def _requeues(record: RunRecord) -> int:
    return sum(line.startswith(_REQUEUED) for line in record.system_logs)


def _requeue(
    store: StateStore, run_id: str, state: State, requeue: Callable[[str], None], line: str
) -> bool:
    """Move the run back to QUEUED (a no-op if it is QUEUED) and send its message again."""
    # From QUEUED this is a compare-and-set to the same state: the line is added only if no
    # worker started the run in the meantime.
    update = RunUpdate(append_system_logs=[line])
    if not store.transition(run_id, State.QUEUED, allowed_from=frozenset({state}), update=update):
        return False
    # Sent after the move, so a worker that takes the message finds the run QUEUED. If the
    # send fails, the run is QUEUED without a message, and the next pass sends it again.
    requeue(run_id)
    logger.warning("run queued again by reconcile run_id=%s was=%s", run_id, state)
    return True


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
