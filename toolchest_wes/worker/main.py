"""Entry point for ``celery -A toolchest_wes.worker.main worker``."""

from __future__ import annotations

import logging.config

from toolchest_wes.config import Settings
from toolchest_wes.logconfig import build_logging_config
from toolchest_wes.worker.app import make_celery

settings = Settings()
logging.config.dictConfig(build_logging_config(settings))
app = make_celery(settings)
