"""Entry point for ``celery -A toolchest_wes.worker.main worker``."""

from __future__ import annotations

import logging.config

from toolchest_wes.compat import verify_all
from toolchest_wes.config import Settings
from toolchest_wes.logconfig import build_logging_config
from toolchest_wes.wiring.sandbox import check_sandbox
from toolchest_wes.worker.app import make_celery

settings = Settings()
logging.config.dictConfig(build_logging_config(settings))
# Before Celery takes any run: a sandbox asked for that cannot work, or a library whose
# internals changed (toolchest_wes.compat), stops the worker here.
check_sandbox(settings)
verify_all()
app = make_celery(settings)
