"""Gunicorn settings derived from ``Settings``.

Use: ``gunicorn -c python:toolchest_wes.server.gunicorn_conf toolchest_wes.server.wsgi:app``.

The embedded mode runs one worker process: its run pool and engine processes live in that
process, and the SQLite store with startup reconcile assumes a single owner of active runs.
Distributed mode runs ``workers`` processes, which share nothing but Redis and the data
directory. Concurrency within a process comes from threads (the ``gthread`` worker).
"""

from __future__ import annotations

from typing import Any

from toolchest_wes.config import Settings
from toolchest_wes.logconfig import build_logging_config

_settings = Settings()


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


bind = [_bind(_settings.host, _settings.port)]
workers = _settings.workers if _settings.distributed else 1
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


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the engine processes and the run pool when a worker exits."""
    import sys

    wsgi = sys.modules.get("toolchest_wes.server.wsgi")
    if wsgi is not None:  # absent when the app failed to load
        from toolchest_wes.server.app import get_state

        get_state(wsgi.app).close()
