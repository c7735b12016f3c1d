"""Cancels the Slurm jobs of one Toil run once its leader is gone, however it went.

Toil's leader cancels its Slurm jobs (``scancel``) when it stops on SIGTERM, but a leader
killed with SIGKILL (the end of the server's cancel grace period, a crash, the OOM killer)
leaves them running, and nothing else knows they belong to the run. So every Slurm job of a
run carries the run's comment (``sbatch --comment``, through Toil's ``--slurmArgs``), and a
watcher, started by ``toil_child`` in a session of its own so that killing the run's process
group does not reach it, waits for the run's process to end (its stdin, a pipe only that
process holds, reaches end of file), then cancels every job that still carries the comment:

    python -m toolchest_wes.engines.slurm_sweep COMMENT [--remove PATH]...

It repeats the sweep until ``squeue`` shows no such job twice in a row (an ``sbatch`` cut
short by the kill may land a moment later), then removes each ``--remove`` path (the run's
job store, which a killed leader could not delete; kept if a job would not go) and exits.
The same recipe by hand::

    squeue --noheader --format='%i %k' | awk -v c=COMMENT '$2 == c {print $1}' | xargs -r scancel
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["COMMENT_PREFIX", "cancel_jobs", "jobs_with_comment", "main", "run_comment", "sweep"]

#: Slurm jobs of run ``R`` carry the comment ``toolchest-wes-run:R``.
COMMENT_PREFIX = "toolchest-wes-run:"
_PASS_S = 0.5
_SWEEP_TIMEOUT_S = 120.0
_COMMAND_TIMEOUT_S = 30.0


def run_comment(run_id: str) -> str:
    """The ``sbatch --comment`` that marks the Slurm jobs of ``run_id``."""
    return f"{COMMENT_PREFIX}{run_id}"


def jobs_with_comment(comment: str) -> list[str]:
    """The ids of the jobs in ``squeue`` (any state) whose comment is ``comment``.

    Raises:
        RuntimeError: ``squeue`` failed (the message is its own).
    """
    done = subprocess.run(
        ["squeue", "--noheader", "--format=%i %k"],
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"squeue failed: {done.stderr.strip()}")
    ids = []
    for line in done.stdout.splitlines():
        job_id, _, job_comment = line.strip().partition(" ")
        if job_comment == comment:
            ids.append(job_id)
    return ids


def cancel_jobs(comment: str) -> list[str]:
    """``scancel`` every job whose comment is ``comment``; the ids it was asked to cancel."""
    ids = jobs_with_comment(comment)
    if ids:
        # A job that ended meanwhile makes scancel complain; the next pass checks again.
        subprocess.run(
            ["scancel", *ids], capture_output=True, timeout=_COMMAND_TIMEOUT_S, check=False
        )
    return ids


def sweep(comment: str, timeout_s: float = _SWEEP_TIMEOUT_S) -> bool:
    """Cancel the comment's jobs until two passes in a row find none; False on timeout."""
    deadline = time.monotonic() + timeout_s
    clean_passes = 0
    while clean_passes < 2:
        try:
            clean_passes = 0 if cancel_jobs(comment) else clean_passes + 1
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"toolchest-wes: cannot sweep Slurm jobs of {comment}: {exc}", file=sys.stderr)
            clean_passes = 0
        if time.monotonic() > deadline:
            return False
        if clean_passes < 2:
            time.sleep(_PASS_S)
    return True


def main(argv: list[str]) -> int:
    """Wait for end of file on stdin, then sweep (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m toolchest_wes.engines.slurm_sweep")
    parser.add_argument("comment")
    parser.add_argument("--remove", action="append", type=Path, default=[])
    args = parser.parse_args(argv)
    while sys.stdin.buffer.read(4096):
        pass
    if not sweep(args.comment):
        return 1  # a job may still use the job store: keep it
    for path in args.remove:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
