"""Two real servers: one serves a catalog entry under a Dockstore-style id
(``#workflow/github.com/org/lines``), the other names it so, with that server as its default
TRS registry: by curl-style multipart and by the SDK, to COMPLETE; a missing version is a 400."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import API
from tests.integration.test_trs_registry import STEP, WORKFLOW, post
from tests.processes import Server, wait
from toolchest_wes.client import WesClient
from toolchest_wes.models import State

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRS_ID = "#workflow/github.com/org/lines"
MANIFEST = f"""\
id: lines
trs_id: "{TRS_ID}"
description: Count the lines of a file, in a workflow of one step.
versions:
  - id: "2.0"
    workflow_type: CWL
    workflow_type_version: v1.2
    primary_descriptor: main.cwl
"""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """The registry, and a server whose default TRS registry it is."""
    folder = tmp_path / "catalog" / "lines" / "2.0" / "lib"
    folder.mkdir(parents=True)
    (folder.parent / "main.cwl").write_text(WORKFLOW)
    (folder / "count.cwl").write_text(STEP)
    (tmp_path / "catalog" / "lines" / "manifest.yaml").write_text(MANIFEST)
    registry = Server(tmp_path / "registry", "--catalog", str(tmp_path / "catalog"))
    registry.start()
    host = f"127.0.0.1:{registry.port}"
    runner = Server(
        tmp_path / "runner",
        *("--trs-registry", f"http://{host}/ga4gh/trs/v2", "--trs-allow", host),
        *("--workflow-url-allowed-hosts", "127.0.0.1"),
    )
    try:
        runner.start()
        yield registry, runner
    finally:
        for server in (runner, registry):
            if server.proc is not None and server.proc.poll() is None:
                server.kill(signal.SIGTERM)


def test_a_dockstore_style_id_runs_from_the_registry_it_is_resolved_against(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    registry, runner = servers
    trs = f"{registry.url}/ga4gh/trs/v2"
    assert [t["id"] for t in httpx.get(f"{trs}/tools").json()] == [TRS_ID]
    files = httpx.get(f"{trs}/tools/{quote(TRS_ID, safe='')}/versions/2.0/CWL/files").json()
    checksum = next(f for f in files if f["file_type"] == "PRIMARY_DESCRIPTOR")["checksum"]
    expected = {
        "toolchest_wes.tool": TRS_ID,
        "toolchest_wes.tool_version": "2.0",
        "toolchest_wes.tool_registry": trs,
        "toolchest_wes.tool_checksum": f"sha-256:{checksum['checksum']}",
        "toolchest_wes.tool_url": f"{TRS_ID}:2.0",
    }

    response = post(runner, f"{TRS_ID}:2.0")
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    assert wait(runner.url, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == "COMPLETE"
    log = httpx.get(f"{runner.url}{API}/runs/{run_id}").json()
    assert log["request"]["workflow_url"] == "tool/main.cwl"
    assert expected.items() <= log["request"]["tags"].items()
    assert httpx.get(log["outputs"]["counts"]["location"]).text.split()[0] == "3"

    text = tmp_path / "four.txt"
    text.write_text("a\nb\nc\nd\n")
    with WesClient(runner.url) as wes:
        run = wes.submit(f"{TRS_ID}:2.0", {"text": {"class": "File", "path": str(text)}})
        sdk_log = run.wait(timeout=120)
    assert sdk_log.state == State.COMPLETE
    assert sdk_log.request is not None
    assert expected.items() <= (sdk_log.request.tags or {}).items()

    # The registry's own SDK calls the tool by name through its Dockstore-style id.
    with WesClient(registry.url) as own:
        lines = own.tools.lines
        assert lines.info.url == f"trs://127.0.0.1:{registry.port}/{quote(TRS_ID, safe='')}/2.0"
        own_run = lines(text=str(text), is_async=True)
        assert own_run.wait(timeout=120).state == State.COMPLETE

    missing = post(runner, f"{TRS_ID}:9.9")
    assert missing.status_code == 400
    assert f"has no tool {TRS_ID!r} version '9.9'" in missing.json()["msg"]
    no_version = post(runner, TRS_ID)
    assert no_version.status_code == 400
    assert f"names no version; write it as {TRS_ID}:VERSION" in no_version.json()["msg"]
