"""The Slurm watcher of a Toil run cancels the run's jobs once the run's process is SIGKILLed.

On the real cluster of tests/slurm_cluster.py: a holder process starts the watcher as
``toil_child`` does (stdin a pipe only the holder has, a session of its own) and is then
SIGKILLed; the watcher cancels every job with the run's comment, leaves other jobs alone,
removes the job store it was given, and exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slurm_cluster import SlurmCluster
from toolchest_wes.engines.slurm_sweep import run_comment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Starts the watcher with a pipe only this process holds, prints its pid, then waits to die.
_HOLDER = """
import subprocess, sys, time
watcher = subprocess.Popen(
    [sys.executable, "-m", "toolchest_wes.engines.slurm_sweep", *sys.argv[1:]],
    stdin=subprocess.PIPE, start_new_session=True,
)
print(watcher.pid, flush=True)
time.sleep(600)
"""


def _sbatch(slurm: SlurmCluster, comment: str) -> str:
    done = slurm.run(
        "sbatch", "--parsable", "--output=/dev/null", f"--comment={comment}", "--wrap", "sleep 600"
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_run_leaves_no_job_and_no_job_store(slurm: SlurmCluster, tmp_path: Path) -> None:
    comment = run_comment(f"sweep-{os.getpid()}")
    store = tmp_path / "jobstore"
    (store / "jobs").mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, comment, "--remove", str(store)],
        env={**slurm.env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    watcher_pid = int(holder.stdout.readline())
    ours = [_sbatch(slurm, comment), _sbatch(slurm, comment)]
    other = _sbatch(slurm, "someone-else")
    try:
        time.sleep(1)  # the watcher must not act while the run lives
        assert set(ours) <= set(slurm.queued_jobs())

        holder.send_signal(signal.SIGKILL)
        holder.wait(10)

        deadline = time.monotonic() + 60
        while set(ours) & set(slurm.queued_jobs()) or _alive(watcher_pid) or store.exists():
            assert time.monotonic() < deadline, slurm.queued_jobs()
            time.sleep(0.2)
        assert other in slurm.queued_jobs()
        states = {job["JobId"]: job["JobState"] for job in slurm.completed_jobs()}
        assert [states[job] for job in ours] == ["CANCELLED", "CANCELLED"]
    finally:
        slurm.run("scancel", other)
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()
