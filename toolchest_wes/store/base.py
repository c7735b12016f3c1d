"""The state-store contract: durable run records with atomic state transitions.

Every store (the embedded SQLite store, the Redis store) implements :class:`StateStore` and
passes the one contract suite in ``tests/contract/test_state_store.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from toolchest_wes.models import RunRequest, RunSummary, State

__all__ = [
    "IdempotencyClaim",
    "IdempotencyKeyReusedError",
    "InvalidPageTokenError",
    "RunExistsError",
    "RunPage",
    "RunRecord",
    "RunUpdate",
    "StateStore",
    "StoreError",
    "StoreUnavailableError",
    "iso_now",
    "iso_time",
]


def iso_now() -> str:
    """The current UTC time in the spec's ISO 8601 form, ``%Y-%m-%dT%H:%M:%SZ``."""
    return iso_time(time.time())


def iso_time(epoch_s: float) -> str:
    """``epoch_s`` (seconds since the epoch) in the form of :func:`iso_now`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


class StoreError(Exception):
    """Base of the store errors."""


class RunExistsError(StoreError):
    """``create_run`` was given a run id that is already stored."""


class IdempotencyKeyReusedError(StoreError):
    """``create_run`` was given an idempotency key that its owner used for another request.

    Attributes:
        run_id: The run the key already stands for.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(f"the idempotency key already stands for run {run_id}")
        self.run_id = run_id


class InvalidPageTokenError(StoreError, ValueError):
    """A page token that this store did not issue (or that was altered)."""


class StoreUnavailableError(StoreError):
    """The backing database does not answer."""


@dataclass
class RunRecord:
    """Everything the server keeps about one run.

    Attributes:
        run_id: The run's id; also the Celery task id in distributed mode.
        state: The current state.
        request: The request as accepted (JSON fields decoded).
        created_at: Submission time, seconds since the epoch; orders listings.
        engine_args: Extra engine flags accepted from ``workflow_engine_parameters``.
        start_time: When the run left QUEUED (ISO 8601).
        end_time: When the run reached a terminal state (ISO 8601).
        exit_code: The engine's exit code.
        cmd: The engine command line.
        system_logs: Lines the server wants the user to see (why a run failed, what was ignored).
        outputs: The CWL output object, with ``file://`` locations in the run directory.
        output_files: One ``{"path", "size", "checksum"}`` per output file, paths relative to
            the run's output root.
        owner: The user who submitted the run (``None`` without authentication).
        outputs_removed_at: When the retention sweep removed the run's outputs, work files
            and attachments (ISO 8601); ``None`` while they are kept.
    """

    run_id: str
    state: State
    request: RunRequest
    created_at: float
    engine_args: list[str] = field(default_factory=list)
    start_time: str | None = None
    end_time: str | None = None
    exit_code: int | None = None
    cmd: list[str] | None = None
    system_logs: list[str] = field(default_factory=list)
    outputs: dict[str, Any] | None = None
    output_files: list[dict[str, Any]] | None = None
    owner: str | None = None
    outputs_removed_at: str | None = None

    def summary(self) -> RunSummary:
        """This record as a ``RunSummary`` listing item."""
        return RunSummary(
            run_id=self.run_id,
            state=self.state,
            start_time=self.start_time,
            end_time=self.end_time,
            tags=dict(self.request.tags),
        )


@dataclass(frozen=True)
class IdempotencyClaim:
    """An idempotency key that :meth:`StateStore.create_run` stores with the run, atomically.

    A key belongs to the run's owner (``RunRecord.owner``): two users never share one.

    Attributes:
        key: The client's key (the ``Idempotency-Key`` header).
        fingerprint: What identifies the request, so that the key cannot be reused for
            another one.
        ttl_s: How long the key stands for the run, in seconds.
    """

    key: str
    fingerprint: str
    ttl_s: float


@dataclass
class RunUpdate:
    """Fields to change on a record; ``None`` leaves a field as it is.

    ``append_system_logs`` lines are added after the existing ones.
    """

    start_time: str | None = None
    end_time: str | None = None
    exit_code: int | None = None
    cmd: list[str] | None = None
    outputs: dict[str, Any] | None = None
    output_files: list[dict[str, Any]] | None = None
    append_system_logs: list[str] = field(default_factory=list)


@dataclass
class RunPage:
    """One page of a listing, newest first; ``next_page_token`` is ``None`` on the last page."""

    runs: list[RunSummary]
    next_page_token: str | None


@runtime_checkable
class StateStore(Protocol):
    """Durable run records. All methods are safe to call from several threads at once.

    The methods come in groups by role: the runs themselves (records, atomic transitions,
    listings and counts); leases, by which an executor shows it still holds a run; ownership;
    retention and deletion; and the store's health and shutdown.
    """

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, record: RunRecord, *, claim: IdempotencyClaim | None = None) -> str:
        """Store a new run; return the id of the run that ``claim`` stands for.

        With a ``claim`` whose key the owner used within its ``ttl_s`` for the same
        fingerprint, nothing is stored and the id of that earlier run is returned. The check
        and the creation are one atomic step, so concurrent creates with one key store one
        run. Without a claim, or with a new key, the run is stored and ``record.run_id`` is
        returned.

        Raises:
            RunExistsError: The run id is taken.
            IdempotencyKeyReusedError: The key stands for a request with another fingerprint.
        """
        ...

    def find_claim(self, owner: str | None, key: str) -> tuple[str, str] | None:
        """The ``(fingerprint, run_id)`` an unexpired idempotency key of ``owner`` stands
        for, or ``None``."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """The whole record, or ``None``."""
        ...

    def get_state(self, run_id: str) -> State | None:
        """Only the state (the cheap path behind ``GET /runs/{id}/status``), or ``None``."""
        ...

    def wait_for_state(
        self, run_id: str, done: Callable[[State | None], bool], timeout_s: float
    ) -> State | None:
        """The run's state (``None``: no such run) as soon as ``done`` holds for it, or
        after ``timeout_s`` seconds, whichever comes first (``GET /runs/{id}/status?wait=``).

        A change made through this store object, or one its change feed brings, ends the
        wait at once; any other is seen within a quarter of a second. A waiting thread
        costs no CPU in between.
        """
        ...

    def list_runs(
        self,
        *,
        page_size: int,
        page_token: str | None = None,
        states: frozenset[State] | None = None,
        tag: tuple[str, str] | None = None,
        owner: str | None = None,
    ) -> RunPage:
        """Runs newest first, by keyset pagination.

        The token is opaque and encodes the position after the last item returned, so pages
        stay stable while new runs arrive: a new run never shifts a later page.

        Args:
            page_size: The most items to return (at least 1).
            page_token: ``next_page_token`` of the previous page, or ``None`` for the first.
            states: Only runs in one of these states (``None``: any state; empty: none).
            tag: Only runs whose tags have this ``(key, value)``.
            owner: Only runs of this user (``None``: everyone's).

        Raises:
            InvalidPageTokenError: The token was not issued by this store.
        """
        ...

    def transition(
        self,
        run_id: str,
        to: State,
        *,
        allowed_from: frozenset[State],
        update: RunUpdate | None = None,
        lease_ttl_s: float | None = None,
    ) -> bool:
        """Atomically move the run to ``to`` if its state is in ``allowed_from``.

        ``update`` is applied in the same atomic step, and only if the transition happens;
        so is a lease of ``lease_ttl_s`` seconds (as :meth:`touch_lease` sets), if given and
        ``to`` is not terminal. Returns whether it happened; ``False`` for an unknown run.
        """
        ...

    def update_run(self, run_id: str, update: RunUpdate) -> None:
        """Change fields other than the state."""
        ...

    def count_by_state(self) -> dict[State, int]:
        """How many runs are in each state (states with no runs may be missing)."""
        ...

    def count_active(self, owner: str | None = None) -> int:
        """How many runs are not in a terminal state: ``owner``'s, or everyone's for ``None``."""
        ...

    def list_active(self) -> list[RunRecord]:
        """Every run that is not in a terminal state, oldest first."""
        ...

    # -- leases ------------------------------------------------------------------------------

    def touch_lease(self, run_id: str, ttl_s: float) -> None:
        """Record that the run's executor is alive for the next ``ttl_s`` seconds."""
        ...

    def expired_leases(self) -> list[str]:
        """Ids of runs in a leased state (``models.LEASED_STATES``) whose lease ran out."""
        ...

    # -- ownership ---------------------------------------------------------------------------

    def get_owner(self, run_id: str) -> str | None:
        """The user who owns the run; ``None`` for an unknown run or a run without owner.

        The owner is set once, by :meth:`create_run` (``RunRecord.owner``), and never changes;
        callers may cache it.
        """
        ...

    # -- retention and deletion --------------------------------------------------------------

    def outputs_due(self, ended_before_s: float, *, limit: int) -> list[str]:
        """Runs whose outputs the retention sweep should remove now, oldest ending first.

        These are runs that reached a terminal state through :meth:`transition` more than
        ``ended_before_s`` seconds ago (by the store's clock) and whose outputs are not marked
        removed. Costs O(runs returned), not O(runs stored): each store keeps an index of the
        runs whose outputs are still kept.
        """
        ...

    def mark_outputs_removed(self, run_id: str, removed_at: str) -> bool:
        """Record that the run's outputs were removed at ``removed_at`` (ISO 8601).

        The run leaves the index behind :meth:`outputs_due`. ``False`` for an unknown run.
        """
        ...

    def delete_run(self, run_id: str) -> State | None:
        """Delete a finished run's record, atomically, only if its state is terminal.

        The record leaves every listing, filter and count. Returns the run's state when the
        call ran: a terminal state means the run was deleted; an active state means nothing
        changed; ``None`` means there is no such run.
        """
        ...

    # -- health and shutdown -----------------------------------------------------------------

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` unless the store answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
