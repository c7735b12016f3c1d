"""The memory report of a cwltool job, sampled from the tool's own process tree."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
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


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a thread fails, as in a run that has used up its process limit."""

    def no_thread(*args: object, **kwargs: object) -> threading.Thread:
        raise AssertionError("a sampling thread was started")

    monkeypatch.setattr(threading, "Thread", no_thread)


@pytest.mark.usefixtures("no_threads")
def test_a_long_tool_is_sampled_without_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    test_the_tools_tree_is_sampled_and_its_peak_logged(caplog)


@pytest.mark.usefixtures("no_threads")
def test_a_tool_that_ends_within_the_first_second_is_not_sampled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = sampling_process_monitor(_never)
    sproc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"], text=True)
    with caplog.at_level(logging.DEBUG, logger="cwltool"):
        monitor(Job("quick"), sproc)
    assert sproc.returncode == 4
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "Max memory used" in m]
    assert "Could not collect memory usage, job ended before monitoring began." in messages
