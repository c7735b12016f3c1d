"""Entry point for WSGI servers: ``gunicorn toolchest_wes.server.wsgi:app``."""

from __future__ import annotations

from toolchest_wes.config import Settings
from toolchest_wes.server.app import create_app

app = create_app(Settings())
