"""The server runs Toil workflows on a real Slurm cluster, and a cancel leaves no Slurm job.

One server process (``toolchest-wes serve --engine toil --toil-batch-system slurm``) with
its Toil job stores in the test's folder, on the one-node cluster of tests/slurm_cluster.py.
Through WES HTTP: the two-step CWL example and a two-task WDL workflow run to COMPLETE with
their tool steps as Slurm jobs (read back from Slurm's job-completion log), and a run
cancelled while its Slurm job sleeps ends CANCELED with nothing left in ``squeue``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, EXAMPLES
from tests.processes import Server, run_log, sleeping, wait
from tests.slurm_cluster import SlurmCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# Read at import: the autouse _clean_env fixture removes TOOLCHEST_WES_* before tests run.
NAMED_VENV = os.environ.get("TOOLCHEST_WES_TOIL_VENV")
TOIL_VENV = Path(NAMED_VENV) if NAMED_VENV else ROOT / ".venv-toil"
WDL = Path(__file__).resolve().parents[1] / "wdl" / "count-words.wdl"
SLEEP_CWL = Path(__file__).resolve().parents[1] / "cwl" / "sleep.cwl"
#: A length no other test sleeps, so the tool's process can be told apart.
SLEEP_S = 587


@pytest.fixture(scope="module")
def toil_venv() -> Path:
    """The virtualenv with Toil; skips without one (fails if a named one is missing)."""
    if not (TOIL_VENV / "bin" / "toil-wdl-runner").exists():
        if NAMED_VENV:  # CI names the one .ci/run makes: it must be there
            pytest.fail(f"TOOLCHEST_WES_TOIL_VENV={NAMED_VENV} has no toil-wdl-runner")
        pytest.skip(f"no Toil virtualenv at {TOIL_VENV} (see .ci/run)")
    return TOIL_VENV


@pytest.fixture(scope="module")
def server(
    toil_venv: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The embedded server with Toil on Slurm; its job stores in the test's folder."""
    # Asked for here, after the Toil check, so that a missing Toil starts no cluster.
    slurm: SlurmCluster = request.getfixturevalue("slurm")
    folder = tmp_path_factory.mktemp("toil-slurm")
    jobstores = folder / "jobstores"
    jobstores.mkdir()
    data = folder / "data"
    server = Server(
        data,
        "--engine",
        "toil",
        "--toil-venv",
        str(toil_venv),
        "--toil-batch-system",
        "slurm",
        "--toil-jobstore-dir",
        str(jobstores),
        # Toil's scratch, Slurm's job logs (TMPDIR) and lock files (/run/lock) stay here.
        env={
            "SLURM_CONF": str(slurm.conf),
            "TMPDIR": str(folder),
            "TOIL_COORDINATION_DIR": str(folder),
        },
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def cluster(server: Server, request: pytest.FixtureRequest) -> SlurmCluster:
    """The session's Slurm cluster, which ``server`` runs on."""
    slurm: SlurmCluster = request.getfixturevalue("slurm")
    return slurm


def _submit(server: Server, files: dict[str, Path], data: dict[str, str]) -> str:
    """POST /runs for Toil with ``files`` attached under their names; the run id."""
    response = httpx.post(
        f"{server.url}{API}/runs",
        data={**data, "workflow_engine": "toil"},
        files=[("workflow_attachment", (name, f.read_bytes())) for name, f in files.items()],
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def _jobs_named(slurm: SlurmCluster, part: str) -> list[dict[str, str]]:
    return [job for job in slurm.completed_jobs() if part in job.get("Name", "")]


def _complete(server: Server, run_id: str) -> dict[str, object]:
    state = wait(server.url, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}, 150)
    log = run_log(server.url, run_id)
    assert state == "COMPLETE", json.dumps(log, indent=1)[-4000:]
    return log


def test_two_step_cwl_runs_on_slurm(server: Server, cluster: SlurmCluster) -> None:
    two_step = EXAMPLES / "two-step"
    run_id = _submit(
        server,
        {
            "count-lines.cwl": two_step / "count-lines.cwl",
            "fruit.txt": two_step / "fruit.txt",
            "tools/sort.cwl": two_step / "tools" / "sort.cwl",
            "tools/count-unique.cwl": two_step / "tools" / "count-unique.cwl",
        },
        {
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": "count-lines.cwl",
            "workflow_params": json.dumps({"text": {"class": "File", "path": "fruit.txt"}}),
        },
    )

    log = _complete(server, run_id)

    assert "count" in log["outputs"]  # type: ignore[operator]
    sort_jobs = _jobs_named(cluster, "sort.cwl")
    assert sort_jobs and all(job["JobState"] == "COMPLETED" for job in sort_jobs)


def test_two_task_wdl_runs_on_slurm(server: Server, cluster: SlurmCluster) -> None:
    run_id = _submit(
        server,
        {WDL.name: WDL},
        {
            "workflow_type": "WDL",
            "workflow_type_version": "1.0",
            "workflow_url": WDL.name,
            "workflow_params": json.dumps({"count_words.text": "b a c a"}),
        },
    )

    log = _complete(server, run_id)

    assert log["outputs"]["count_words.distinct"] == 3  # type: ignore[index]
    for task in ("split_words", "count_distinct"):
        jobs = _jobs_named(cluster, f"count_words.{task}")
        assert jobs and jobs[-1]["JobState"] == "COMPLETED", cluster.completed_jobs()


def test_cancel_leaves_no_slurm_job(server: Server, cluster: SlurmCluster) -> None:
    run_id = _submit(
        server,
        {SLEEP_CWL.name: SLEEP_CWL},
        {
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": SLEEP_CWL.name,
            "workflow_params": json.dumps({"seconds": SLEEP_S}),
        },
    )
    deadline = time.monotonic() + 90
    while not (_running_jobs(cluster, "sleep.cwl") and sleeping(SLEEP_S)):
        assert time.monotonic() < deadline, f"no sleep job in squeue:\n{cluster.log_tail()}"
        time.sleep(0.2)

    response = httpx.post(f"{server.url}{API}/runs/{run_id}/cancel", timeout=10)
    assert response.status_code == 200, response.text

    assert wait(server.url, run_id, {"CANCELED", "EXECUTOR_ERROR", "COMPLETE"}, 60) == "CANCELED"
    cluster.wait_until_empty(timeout=30)
    assert _jobs_named(cluster, "sleep.cwl")[-1]["JobState"] == "CANCELLED"
    # The job's tool is gone with it; the watcher that cancelled the job removes the run's
    # job store, then exits.
    deadline = time.monotonic() + 30
    store = server.data_dir.parent / "jobstores" / run_id
    while _processes_mentioning(run_id) or store.exists() or sleeping(SLEEP_S):
        assert time.monotonic() < deadline, _processes_mentioning(run_id)
        time.sleep(0.2)


def _running_jobs(slurm: SlurmCluster, part: str) -> list[str]:
    done = slurm.run("squeue", "--noheader", "--states=RUNNING", "--format=%i %j")
    return [line for line in done.stdout.splitlines() if part in line]


def _processes_mentioning(text: str) -> list[str]:
    """The command lines of live processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found
