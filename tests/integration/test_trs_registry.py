"""Two real servers: one serves its catalog over TRS on loopback, the other runs trs:// URLs
that name it; the allow-list, the URL policy, a missing version and a registry that is down."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API
from tests.processes import Server, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKFLOW = """\
cwlVersion: v1.2
class: Workflow
inputs:
  text: File
outputs:
  counts:
    type: File
    outputSource: count/counts
steps:
  count:
    run: lib/count.cwl
    in: {text: text}
    out: [counts]
"""
STEP = """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [wc, -l]
stdin: $(inputs.text.path)
stdout: counts.txt
inputs:
  text: File
outputs:
  counts: stdout
"""
MANIFEST = """\
id: lines
description: Count the lines of a file, in a workflow of one step.
versions:
  - id: "2.0"
    workflow_type: CWL
    workflow_type_version: v1.2
    primary_descriptor: main.cwl
"""


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Server]:
    folder = tmp_path / "catalog" / "lines" / "2.0" / "lib"
    folder.mkdir(parents=True)
    (folder.parent / "main.cwl").write_text(WORKFLOW)
    (folder / "count.cwl").write_text(STEP)
    (tmp_path / "catalog" / "lines" / "manifest.yaml").write_text(MANIFEST)
    server = Server(tmp_path / "registry", "--catalog", str(tmp_path / "catalog"))
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill(signal.SIGTERM)


@pytest.fixture
def make_runner(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers that run tools, with the given flags; stopped at teardown."""
    servers: list[Server] = []

    def make(*args: str) -> Server:
        server = Server(tmp_path / f"runner-{len(servers)}", *args)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill(signal.SIGTERM)


def post(server: Server, workflow_url: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}{API}/runs",
        data={
            "workflow_url": workflow_url,
            "workflow_params": json.dumps({"text": {"class": "File", "path": "in.txt"}}),
        },
        files=[("workflow_attachment", ("in.txt", b"one\ntwo\nthree\n"))],
        timeout=30,
    )


def test_a_second_server_runs_a_tool_of_the_first(
    registry: Server, make_runner: Callable[..., Server]
) -> None:
    host = f"127.0.0.1:{registry.port}"
    runner = make_runner("--trs-allow", host, "--workflow-url-allowed-hosts", "127.0.0.1")

    response = post(runner, f"trs://{host}/lines/2.0")

    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    assert wait(runner.url, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == "COMPLETE"
    log = httpx.get(f"{runner.url}{API}/runs/{run_id}").json()
    files = httpx.get(f"{registry.url}/ga4gh/trs/v2/tools/lines/versions/2.0/CWL/files").json()
    primary = next(f for f in files if f["file_type"] == "PRIMARY_DESCRIPTOR")
    assert log["request"]["workflow_url"] == "tool/main.cwl"
    assert log["request"]["tags"]["toolchest_wes.tool_registry"] == f"http://{host}/ga4gh/trs/v2"
    assert log["request"]["tags"]["toolchest_wes.tool_checksum"] == (
        f"sha-256:{primary['checksum']['checksum']}"
    )
    counts = httpx.get(log["outputs"]["counts"]["location"]).text
    assert counts.split()[0] == "3"

    # The https TRS URL form names the same version.
    url = f"http://{host}/ga4gh/trs/v2/tools/lines/versions/2.0"
    assert post(runner, url).status_code == 200

    missing = post(runner, f"trs://{host}/lines/9.9")
    assert missing.status_code == 400
    assert "has no tool 'lines' version '9.9'" in missing.json()["msg"]

    registry.kill(signal.SIGTERM)
    down = post(runner, f"trs://{host}/lines/2.0")
    assert down.status_code == 400
    assert f"the TRS registry http://{host}/ga4gh/trs/v2 is not reachable" in down.json()["msg"]
    assert not [p for p in (runner.data_dir / "runs").iterdir() if p.name not in _runs(runner)]


def _runs(server: Server) -> set[str]:
    runs = httpx.get(f"{server.url}{API}/runs", params={"page_size": 100}).json()["runs"]
    return {r["run_id"] for r in runs}


def test_registries_off_the_allow_list_or_the_url_policy_are_refused(
    registry: Server, make_runner: Callable[..., Server]
) -> None:
    host = f"127.0.0.1:{registry.port}"
    closed = make_runner()
    refused = post(closed, f"trs://{host}/lines/2.0")
    assert refused.status_code == 400
    assert f"the TRS registry {host} is not one this server reads" in refused.json()["msg"]

    private = make_runner("--trs-allow", host)
    blocked = post(private, f"trs://{host}/lines/2.0")
    assert blocked.status_code == 400
    assert "loopback" in blocked.json()["msg"]

    vetted = make_runner("--trs-allow", host, "--catalog-only")
    forbidden = post(vetted, f"trs://{host}/lines/2.0")
    assert forbidden.status_code == 403
