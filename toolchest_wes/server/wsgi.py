"""Entry point for WSGI servers: ``gunicorn toolchest_wes.server.wsgi:app``."""

from __future__ import annotations

import os

from toolchest_wes.config import Settings
from toolchest_wes.server.app import create_app

# Loaded in each worker after the fork, so the parent is the arbiter, which starts a new
# worker when this one dies: the engines this worker starts outlive it while the arbiter
# lives, and the worker that executes runs next adopts their runs (embedded mode, where the
# workers share one run pool, held by one of them at a time).
app = create_app(Settings(), engine_keeper=os.getppid(), shared_pool=True)
