"""The distributed mode's own parts: the Celery runner, the reconcile loop and worker heartbeats.

API processes send runs to the broker through a ``CeleryTaskRunner`` and read the workers'
heartbeats through a ``WorkerMonitor``; Celery workers send heartbeats (``Heartbeat``). Both
run the reconcile loop (``Reconciler``, which also sweeps expired outputs): a lock in Redis
lets one pass happen per interval across the deployment, so lost runs end even while no
worker is left. Every Redis client here gets the server's timeouts (``store.redis_store.
connect``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from toolchest_wes.config import Settings
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.runner.celery_runner import CeleryTaskRunner
from toolchest_wes.server.workers import WorkerMonitor
from toolchest_wes.store.base import StateStore
from toolchest_wes.store.redis_store import connect
from toolchest_wes.store.redis_workers import WorkerAnnouncer
from toolchest_wes.worker.celery_config import new_celery_app
from toolchest_wes.worker.heartbeat import ConsumerLiveness, Heartbeat
from toolchest_wes.worker.reconciler import Reconciler

__all__ = ["WorkerIdentity", "celery_runner", "heartbeat", "reconciler", "worker_monitor"]


@dataclass(frozen=True)
class WorkerIdentity:
    """What a Celery worker process knows of itself that its parts need.

    Attributes:
        name: The worker's name in the heartbeats (its Celery node name).
        liveness: Whether its consumer takes runs; the heartbeat reports it.
        requeue: Sends a run's message again, through the worker's own Celery app.
    """

    name: str
    liveness: ConsumerLiveness
    requeue: Callable[[str], None]


def celery_runner(settings: Settings) -> CeleryTaskRunner:
    """A runner that sends runs to the settings' broker."""
    return CeleryTaskRunner(new_celery_app(settings))


def reconciler(
    settings: Settings,
    store: StateStore,
    *,
    requeue: Callable[[str], None],
    files: RunFiles | None = None,
) -> Reconciler:
    """The reconcile loop on the settings' Redis, not started; its retention sweep removes
    stored files too when ``files`` keeps them."""
    return Reconciler(settings, store, connect(_redis_url(settings)), requeue=requeue, files=files)


def worker_monitor(settings: Settings) -> WorkerMonitor:
    """The API's cached view of the workers' heartbeats."""
    return WorkerMonitor(_announcer(settings))


def heartbeat(settings: Settings, registry: EngineRegistry, worker: WorkerIdentity) -> Heartbeat:
    """The worker's heartbeat thread, not started; it announces the registry's engines."""
    engines = {engine.name: engine.version() for engine in registry.engines}
    return Heartbeat(
        _announcer(settings),
        worker.name,
        engines,
        worker.liveness,
        settings.worker_heartbeat_interval_s,
    )


def _announcer(settings: Settings) -> WorkerAnnouncer:
    return WorkerAnnouncer(
        connect(_redis_url(settings), decode_responses=True),
        settings.redis_prefix,
        stale_after_s=settings.worker_heartbeat_timeout_s,
    )


def _redis_url(settings: Settings) -> str:
    if settings.redis_url is None:
        raise ValueError("distributed mode needs --redis (TOOLCHEST_WES_REDIS_URL)")
    return settings.redis_url
