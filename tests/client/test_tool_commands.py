"""``toolchest-wes tools``, ``tools show`` and ``run NAME`` against a live server, in both
modes; Ctrl-C during a tool call cancels the run (the SDK's and the CLI's)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.client.conftest import LiveServer
from tests.conftest import CWL
from toolchest_wes.cli.main import cli
from toolchest_wes.client import Journal, State, WesClient

ROOT = Path(__file__).resolve().parents[2]
Invoke = Callable[..., Result]


@pytest.fixture
def tw(live: LiveServer, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_tools_lists_the_catalog(tw: Invoke) -> None:
    table = tw("tools")
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["NAME", "VERSION", "TYPE", "DESCRIPTION"]
    listed = json.loads(tw("tools", "--json").stdout)
    assert {"wc", "sort_uniq", "gzip"} <= {t["name"] for t in listed}


def test_tools_show_names_inputs(tw: Invoke) -> None:
    shown = tw("tools", "show", "gzip")
    assert shown.exit_code == 0, shown.stderr
    assert "  level  int  (default 6)  Compression level" in shown.stdout
    assert json.loads(tw("tools", "show", "wc", "--json").stdout)["inputs"][0]["type"] == "File[]"
    missing = tw("tools", "show", "nope")
    assert missing.exit_code != 0 and "no tool 'nope'" in missing.stderr


def test_run_waits_and_downloads(tw: Invoke, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "words.txt").write_text("b\na\nb\n")

    done = tw(
        "run", "sort_uniq", "--input", f"input={tmp_path / 'in' / 'words.txt'}",
        "--output-path", str(tmp_path / "out"),
    )  # fmt: skip

    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == "COMPLETE"
    assert (tmp_path / "out" / "unique.txt").read_text().split() == ["1", "a", "2", "b"]


def test_run_async_and_json_and_input_checks(tw: Invoke, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("zip me\n")

    started = tw("run", "gzip", "--input", f"input={tmp_path / 'f.txt'}", "--input", "level=9",
                 "--async", "--json")  # fmt: skip
    assert started.exit_code == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    assert json.loads(tw("wait", run_id, "--json").stdout)["state"] == "COMPLETE"

    wrong = tw("run", "gzip", "--input", f"input={tmp_path / 'f.txt'}", "--input", "level=max")
    assert wrong.exit_code != 0
    assert 'input "level": expected int, got string "max"' in wrong.stderr
    unknown = tw("run", "wc", "--input", "colour=red")
    assert 'input "colour": wc has no such input' in unknown.stderr


SLEEP_MANIFEST = """\
id: sleep
description: Sleep.
versions:
  - id: "1"
    workflow_type: CWL
    workflow_type_version: v1.2
    primary_descriptor: sleep.cwl
"""


@pytest.fixture
def sleepy(make_live: Callable[..., LiveServer], make_settings: Any, tmp_path: Path) -> Any:
    folder = tmp_path / "catalog" / "sleep" / "1"
    folder.mkdir(parents=True)
    shutil.copy(CWL / "sleep.cwl", folder / "sleep.cwl")
    (folder.parent / "manifest.yaml").write_text(SLEEP_MANIFEST)
    return make_live(make_settings(catalog=str(tmp_path / "catalog")))


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    "command",
    [
        ["-m", "toolchest_wes.cli.main", "run", "sleep", "--input", "seconds=600"],
        [
            "-c",
            "import sys; from toolchest_wes.client import WesClient; "
            "WesClient(sys.argv[1]).tools.sleep(seconds=600)",
        ],
    ],
    ids=["cli", "sdk"],
)
def test_ctrl_c_cancels_a_tool_call(
    sleepy: LiveServer, journal: Journal, command: list[str]
) -> None:
    url = ["--url", sleepy.url] if "-m" in command else [sleepy.url]
    process = subprocess.Popen(
        [sys.executable, *command, *url], stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "TOOLCHEST_WES_URL": sleepy.url},
    )  # fmt: skip
    with WesClient(sleepy.url, journal=False) as wes:
        deadline = 600
        while not (runs := wes.runs(1)) or runs[0].status() is not State.RUNNING:
            deadline -= 1
            assert deadline and process.poll() is None, process.stderr
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
        assert runs[0].wait(timeout=60, raise_on_failure=False).state is State.CANCELED


def test_run_takes_a_folder_for_a_file_array(tw: Invoke, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x y\n")
    (tmp_path / "in" / "b.txt").write_text("z\n")

    done = tw(
        "run", "wc", "--input", f"inputs={tmp_path / 'in'}", "--output-path", str(tmp_path / "out")
    )

    assert done.exit_code == 0, done.stderr
    lines = (tmp_path / "out" / "counts.txt").read_text().splitlines()
    assert [line.split()[-1] for line in lines] == ["a.txt", "b.txt", "total"]
