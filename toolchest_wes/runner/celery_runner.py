"""CeleryTaskRunner: send runs to Celery workers by task name; the API never imports tasks."""

from __future__ import annotations

import logging

from celery import Celery

__all__ = ["EXECUTE_RUN_TASK", "CeleryTaskRunner"]

logger = logging.getLogger(__name__)

#: The one task. Its only argument is the run id, which is also the Celery task id.
EXECUTE_RUN_TASK = "toolchest_wes.execute_run"


class CeleryTaskRunner:
    """Queues ``execute_run(run_id)`` for a Celery worker, with ``task_id = run_id``."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def submit(self, run_id: str) -> None:
        """Send the run's message to the broker."""
        # ignore_result: send_task does not read task_ignore_result, and without it Celery's
        # Redis result backend subscribes this process to a channel per task, waiting for a
        # result that never comes; the subscriptions pile up in this process and in Redis for
        # as long as it lives (celery/celery#3808), and are all sent again at a reconnect.
        self.app.send_task(EXECUTE_RUN_TASK, args=[run_id], task_id=run_id, ignore_result=True)

    def cancel(self, run_id: str) -> None:
        """Revoke the message of a queued run, so a worker that receives it drops it.

        Best effort: a worker started later does not know the revocation, which is why the
        executor also refuses to start a run that is no longer QUEUED.
        """
        try:
            self.app.control.revoke(run_id)
        except Exception:  # the store already says CANCELED; the revoke only saves work
            logger.warning("could not broadcast revoke run_id=%s", run_id, exc_info=True)

    def close(self) -> None:
        """Release the broker connections."""
        self.app.close()
