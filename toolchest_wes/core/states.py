"""The state rules: the one table of allowed transitions, and the groups of states.

Every group of states the server reasons about is named here, once: stores, the executor and
the reconcile loop take them from this module. ``TERMINAL_STATES`` itself is defined beside
``State`` in ``toolchest_wes.models``, because the client needs ``State.is_terminal`` too and
must not import ``core``; it is re-exported here so that server code finds every group in one
place.
"""

from __future__ import annotations

from toolchest_wes.models import TERMINAL_STATES, State

__all__ = ["ACTIVE_STATES", "LEASED_STATES", "TERMINAL_STATES", "TRANSITIONS", "allowed_from"]

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

#: Non-terminal states: a run in one of these still owes the user an ending.
ACTIVE_STATES: frozenset[State] = frozenset(State) - TERMINAL_STATES

#: States in which an executor holds the run and must keep its lease fresh; a run in one of
#: them whose lease ran out lost its executor (see ``StateStore.expired_leases``).
LEASED_STATES: frozenset[State] = frozenset({State.INITIALIZING, State.RUNNING, State.CANCELING})


def allowed_from(to: State) -> frozenset[State]:
    """Return the states from which a run may move to ``to``."""
    return frozenset(src for src, targets in TRANSITIONS.items() if to in targets)
