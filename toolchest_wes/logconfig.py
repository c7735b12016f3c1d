"""The logging configuration, applied only by entry points."""

from __future__ import annotations

from typing import Any

from toolchest_wes.config import Settings

__all__ = ["build_logging_config"]


def build_logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: everything to stderr at ``settings.log_level``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": settings.log_level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            # connexion logs every validation detail at INFO; keep the server log readable.
            "connexion": {"level": "WARNING"},
            "openapi_spec_validator": {"level": "WARNING"},
        },
    }
