"""The end of a test run says how much of the package it covered, and where it falls short.

pytest-cov measures every run (``addopts`` in pyproject.toml) and combines the data of the
processes the tests started; its own table is switched off (``--cov-report=``) because it would
list every module. This prints two things instead: the total coverage of statements and
branches, and each module under ``FLOOR`` percent, lowest first. ``--no-cov`` switches both off.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from coverage.exceptions import CoverageWarning

__all__ = ["FLOOR"]

#: Modules covered less than this (percent of statements and branches) are named.
FLOOR = 80.0

# What coverage says of a data file it cannot read (it is empty, half written or truncated).
_UNREADABLE = "(Data file .* isn't a coverage data file|Couldn't use data file)"


def _measured(config: pytest.Config) -> Any:
    """The combined ``coverage.Coverage`` of this run, or None when nothing was measured."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    return getattr(controller, "cov", None)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Run the tests, then let pytest-cov combine the data without one expected warning."""
    # A process that a test kills while it writes its data leaves a file that coverage cannot
    # read. Combining skips it; that process's data is lost either way. Other warnings of
    # coverage are shown once, as pytest-cov would have it, rather than made errors by the
    # "error" filter of pyproject.toml.
    with warnings.catch_warnings():
        warnings.simplefilter("once", CoverageWarning)
        warnings.filterwarnings("ignore", _UNREADABLE, CoverageWarning)
        return (yield)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the total, then every module under ``FLOOR``."""
    cov = _measured(config)
    if cov is None or not cov.get_data().measured_files():
        return
    # The JSON report is the public way to per-module numbers that count branches.
    folder = tempfile.mkdtemp(prefix="toolchest-wes-coverage-")
    try:
        report = Path(folder) / "coverage.json"
        cov.json_report(outfile=str(report), ignore_errors=True)
        measured = json.loads(report.read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    total = measured["totals"]["percent_covered"]
    low = sorted(
        (summary["summary"]["percent_covered"], name)
        for name, summary in measured["files"].items()
        if summary["summary"]["percent_covered"] < FLOOR
    )
    terminalreporter.write_sep("=", f"coverage of statements and branches: {total:.1f}%")
    if low:
        names = ", ".join(f"{name.removeprefix('toolchest_wes/')} {pct:.0f}%" for pct, name in low)
        width = max(40, config.get_terminal_writer().fullwidth)
        terminalreporter.write_line(
            textwrap.fill(f"{len(low)} under {FLOOR:.0f}%: {names}", width=width)
        )
