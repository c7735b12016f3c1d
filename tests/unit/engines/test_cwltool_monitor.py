"""The memory report of a cwltool job, sampled from the tool's own process tree."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from toolchest_wes.engines.cwltool_monitor import resident_tree_bytes, sampling_process_monitor


@dataclass
class Job:
    name: str


def _never(self: object, sproc: subprocess.Popen[str]) -> None:
    raise AssertionError("cwltool's own monitor was called")


# A tool whose child holds 64 MiB for a while, then fails.
_TOOL = """
import subprocess, sys
child = "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(2.5)"
subprocess.run([sys.executable, "-c", child], check=True)
raise SystemExit(3)
"""


def test_the_tools_tree_is_sampled_and_its_peak_logged(caplog: pytest.LogCaptureFixture) -> None:
    monitor = sampling_process_monitor(_never)
    sproc = subprocess.Popen([sys.executable, "-c", _TOOL], text=True)
    with caplog.at_level(logging.INFO, logger="cwltool"):
        monitor(Job("big"), sproc)
    assert sproc.returncode == 3
    (line,) = [r.getMessage() for r in caplog.records if "Max memory used" in r.getMessage()]
    assert line.startswith("[job big] Max memory used: ")
    assert int(line.rsplit(" ", 1)[1].removesuffix("MiB")) >= 64


def test_the_tree_of_this_process_includes_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alone = resident_tree_bytes(child.pid)
        total = resident_tree_bytes(os.getpid())
        assert alone is not None and total is not None and total > alone > 0
    finally:
        child.kill()
        child.wait()
    assert resident_tree_bytes(child.pid) is None
