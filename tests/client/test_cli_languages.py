"""``toolchest-wes submit`` with workflows in other languages than CWL, against a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.client.conftest import LiveServer
from tests.conftest import EXAMPLES
from tests.snakemake_support import require_snakemake
from toolchest_wes.cli._output import ExitCode
from toolchest_wes.cli._workflow_type import default_type_version, workflow_type_of
from toolchest_wes.cli.main import cli
from toolchest_wes.client import Journal

pytestmark = pytest.mark.integration

FILE_OUTPUT = EXAMPLES / "snakemake" / "file-output"


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        ("hello.wdl", "WDL"),
        ("https://example.org/flows/Hello.WDL", "WDL"),
        ("Snakefile", "SMK"),
        ("rules/count.smk", "SMK"),
        ("hello.cwl", "CWL"),
        ("https://example.org/hello.cwl#main", "CWL"),
        ("workflow.yml", "CWL"),
    ],
)
def test_the_type_follows_the_file_name(workflow: str, expected: str) -> None:
    assert workflow_type_of(workflow) == expected


def test_a_wdl_version_is_its_version_line(tmp_path: Path) -> None:
    declared = tmp_path / "declared.wdl"
    declared.write_text("# greets\n\nversion 1.1\n\nworkflow w {}\n")
    bare = tmp_path / "bare.wdl"
    bare.write_text("workflow w {}\n")

    assert default_type_version(str(declared), "WDL") == "1.1"
    assert default_type_version(str(bare), "WDL") == "draft-2"
    assert default_type_version(str(declared), "CWL") is None


def test_submit_snakefile_wdl_and_overrides(
    make_live: Any, make_settings: Any, journal: Journal, tmp_path: Path, monkeypatch: Any
) -> None:
    require_snakemake()
    live: LiveServer = make_live(make_settings(engines=["cwltool", "snakemake"]))
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    runner = CliRunner()

    def tw(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    # A Snakefile by its name, with its data attached beside it, to COMPLETE and downloaded.
    done = tw(
        "submit",
        str(FILE_OUTPUT / "Snakefile"),
        str(FILE_OUTPUT / "file-output.json"),
        "--attach",
        str(FILE_OUTPUT / "fruit.txt"),
        "--download",
        str(tmp_path / "out"),
    )
    assert done.exit_code == 0, (done.stdout, done.stderr)
    lines = (FILE_OUTPUT / "fruit.txt").read_text().count("\n")
    assert (tmp_path / "out" / "results" / "count.txt").read_text().strip() == str(lines)
    info = json.loads(tw("info", done.stdout.strip(), "--json").stdout)
    assert info["request"]["workflow_type"] == "SMK"
    assert info["request"]["workflow_engine"] in (None, "snakemake")

    # Any file name, with the type and the engine named.
    renamed = tmp_path / "count.rules"
    renamed.write_text((FILE_OUTPUT / "Snakefile").read_text())
    (tmp_path / "fruit.txt").write_text((FILE_OUTPUT / "fruit.txt").read_text())
    named = tw(
        "submit",
        str(renamed),
        "--type",
        "smk",
        "--engine",
        "snakemake",
        "--attach",
        str(tmp_path / "fruit.txt"),
        "--wait",
    )
    assert named.exit_code == 0, (named.stdout, named.stderr)
    request = json.loads(tw("info", named.stdout.strip(), "--json").stdout)["request"]
    assert (request["workflow_type"], request["workflow_engine"]) == ("SMK", "snakemake")

    # A WDL file goes as WDL with the version it declares; this server has no WDL engine,
    # and its answer says so.
    refused = tw("submit", str(EXAMPLES / "wdl" / "hello" / "hello.wdl"))
    assert refused.exit_code == ExitCode.USAGE, (refused.stdout, refused.stderr)
    assert "WDL" in refused.stderr and "1.0" in refused.stderr
