"""Gunicorn settings derived from ``Settings``.

Use: ``gunicorn -c python:toolchest_wes.server.gunicorn_conf toolchest_wes.server.wsgi:app``.

Both modes run ``workers`` processes. In embedded mode they share the SQLite file, and one of
them at a time also holds the run pool and its engine processes (``wiring.embedded``); in
distributed mode they share nothing but Redis and the data directory. Concurrency within a
process comes from threads (the ``gthread`` worker).

The workers of one server add up their Prometheus metrics through files in one directory,
``PROMETHEUS_MULTIPROC_DIR`` (see ``toolchest_wes.server.metrics``), which the hooks below
prepare in the arbiter and clean up after the workers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from toolchest_wes.config import Settings
from toolchest_wes.logconfig import build_logging_config

_settings = Settings()


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


bind = [_bind(_settings.host, _settings.port)]
workers = _settings.workers
worker_class = "gthread"
threads = _settings.threads
# Uploads and zip downloads can be large and slow; the gthread worker keeps serving other
# requests meanwhile, so the per-request timeout only guards against a hung worker.
timeout = 120
graceful_timeout = 10
keepalive = 5
logconfig_dict = build_logging_config(_settings)
proc_name = "toolchest-wes"
# gunicorn's control socket lives at one fixed path per user, which two servers on one
# machine would fight over; nothing here uses it.
control_socket_disable = True

_METRICS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
# The directory on_starting made, removed on exit; one the operator named is left in place.
_own_metrics_dir: str | None = None


def on_starting(server: Any) -> None:
    """Give the workers an empty metrics directory in the environment they inherit.

    A hook rather than module code, so importing this module (as tests do) has no effects.
    prometheus_client reads the variable when a worker first imports it, after this has run;
    preloading the app (``--preload``) would import it before, in the arbiter.
    """
    global _own_metrics_dir
    named = os.environ.get(_METRICS_DIR_VAR)
    if not named:
        _own_metrics_dir = tempfile.mkdtemp(prefix="toolchest-wes-metrics-")
        os.environ[_METRICS_DIR_VAR] = _own_metrics_dir
        return
    # Files left by an earlier server would be added to this one's counts. Only the metric
    # files go, in case the variable names a directory that holds anything else.
    path = Path(named)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges; its counters stay in the sums, as counters must."""
    # Imported here, not at the top, so that the arbiter never imports prometheus_client
    # before on_starting has set the variable it reads at import.
    from prometheus_client import multiprocess

    if os.environ.get(_METRICS_DIR_VAR):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the metrics directory on_starting made."""
    if _own_metrics_dir is not None:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)


def worker_abort(worker: Any) -> None:
    """Exit at once, as a killed worker would, when gunicorn aborts a worker (SIGABRT).

    gunicorn aborts a worker that missed its heartbeat for ``timeout`` seconds (a machine
    so loaded that the worker's main thread did not get to run). Exiting normally would run
    ``worker_exit``, which stops every engine process; exiting at once leaves them to the
    zygote, which keeps them while the arbiter lives, and the next worker adopts their runs.
    """
    import logging

    logging.getLogger(__name__).error(
        "worker aborted pid=%s; its engine processes are left for the next worker", worker.pid
    )
    os._exit(1)


def post_worker_init(worker: Any) -> None:
    """Answer the held status requests (``?wait=``) as soon as the worker is told to stop,
    and take no run pool over from then on.

    A graceful stop (SIGTERM) lets the requests in progress finish for up to
    ``graceful_timeout``; a status request may be holding its answer for up to 30 s, so the
    worker releases them first, and they answer the state they see then. In embedded mode the
    worker that holds the pool may stop first: the others must not take it over only to
    start the waiting runs and stop them again.
    """
    import signal

    previous = signal.getsignal(signal.SIGTERM)

    def release_then_stop(signum: int, frame: Any) -> None:
        state = _app_state()
        state.parts.retire()
        state.service.release_waits()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, release_then_stop)


def _app_state() -> Any:
    """The ``AppState`` of the worker's app (its wsgi module is loaded by then)."""
    import sys

    from toolchest_wes.server.app import get_state

    return get_state(sys.modules["toolchest_wes.server.wsgi"].app)


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the engine processes and the run pool when a worker exits."""
    import sys

    if "toolchest_wes.server.wsgi" in sys.modules:  # absent when the app failed to load
        _app_state().close()
