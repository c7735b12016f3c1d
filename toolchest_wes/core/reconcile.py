"""Reconcile: end the runs whose executor is gone, so no run stays active forever."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from toolchest_wes.core.states import allowed_from
from toolchest_wes.models import State
from toolchest_wes.store.base import RunUpdate, StateStore, iso_now

__all__ = ["ReconcileReport", "recover_after_restart"]

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
        if store.transition(
            run_id,
            target,
            allowed_from=allowed_from(target) & {state},
            update=RunUpdate(end_time=iso_now(), append_system_logs=[line]),
        ):
            (report.cancelled if target is State.CANCELED else report.failed).append(run_id)
            logger.warning("run ended by reconcile run_id=%s was=%s now=%s", run_id, state, target)
    return report
