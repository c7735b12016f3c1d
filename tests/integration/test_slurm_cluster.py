"""The test Slurm cluster of tests/slurm_cluster.py runs jobs, records them, and leaves nothing.

A batch job submitted with ``sbatch`` runs on the node and its end is written to the jobcomp
log; a cluster stopped with a job still running leaves no process and no file behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.slurm_cluster import SlurmCluster, slurm_cluster, slurm_missing

pytestmark = pytest.mark.integration


def _wait_completed(slurm: SlurmCluster, job_id: str) -> dict[str, str]:
    slurm.wait_until_empty(timeout=60)
    records = [job for job in slurm.completed_jobs() if job.get("JobId") == job_id]
    assert records, f"job {job_id} not in {slurm.jobcomp_log}:\n{slurm.log_tail()}"
    return records[-1]


def test_sbatch_job_runs_and_is_recorded(slurm: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    done = slurm.run("sbatch", "--parsable", f"--output={out}", "--wrap", "echo hi")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().split(";")[0]

    record = _wait_completed(slurm, job_id)

    assert record["JobState"] == "COMPLETED"
    assert record["ExitCode"] == "0:0"
    assert record["NodeList"] == slurm.node
    assert out.read_text() == "hi\n"


def test_a_failing_job_is_recorded_failed(slurm: SlurmCluster) -> None:
    done = slurm.run("sbatch", "--parsable", "--output=/dev/null", "--wrap", "exit 3")
    job_id = done.stdout.strip().split(";")[0]

    record = _wait_completed(slurm, job_id)

    assert record["JobState"] == "FAILED"
    assert record["ExitCode"] == "3:0"


def _carriers(marker: bytes) -> list[int]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def test_stopping_the_cluster_leaves_no_process_or_file(tmp_path: Path) -> None:
    missing = slurm_missing()
    if missing:
        pytest.skip(missing)
    folder = tmp_path / "cluster"
    folder.mkdir()
    with slurm_cluster(folder) as cluster:
        done = cluster.run("sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 600")
        assert done.returncode == 0, done.stderr
        marker = f"SLURM_CONF={cluster.conf}".encode()
        assert cluster.queued_jobs()

    assert _carriers(marker) == []


def test_a_cluster_in_a_new_folder_removes_it(tmp_path: Path) -> None:
    missing = slurm_missing()
    if missing:
        pytest.skip(missing)
    with slurm_cluster() as cluster:
        folder = cluster.directory
        assert (folder / "slurm.conf").exists()

    assert not folder.exists()
