"""What the executor works with, and how long it waits for the parts that do not answer.

``ExecutorDeps`` is built once per process by the wiring code and handed to ``execute_run``
and ``adopt_run``. A store or a storage that does not answer (a restarting Redis, a locked
SQLite file, a bucket that restarts) is waited out for a while, here, before a run gives up.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from toolchest_wes.core.leases import LeaseKeeper
from toolchest_wes.core.resources import ResourcePolicy
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.engines.engine_record import remove_record
from toolchest_wes.storage.base import StorageUnavailableError
from toolchest_wes.store.base import RunRecord, StateStore, StoreUnavailableError

__all__ = ["ExecutorDeps", "patiently", "with_storage_patience"]

logger = logging.getLogger(__name__)

#: How long a run waits for an unreachable store to record its start or its end. A
#: restarting Redis or a locked SQLite file is back well within it; past it the run is left to
#: the reconcile loop, which queues it again or ends it once its message or lease is gone.
_STORE_PATIENCE_S = 60.0
_STORE_RETRY_S = 0.5
#: How long a run waits for an unreachable storage to give its files or take its results.
_STORAGE_PATIENCE_S = 30.0
_STORAGE_RETRY_S = 2.0

_T = TypeVar("_T")


@dataclass
class ExecutorDeps:
    """What ``execute_run`` and ``adopt_run`` need, built once per process by the wiring code."""

    store: StateStore
    workspace: Workspace
    engine_for: Callable[[RunRecord], WorkflowEngine]
    launcher: Launcher
    poll_interval_s: float = 0.2
    cancel_grace_s: float = 1.0
    lease_ttl_s: float = 30.0
    resources: ResourcePolicy = field(default_factory=ResourcePolicy)
    #: Where run files are kept when the data folder is not shared (``--storage``); the
    #: workspace is then this process's scratch space. ``None``: the files stay in place.
    files: RunFiles | None = None
    #: How often a running run's logs are uploaded to ``files``.
    log_upload_interval_s: float = 2.0
    #: Where each run's engine process is recorded while it runs, for a process that takes
    #: over after this one dies (``toolchest_wes.engines.engine_record``); ``None``: nowhere.
    engine_records: Path | None = None
    #: Whether the leases of the runs are renewed: only a reconcile loop reads them, which
    #: the embedded server has not (``toolchest_wes.core.leases``).
    renew_leases: bool = True
    #: Renews the lease of every run this process holds (built from ``store``,
    #: ``lease_ttl_s`` and ``renew_leases``).
    leases: LeaseKeeper = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.leases = LeaseKeeper(self.store, self.lease_ttl_s, renew=self.renew_leases)

    def engine_record(self, run_id: str) -> Path | None:
        """Where the engine of ``run_id`` is recorded, if engines are recorded."""
        return None if self.engine_records is None else self.engine_records / f"{run_id}.json"

    def forget_engine(self, run_id: str) -> None:
        """Remove the run's engine record: its engine has ended, or was never started."""
        path = self.engine_record(run_id)
        if path is not None:
            with contextlib.suppress(OSError):
                remove_record(path)


def patiently(call: Callable[[], _T], run_id: str) -> _T:
    """``call()``, retried while the store is unavailable, for up to ``_STORE_PATIENCE_S``.

    Only for idempotent calls or compare-and-set transitions: a retried transition that had
    been applied (its answer lost) fails its compare-and-set, which the caller handles like
    any lost race.
    """
    deadline = time.monotonic() + _STORE_PATIENCE_S
    while True:
        try:
            return call()
        except StoreUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise
            logger.warning("store unavailable, retrying run_id=%s: %s", run_id, exc)
            time.sleep(_STORE_RETRY_S)


def with_storage_patience(deps: ExecutorDeps, run_id: str, call: Callable[[], None]) -> None:
    """``call()``, retried for ``_STORAGE_PATIENCE_S`` while the storage does not answer, so
    that a bucket that restarts costs no run (its lease is kept by ``deps.leases``)."""
    deadline = time.monotonic() + _STORAGE_PATIENCE_S
    while True:
        try:
            call()
            return
        except StorageUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise
            logger.warning("storage unavailable, retrying run_id=%s: %s", run_id, exc)
            time.sleep(_STORAGE_RETRY_S)
