from __future__ import annotations

import json
import logging

from toolchest_wes.config import Settings
from toolchest_wes.logconfig import JsonFormatter, build_logging_config


def test_json_formatter_writes_one_object_with_extras() -> None:
    record = logging.LogRecord(
        "toolchest_wes.x", logging.WARNING, __file__, 1, "run %s", ("r1",), None
    )
    record.run_id = "r1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "run r1"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "toolchest_wes.x"
    assert entry["run_id"] == "r1"
    assert entry["time"].endswith("Z")


def test_settings_choose_the_formatter() -> None:
    assert (
        build_logging_config(Settings(log_json=True))["formatters"]["default"]["()"]
        is JsonFormatter
    )
    assert "format" in build_logging_config(Settings())["formatters"]["default"]
