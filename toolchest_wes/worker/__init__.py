"""The Celery side of distributed mode: the app factory and the one task, the reconcile loop,
the heartbeat and the supervisor that keeps Celery running.

A worker process's parts are built by ``toolchest_wes.wiring.parts.build_parts``; the API
reaches the pieces here it also runs (the Celery app's configuration, the reconcile loop)
only through ``toolchest_wes.wiring``, never by importing this package.
"""
