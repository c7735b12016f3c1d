"""Snakemake (SMK) runs on the real `toolchest-wes serve` process, over HTTP multipart posts."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, EXAMPLES
from tests.integration.conftest import serving
from tests.processes import TERMINAL, Server, run_log, sleeping, wait
from tests.snakemake_support import require_snakemake
from toolchest_wes.client import WesClient

pytestmark = [pytest.mark.integration]

SMK = EXAMPLES / "snakemake"
SLEEP = Path(__file__).resolve().parents[1] / "snakemake" / "sleep"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_snakemake()
    with serving(tmp_path_factory.mktemp("smk") / "data") as srv:
        yield srv


def post_run(
    url: str,
    folder: Path,
    params: dict[str, object],
    *,
    workflow_type: str = "SMK",
    engine_params: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /runs as curl -F would: the Snakefile and every other file of ``folder`` attached."""
    data = {
        "workflow_type": workflow_type,
        "workflow_type_version": "1.0",
        "workflow_url": "Snakefile",
        "workflow_params": json.dumps(params),
    }
    if engine_params:
        data["workflow_engine_parameters"] = json.dumps(engine_params)
    files = [
        ("workflow_attachment", (path.name, path.read_bytes()))
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix != ".json"
    ]
    return httpx.post(f"{url}{API}/runs", data=data, files=files, timeout=30)


def submit(url: str, folder: Path, params: dict[str, object], **kwargs: object) -> str:
    response = post_run(url, folder, params, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def tasks(url: str, run_id: str) -> list[dict[str, object]]:
    response = httpx.get(f"{url}{API}/runs/{run_id}/tasks", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["task_logs"]  # type: ignore[no-any-return]


def test_hello_completes_with_its_file_as_output(server: Server) -> None:
    run_id = submit(
        server.url, SMK / "hello", {"message": "hi from SMK"}, workflow_type="snakemake"
    )
    assert wait(server.url, run_id, TERMINAL) == "COMPLETE"
    log = run_log(server.url, run_id)
    assert log["request"]["workflow_type"] == "SMK"  # type: ignore[index]
    greeting = log["outputs"]["hello.txt"]  # type: ignore[index]
    assert greeting["class"] == "File"
    assert httpx.get(greeting["location"]).content == b"hi from SMK\n"
    (task,) = tasks(server.url, run_id)
    assert task["name"] == "hello" and task["exit_code"] == 0
    assert "echo" in task["cmd"][0]  # type: ignore[index]
    for stream in ("stdout", "stderr"):  # empty: the job has no log: file
        assert httpx.get(f"{server.url}{API}/runs/{run_id}/tasks/1/{stream}").content == b""
    info = httpx.get(f"{server.url}{API}/service-info").json()
    assert info["workflow_type_versions"]["SMK"] == {"workflow_type_version": ["1.0", "9"]}
    assert info["workflow_engine_versions"]["snakemake"] == {
        "workflow_engine_version": [metadata.version("snakemake")]
    }


def test_scatter_gather_has_a_task_per_job_and_the_gathered_file(server: Server) -> None:
    run_id = submit(server.url, SMK / "scatter-gather", {"samples": ["x", "y", "z"]})
    assert wait(server.url, run_id, TERMINAL) == "COMPLETE"
    names = sorted(str(t["name"]) for t in tasks(server.url, run_id))
    assert names == ["all", "gather", "scatter[sample=x]", "scatter[sample=y]", "scatter[sample=z]"]
    scatter = next(t for t in tasks(server.url, run_id) if t["name"] == "scatter[sample=y]")
    stderr = httpx.get(f"{server.url}{API}/runs/{run_id}/tasks/{scatter['id']}/stderr")
    assert stderr.text == "wrote parts/y.txt\n"  # the job's log: file
    listing = httpx.get(f"{server.url}{API}/runs/{run_id}/outputs").json()
    assert [f["path"] for f in listing["files"]] == ["gathered.txt"]
    archive = httpx.get(f"{server.url}{API}/runs/{run_id}/outputs", params={"archive": "zip"})
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert zf.read("gathered.txt") == b"sample x\nsample y\nsample z\n"


def test_a_file_output_in_a_folder_is_listed_and_downloaded(server: Server) -> None:
    run_id = submit(server.url, SMK / "file-output", {"input": "fruit.txt"})
    assert wait(server.url, run_id, TERMINAL) == "COMPLETE"
    listing = httpx.get(f"{server.url}{API}/runs/{run_id}/outputs").json()
    (entry,) = listing["files"]
    assert entry["path"] == "results/count.txt"
    content = httpx.get(f"{server.url}{API}/runs/{run_id}/outputs/results/count.txt").content
    assert content.strip() == b"3"


def test_a_failing_rule_is_an_executor_error_with_its_exit_code(server: Server) -> None:
    run_id = submit(server.url, SMK / "failing-rule", {"exit_code": 7})
    assert wait(server.url, run_id, TERMINAL) == "EXECUTOR_ERROR"
    log = run_log(server.url, run_id)
    assert log["run_log"]["exit_code"] == 1  # type: ignore[index]  # Snakemake's own
    (task,) = tasks(server.url, run_id)
    assert task["name"] == "fail" and task["exit_code"] == 7
    stderr = httpx.get(f"{server.url}{API}/runs/{run_id}/stderr").text
    assert "the input was not usable" in stderr
    assert "non-zero exit status 7" in stderr


def test_cancel_kills_snakemake_and_its_jobs(server: Server) -> None:
    seconds = 400 + os.getpid() % 1000
    run_id = submit(server.url, SLEEP, {"seconds": seconds})
    deadline = time.monotonic() + 60
    while not sleeping(seconds):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    response = httpx.post(f"{server.url}{API}/runs/{run_id}/cancel", timeout=10)
    assert response.status_code == 200
    assert wait(server.url, run_id, TERMINAL, timeout=30) == "CANCELED"
    assert not sleeping(seconds)
    assert not _processes_mentioning(run_id)


def test_refused_and_foreign_flags(server: Server) -> None:
    refused = post_run(server.url, SMK / "hello", {}, engine_params={"--directory": "/tmp"})
    assert refused.status_code == 400
    assert "'--directory'" in refused.json()["msg"]
    run_id = submit(
        server.url,
        SMK / "hello",
        {},
        engine_params={"--parallel": "true", "-p": "true", "cores": "2", "memory": "1G"},
    )
    assert wait(server.url, run_id, TERMINAL) == "COMPLETE"
    log = run_log(server.url, run_id)
    cmd = log["run_log"]["cmd"]  # type: ignore[index]
    assert "--printshellcmds" in cmd
    assert cmd[cmd.index("--cores") + 1] == "2"
    assert cmd[cmd.index("--resources") + 1] == "mem_mb=1024"
    assert any("'--parallel'" in line for line in log["run_log"]["system_logs"])  # type: ignore[index]


def test_the_sdk_submits_a_snakefile_and_downloads_its_outputs(
    server: Server, tmp_path: Path
) -> None:
    folder = SMK / "file-output"
    with WesClient(server.url) as wes:
        run = wes.submit(
            folder / "Snakefile",
            folder / "file-output.json",
            attachments=[folder / "fruit.txt"],
            workflow_type="SMK",
        )
        assert run.wait(timeout=120).state == "COMPLETE"
        run.download(tmp_path)
        assert [(t.name, t.exit_code) for t in run.tasks()] == [("count", 0)]
    assert (tmp_path / "results" / "count.txt").read_text().strip() == "3"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args.replace("\0", " "))
    return found
