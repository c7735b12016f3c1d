"""Toil behind the real `toolchest-wes serve` process, driven over HTTP as a foreign client.

Toil comes from the virtualenv that ``TOOLCHEST_WES_TOIL_VENV`` names (``.ci/run`` makes it),
or else ``.venv-toil`` in the checkout. The completing runs are all submitted when the
server starts, so that they run side by side and the module stays short.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CWL, EXAMPLES
from tests.integration.conftest import serving
from tests.processes import Server, sleeping, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WDL = EXAMPLES / "wdl"
_TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


# Read at import: the autouse fixture of tests/conftest.py hides TOOLCHEST_WES_* from tests.
_NAMED_VENV = os.environ.get("TOOLCHEST_WES_TOIL_VENV")
_REQUIRE_TOIL = bool(os.environ.get("CI") or _NAMED_VENV)


def toil_venv() -> Path:
    """The virtualenv with Toil; skips if missing, but fails in CI or when one is named."""
    venv = Path(_NAMED_VENV) if _NAMED_VENV else ROOT / ".venv-toil"
    if not (venv / "bin" / "toil-wdl-runner").exists():
        message = f"no Toil virtualenv with toil-wdl-runner at {venv} (.ci/run makes one)"
        if _REQUIRE_TOIL:
            pytest.fail(message)
        pytest.skip(message)
    return venv


def post_run(
    url: str,
    workflow_type: str,
    version: str,
    files: list[Path],
    params: dict[str, object],
    engine: str | None = "toil",
    engine_params: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /runs as multipart, the way curl or a foreign WES client sends it."""
    data = {
        "workflow_type": workflow_type,
        "workflow_type_version": version,
        "workflow_url": files[0].name,
        "workflow_params": json.dumps(params),
    }
    if engine is not None:
        data["workflow_engine"] = engine
    if engine_params is not None:
        data["workflow_engine_parameters"] = json.dumps(engine_params)
    parts = [
        ("workflow_attachment", (str(f.relative_to(files[0].parent)), f.read_bytes()))
        for f in files
    ]
    return httpx.post(f"{url}{API}/runs", data=data, files=parts, timeout=30)


def submitted(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def processes_naming(text: str) -> list[str]:
    """The command lines of live processes that mention ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    venv = toil_venv()
    tmp = tmp_path_factory.mktemp("toil")
    with serving(
        tmp / "data",
        *("--engine", "cwltool", "--engine", "toil", "--toil-venv", str(venv)),
        *("--container-runtime", "none", "--sandbox", "none"),
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def runs(server: Server) -> dict[str, str]:
    """Every completing run of this module, submitted at once."""
    two_step = EXAMPLES / "two-step"
    return {
        "cwl-hello": submitted(
            post_run(
                server.url,
                "CWL",
                "v1.2",
                [EXAMPLES / "hello" / "hello.cwl"],
                {"message": "hi"},
                engine_params={"cores": "1", "memory": "1G", "--parallel": "true"},
            )
        ),
        "cwl-two-step": submitted(
            post_run(
                server.url,
                "CWL",
                "1.2",
                [
                    two_step / "count-lines.cwl",
                    two_step / "tools" / "sort.cwl",
                    two_step / "tools" / "count-unique.cwl",
                    two_step / "fruit.txt",
                ],
                json.loads((two_step / "count-lines.json").read_text()),
            )
        ),
        "wdl-hello": submitted(
            post_run(
                server.url,
                "WDL",
                "1.0",
                [WDL / "hello" / "hello.wdl"],
                {"hello.name": "toil"},
                engine=None,  # WDL's only engine, so its default
            )
        ),
        "wdl-failing": submitted(
            post_run(
                server.url,
                "WDL",
                "v1.0",
                [WDL / "failing" / "failing.wdl"],
                {"failing.code": 3},
                engine_params={"retryCount": "0"},
            )
        ),
        "wdl-file": submitted(
            post_run(
                server.url,
                "WDL",
                "1.0",
                [WDL / "file-output" / "word-count.wdl", WDL / "file-output" / "words.txt"],
                {"word_count.text": "words.txt"},
            )
        ),
    }


def finished(server: Server, run_id: str) -> dict[str, object]:
    wait(server.url, run_id, _TERMINAL, timeout=180)
    response = httpx.get(f"{server.url}{API}/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def tasks(server: Server, run_id: str) -> list[dict[str, object]]:
    response = httpx.get(f"{server.url}{API}/runs/{run_id}/tasks", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["task_logs"]  # type: ignore[no-any-return]


def test_service_info_lists_toil_for_cwl_and_wdl(server: Server) -> None:
    info = httpx.get(f"{server.url}{API}/service-info", timeout=10).json()
    assert info["workflow_type_versions"]["WDL"] == {"workflow_type_version": ["1.0", "1.1"]}
    assert "v1.2" in info["workflow_type_versions"]["CWL"]["workflow_type_version"]
    assert info["workflow_engine_versions"]["toil"] == {"workflow_engine_version": ["9.6.0"]}
    assert "cwltool" in info["workflow_engine_versions"]


def test_cwl_hello_runs_on_toil(server: Server, runs: dict[str, str]) -> None:
    log = finished(server, runs["cwl-hello"])
    assert log["state"] == "COMPLETE", log
    assert log["request"]["workflow_engine"] == "toil"  # type: ignore[index]
    cmd = " ".join(log["run_log"]["cmd"])  # type: ignore[index]
    assert "toil-cwl-runner" in cmd
    assert f"--maxCores 1 --maxMemory {1 << 30} --defaultMemory {1 << 30}" in cmd
    # cwltool's --parallel means nothing to Toil: ignored, and said so.
    assert any("'--parallel'" in line for line in log["run_log"]["system_logs"])  # type: ignore[index]
    location = log["outputs"]["greeting"]["location"]  # type: ignore[index]
    assert httpx.get(location, timeout=10).content == b"hi\n"
    [task] = tasks(server, runs["cwl-hello"])
    assert task["name"] == "hello.cwl"
    assert task["exit_code"] == 0
    assert task["cmd"][:2] == ["echo", "hi"]  # type: ignore[index]


def test_cwl_two_step_lists_and_zips_its_outputs(server: Server, runs: dict[str, str]) -> None:
    run_id = runs["cwl-two-step"]
    log = finished(server, run_id)
    assert log["state"] == "COMPLETE", log
    listing = httpx.get(f"{server.url}{API}/runs/{run_id}/outputs", timeout=10).json()
    paths = sorted(f["path"] for f in listing["files"])
    assert len(paths) == 2, listing
    archive = httpx.get(
        f"{server.url}{API}/runs/{run_id}/outputs", params={"archive": "zip"}, timeout=10
    )
    assert sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == paths
    assert len(tasks(server, run_id)) == 2  # one per step


def test_wdl_hello_output_file_downloads(server: Server, runs: dict[str, str]) -> None:
    run_id = runs["wdl-hello"]
    log = finished(server, run_id)
    assert log["state"] == "COMPLETE", log
    assert log["request"]["workflow_type_version"] == "1.0"  # type: ignore[index]
    greeting = log["outputs"]["hello.greeting"]  # type: ignore[index]
    assert httpx.get(greeting["location"], timeout=10).content == b"Hello, toil!\n"
    listing = httpx.get(f"{server.url}{API}/runs/{run_id}/outputs", timeout=10).json()
    [listed] = listing["files"]
    download = httpx.get(listed["url"], timeout=10)
    assert download.content == b"Hello, toil!\n"
    [task] = tasks(server, run_id)
    assert task["name"] == "hello.greet"
    assert task["exit_code"] == 0


def test_wdl_file_input_and_output(server: Server, runs: dict[str, str]) -> None:
    log = finished(server, runs["wdl-file"])
    assert log["state"] == "COMPLETE", log
    counts = httpx.get(log["outputs"]["word_count.counts"]["location"], timeout=10).text  # type: ignore[index]
    assert counts.split("\n")[0].split() == ["3", "the"]


def test_failing_wdl_task_is_an_executor_error_with_its_exit_code(
    server: Server, runs: dict[str, str]
) -> None:
    run_id = runs["wdl-failing"]
    log = finished(server, run_id)
    assert log["state"] == "EXECUTOR_ERROR", log
    assert log["run_log"]["exit_code"] == 3  # type: ignore[index]
    [task] = tasks(server, run_id)
    assert task["exit_code"] == 3
    stderr = httpx.get(str(task["stderr"]), timeout=10).text
    assert "about to exit with 3" in stderr


SLEEP_WDL = """\
version 1.0

workflow nap {
  input {
    Int seconds
  }
  call sleep { input: seconds = seconds }
}

task sleep {
  input {
    Int seconds
  }
  command <<<
    sleep ~{seconds}
  >>>
}
"""


def test_cancel_kills_toil_and_its_workers(server: Server, tmp_path: Path) -> None:
    """CWL and WDL runs at once: Toil's workers, the tasks they run (WDL's in bwrap), and
    the runs' job stores."""
    seconds = 400 + os.getpid() % 1000
    nap = tmp_path / "nap.wdl"
    nap.write_text(SLEEP_WDL)
    run_ids = [
        submitted(post_run(server.url, "CWL", "v1.2", [CWL / "sleep.cwl"], {"seconds": seconds})),
        submitted(post_run(server.url, "WDL", "1.0", [nap], {"nap.seconds": seconds + 1})),
    ]
    deadline = time.monotonic() + 60
    while not (sleeping(seconds) and sleeping(seconds + 1)):
        assert time.monotonic() < deadline, "the tools never started"
        time.sleep(0.05)
    stores = [server.data_dir / "runs" / run_id / "work" / "jobstore" for run_id in run_ids]
    for run_id, store in zip(run_ids, stores, strict=True):
        assert processes_naming(run_id), "no Toil process names the run"
        assert store.is_dir(), "the run has no job store in its work folder"
    started = time.monotonic()
    for run_id in run_ids:
        cancel = httpx.post(f"{server.url}{API}/runs/{run_id}/cancel", timeout=10)
        assert cancel.status_code == 200, cancel.text
    for run_id in run_ids:
        assert wait(server.url, run_id, _TERMINAL, timeout=30) == "CANCELED"
    took = time.monotonic() - started
    print(f"two Toil runs CANCELED {took:.2f} s after the first cancel request")
    assert not sleeping(seconds)
    assert not sleeping(seconds + 1)
    for run_id, store in zip(run_ids, stores, strict=True):
        assert processes_naming(run_id) == []
        # The leader was killed before it could clean up; the job store goes all the same.
        assert not store.exists()


def test_refused_toil_flag_is_a_400_naming_it(server: Server) -> None:
    response = post_run(
        server.url,
        "WDL",
        "1.0",
        [WDL / "hello" / "hello.wdl"],
        {},
        engine_params={"--jobStore": "file:/tmp/elsewhere", "--logLevel": "DEBUG"},
    )
    assert response.status_code == 400
    assert "'--jobStore'" in response.json()["msg"]
