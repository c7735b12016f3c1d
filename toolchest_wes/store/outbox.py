"""The webhook outbox contract: what each run asked to be told, and deliveries not yet made.

The outbox lives in the state store's database (the SQLite file, or Redis under the store's
prefix), so deliveries survive a restart of every process. ``store/sqlite_outbox.py`` and
``store/redis_outbox.py`` implement :class:`Outbox`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from toolchest_wes.models import State

__all__ = ["Delivery", "Outbox", "RunHooks"]


@dataclass
class RunHooks:
    """What a run's events need that its record does not hold, kept from submit on.

    Attributes:
        run_id: The run.
        owner: The run's owner (``None`` without authentication).
        base_url: The server's URL as the submitter reached it (or the public URL).
        notify_url: The run's own webhook (its ``toolchest_wes.notify_url`` tag), or ``None``.
        notify_on: ``all`` or ``terminal``: which of the run's events go to ``notify_url``.
        last_state: The run's state before the event being built (``None`` for its creation).
        sequence: How many events were recorded for the run before it.
    """

    run_id: str
    owner: str | None
    base_url: str
    notify_url: str | None = None
    notify_on: str = "terminal"
    last_state: State | None = None
    sequence: int = 0


@dataclass
class Delivery:
    """One event on its way to one receiver.

    Attributes:
        delivery_id: Unique per receiver and event.
        event_id: The event's id, the same for every receiver (for de-duplication).
        url: Where it is sent.
        subscriber: Which secret signs it: ``""`` for the server's webhook secret (a run's
            ``notify_url``), else the subscription's URL.
        body: The JSON body, sent as is on every attempt.
        first_at: When it was queued (seconds since the epoch): the retry window starts here.
        attempts: Failed attempts so far.
    """

    delivery_id: str
    event_id: str
    url: str
    subscriber: str
    body: str
    first_at: float
    attempts: int = 0


#: Given a run's hooks (with the previous state and sequence), its new state and when it
#: changed (seconds since the epoch), the deliveries of its event.
Builder = Callable[[RunHooks, State, float], list[Delivery]]


class Outbox(Protocol):
    """Durable per-run webhook settings and a queue of deliveries; thread- and process-safe.

    The store records each state change of a run with hooks in its own transaction (the
    SQLite outbox's triggers on the runs table; the Redis store's transition script), so no
    stored change lacks its event. :meth:`drain` turns recorded events into deliveries. An
    outbox whose ``records_creations`` is false is given each new run by
    :meth:`record_created` just after the store created it.
    """

    #: Whether a run's creation is recorded in the same transaction as it happens.
    records_creations: bool

    def register(self, hooks: RunHooks) -> None:
        """Keep ``hooks`` for the run (before the run is created)."""
        ...

    def record_created(self, run_id: str, state: State, at: float) -> bool:
        """Record the event of the run's creation in ``state`` at ``at``.

        Nothing is recorded for a run without hooks, or one with an event recorded already
        (its first transition records a creation not recorded before it). Returns whether
        the event was recorded.
        """
        ...

    def drain(self, build: Builder, limit: int = 100) -> int:
        """Turn up to ``limit`` recorded events into deliveries, oldest first.

        ``build`` sees the run's hooks with the state before the event and the number of
        events before it. A run's terminal event is its last: its hooks go with it. Returns
        how many events were taken.
        """
        ...

    def claim_due(self, now: float, limit: int, hold_s: float) -> list[Delivery]:
        """Deliveries due by ``now``, oldest first, each held from others for ``hold_s``.

        A delivery is not due while an earlier one of its run to the same URL is queued: each
        receiver gets a run's events one at a time, in order.
        """
        ...

    def done(self, delivery_id: str) -> None:
        """Remove a delivery (sent, or given up)."""
        ...

    def retry_at(self, delivery_id: str, at: float, attempts: int) -> None:
        """Reschedule a failed delivery."""
        ...

    def forget(self, run_id: str) -> None:
        """Drop the run's hooks (the run was deleted); its queued deliveries stay."""
        ...

    def pending(self) -> int:
        """How many deliveries are queued."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
