"""bench/conformance.py: its reading of cwltest's results, and a few conformance tests run through
it end to end (the full runs, tens of tests per runner, are a benchmark)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.processes import BENCH, run_bench
from tests.redis_server import RedisServer

sys.path.insert(0, str(BENCH))
import conformance

JUNIT = """<?xml version="1.0" ?>
<testsuites><testsuite name="conformance_tests" tests="3">
<testcase name="a" file="first"/>
<testcase name="b" file="second"><failure type="failure">got: {}</failure>
<system-err>the reason</system-err></testcase>
<testcase name="c" file="third"><skipped type="skipped" message="Unsupported"/></testcase>
</testsuite></testsuites>
"""
BADGE = """# `all` tests
## List of passed tests
- [first](conformance_tests.yaml) ([tool](t.cwl))
## List of failed tests
- [second](conformance_tests.yaml) ([tool](t.cwl))
- [first](conformance_tests.yaml) ([tool](t.cwl))
## List of unsupported tests
- [third](conformance_tests.yaml) ([tool](t.cwl))
"""


def test_a_failure_without_a_message_is_taken_from_the_badge_report(tmp_path: Path) -> None:
    # cwltest writes no <failure> for a should_fail test that exited 0, so "first" looks
    # passed in the JUnit XML; the badge report lists it as failed.
    (tmp_path / "junit.xml").write_text(JUNIT)
    (tmp_path / "all.md").write_text(BADGE)
    outcomes, messages = conformance.read_results(tmp_path / "junit.xml", tmp_path / "all.md", None)
    assert outcomes == {"first": "failed", "second": "failed", "third": "unsupported"}
    assert "got: {}" in messages["second"]
    assert "the reason" in messages["second"]
    assert "should_fail" in messages["first"]


def test_selected_tests_are_labelled_by_the_order_they_were_given(tmp_path: Path) -> None:
    # With -n, cwltest labels its k-th result with the k-th test of the whole list.
    (tmp_path / "junit.xml").write_text(JUNIT)
    (tmp_path / "all.md").write_text(BADGE)
    outcomes, _messages = conformance.read_results(
        tmp_path / "junit.xml", tmp_path / "all.md", ["x", "y", "z"]
    )
    assert outcomes == {"x": "failed", "y": "failed", "z": "unsupported"}


@pytest.mark.integration
@pytest.mark.slow
def test_runners_and_modes_end_to_end(redis_server: RedisServer, tmp_path: Path) -> None:
    # redis_server: only for its skip-or-fail rule; the script starts a redis-server of its own.
    if not (conformance.DEFAULT_CWL_DIR / "conformance_tests.yaml").is_file():
        pytest.skip(f"the CWL v1.2 conformance tests are not in {conformance.DEFAULT_CWL_DIR}")
    summary = tmp_path / "summary.json"
    # The first test of the list (cwltest cannot select it by name), a should_fail test, and
    # the one required test that cwltool itself fails.
    tests = "cl_basic_generation,capture_files,filename_with_hash_mark"
    argv = ["--runner", "cwltool", "--runner", "toolchest", "--mode", "all", "--tests", tests]
    result = run_bench("conformance.py", *argv, "--json", str(summary))
    assert result.returncode == 0, result.stdout + result.stderr
    for runner, mode in [("cwltool", "direct"), ("toolchest", "embedded")]:
        line = f"conformance {runner} {mode} required: 2 passed, 1 failed, 0 unsupported"
        assert line in result.stdout
    assert "conformance toolchest distributed required: 2 passed, 1 failed" in result.stdout
    results = json.loads(summary.read_text())["results"]
    assert [(r["runner"], r["mode"]) for r in results] == [
        ("cwltool", "direct"),
        ("toolchest", "embedded"),
        ("toolchest", "distributed"),
    ]
    for r in results:
        assert r["passed"] == ["capture_files", "cl_basic_generation"]
        assert r["failed"] == ["filename_with_hash_mark"]
        assert r["unexpected"] == []
