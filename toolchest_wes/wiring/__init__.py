"""Wiring: the one place that picks the adapters of each mode and builds them from ``Settings``.

Entry points build a ``Settings`` and call in here; ``core`` and the adapters never do.

- ``parts``: :func:`~toolchest_wes.wiring.parts.build_parts` builds every part one process
  needs for its role (API, Celery worker, one-shot command) in the settings' mode, and
  ``Parts.start``/``Parts.close`` start and stop its background jobs.
- ``embedded``: the run pool inside the API process, restart recovery, the retention loop.
- ``distributed``: the Celery runner, the reconcile loop, the workers' heartbeats.
- ``engines``: cwltool, its launcher and what ``execute_run`` needs.
- ``sandbox``: the runs' sandbox, checked before anything starts.

The submodules are imported one by one (this module imports none of them), so that checking
the sandbox, as the CLI does before it starts gunicorn or Celery, imports no Celery or Redis.
"""
