"""The logging configuration, applied only by entry points."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from toolchest_wes.config import Settings

__all__ = ["JsonFormatter", "build_logging_config"]

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, message, and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool)) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def build_logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: everything to stderr at ``settings.log_level``."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if settings.log_json
        else {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
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
