"""The Celery consumer step that the worker's liveness step starts after.

A bootstep names the steps it follows by import path; ``toolchest_wes.worker.heartbeat``'s
``LivenessStep`` follows the consumer's task consumer, whose path,
:data:`TASK_CONSUMER_STEP`, is a module inside Celery's worker. Celery resolves it only when
a worker starts; :func:`verify` resolves it at import of this module.
"""

from __future__ import annotations

from celery import bootsteps
from celery.utils.imports import symbol_by_name

from toolchest_wes.compat.private_api import SupportedRange

__all__ = ["CELERY", "TASK_CONSUMER_STEP", "verify"]

CELERY = SupportedRange("celery", ">=5.4,<6")

#: The consumer step that registers the task consumer, by the path bootsteps ``requires``.
TASK_CONSUMER_STEP = "celery.worker.consumer.tasks:Tasks"


def verify() -> None:
    """Check that :data:`TASK_CONSUMER_STEP` is a bootstep of the installed Celery.

    Raises:
        PrivateApiChangedError: The path does not resolve to a ``StartStopStep``.
    """
    dotted = TASK_CONSUMER_STEP.replace(":", ".")
    try:
        step = symbol_by_name(TASK_CONSUMER_STEP)
    except (ImportError, AttributeError):
        raise CELERY.changed(f"has no {dotted}") from None
    if not (isinstance(step, type) and issubclass(step, bootsteps.StartStopStep)):
        raise CELERY.changed(f"has a {dotted} that is no bootsteps.StartStopStep")


verify()
