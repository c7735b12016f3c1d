"""bench/bench_fork_pages.py at a small scale: it forks warm runs and reports their copied pages."""

from __future__ import annotations

import re

import pytest

from tests.processes import run_bench

pytestmark = [pytest.mark.integration]


def test_the_copied_pages_are_counted_per_mapping_and_by_type() -> None:
    result = run_bench("bench_fork_pages.py", "--runs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"(\d+) pages copied \((\d+) of them by every run\)", result.stdout)
    assert summary, result.stdout
    assert 0 < int(summary[2]) <= int(summary[1])
    assert "per mapping of the parent" in result.stdout
    assert re.search(r"^\s+[\d.]+\s+code$", result.stdout, re.MULTILINE), result.stdout
