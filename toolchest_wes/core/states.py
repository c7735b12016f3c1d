"""The state rules: the one table of allowed transitions.

The groups of states (``TERMINAL_STATES``, ``ACTIVE_STATES``, ``LEASED_STATES``) are defined
once, beside ``State`` in ``toolchest_wes.models``, so that the stores and the client use them
without importing ``core``.
"""

from __future__ import annotations

from toolchest_wes.models import State

__all__ = ["TRANSITIONS", "allowed_from"]

#: Where each state may go next. Terminal states have no entry: the first terminal state wins.
#: CANCELING may still end COMPLETE or in an error because the engine can finish before the
#: kill lands; whichever of the two the store records first is final.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset(
        {State.INITIALIZING, State.CANCELING, State.CANCELED, State.SYSTEM_ERROR}
    ),
    # Back to QUEUED only from the reconcile loop, when the worker that was starting the run
    # died before its engine started.
    State.INITIALIZING: frozenset(
        {State.RUNNING, State.CANCELING, State.SYSTEM_ERROR, State.EXECUTOR_ERROR, State.QUEUED}
    ),
    State.RUNNING: frozenset(
        {
            State.COMPLETE,
            State.EXECUTOR_ERROR,
            State.SYSTEM_ERROR,
            State.CANCELING,
            State.PREEMPTED,
        }
    ),
    State.CANCELING: frozenset(
        {State.CANCELED, State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR}
    ),
    State.PAUSED: frozenset({State.RUNNING, State.CANCELING, State.SYSTEM_ERROR}),
    State.PREEMPTED: frozenset({State.QUEUED, State.CANCELED, State.SYSTEM_ERROR}),
    State.UNKNOWN: frozenset({State.SYSTEM_ERROR}),
}


def allowed_from(to: State) -> frozenset[State]:
    """Return the states from which a run may move to ``to``."""
    return frozenset(src for src, targets in TRANSITIONS.items() if to in targets)
