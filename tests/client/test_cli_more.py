"""The CLI's delete command, outputs expiry, tenths of seconds and tables without the retry tag."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import CWL, EXAMPLES
from toolchest_wes.cli.main import cli
from toolchest_wes.client import Journal, RunNotFoundError, WesClient
from toolchest_wes.client._core import REQUEST_ID_TAG
from toolchest_wes.client.tables import duration

HELLO = EXAMPLES / "hello" / "hello.cwl"
HELLO_JOB = EXAMPLES / "hello" / "hello.json"


@pytest.fixture
def runner(live: Any, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    return CliRunner()


def test_durations_to_a_tenth_of_a_second() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def after(seconds: float) -> str:
        return duration(start.isoformat(), (start + timedelta(seconds=seconds)).isoformat())

    assert after(4.23) == "4.2s"
    assert after(59.96) == "1m00.0s"
    assert after(185.25) == "3m05.2s"
    assert after(3725.3) == "1h02m05.3s"


def test_delete_finished_runs_and_refuse_active_ones(wes: WesClient, runner: CliRunner) -> None:
    done = wes.run(HELLO, HELLO_JOB, timeout=120)
    other = wes.run(HELLO, HELLO_JOB, timeout=120)
    slow = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    try:
        result = runner.invoke(cli, ["delete", done.run_id, slow.run_id, other.run_id])
        assert result.exit_code == 2
        assert result.stdout.splitlines() == [
            f"deleted run {done.run_id}",
            f"deleted run {other.run_id}",
        ]
        assert f"run {slow.run_id} is still" in result.stderr and "cancel it" in result.stderr
        with pytest.raises(RunNotFoundError):
            done.status()
    finally:
        slow.cancel()
    slow.wait(timeout=60, raise_on_failure=False)
    as_json = runner.invoke(cli, ["delete", slow.run_id, "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == {"deleted": [slow.run_id], "active": []}


def test_info_hides_the_retry_tag_and_shows_expiry(
    make_live: Any, make_settings: Any, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = make_live(make_settings(retention_days=2))
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    runner = CliRunner()
    with WesClient(live.url, journal=journal) as wes:
        run = wes.run(HELLO, HELLO_JOB, timeout=120, tags={"project": "demo"})
    info = runner.invoke(cli, ["info", run.run_id]).stdout
    assert "project=demo" in info and REQUEST_ID_TAG not in info
    expiry = next(line for line in info.splitlines() if line.startswith("expires:"))
    assert str(datetime.now(UTC).year) in expiry and "UTC" in expiry
    as_json = json.loads(runner.invoke(cli, ["info", run.run_id, "--json"]).stdout)
    assert REQUEST_ID_TAG in as_json["request"]["tags"]
    outputs = runner.invoke(cli, ["outputs", run.run_id]).stdout
    assert "removed by the server after" in outputs
    listing = json.loads(runner.invoke(cli, ["outputs", run.run_id, "--json"]).stdout)
    assert listing["outputs_expire_at"]
