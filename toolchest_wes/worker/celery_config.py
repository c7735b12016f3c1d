"""new_celery_app: a Celery app configured from Settings, shared by the API and the workers."""

from __future__ import annotations

from celery import Celery

from toolchest_wes.config import Settings
from toolchest_wes.worker import kombu_transport

__all__ = ["new_celery_app", "queue_name"]


def queue_name(settings: Settings) -> str:
    """The queue of run messages; named after the key prefix so deployments can share Redis."""
    return f"{settings.redis_prefix}.runs"


def new_celery_app(settings: Settings) -> Celery:
    """A Celery app on the settings' broker, with no tasks registered.

    Raises:
        ValueError: No broker configured (neither ``broker_url`` nor ``redis_url``).
    """
    broker = settings.effective_broker_url
    if not broker:
        raise ValueError("distributed mode needs --redis (TOOLCHEST_WES_REDIS_URL)")
    app = Celery("toolchest_wes", broker=broker, backend=settings.redis_url or broker)
    app.conf.update(
        task_default_queue=queue_name(settings),
        # A run's message is acknowledged only after execute_run returns, and a worker that
        # dies mid-run gives it back; the executor's CAS from QUEUED makes a redelivery of a
        # started run a no-op, and the reconcile loop ends runs whose worker died.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Redis hands an unacknowledged message to another worker after this long, so it
        # must be longer than the longest run, or long runs would be delivered twice.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        # Reconnect for as long as the broker is away; the default gives up after 100
        # attempts (about three quarters of an hour) and ends the worker.
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    if broker.startswith("redis://"):
        # kombu's Redis transport with a fix that keeps a lost connection from ending the
        # worker (celery/kombu#970; the module docstring explains). rediss:// keeps kombu's
        # own, whose TLS defaults are chosen by the URL scheme's name.
        app.conf.broker_transport = kombu_transport.TRANSPORT
    return app
