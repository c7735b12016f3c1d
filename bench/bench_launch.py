"""Median wall time of a hello-world CWL tool, started cold and forked from a warm zygote.

Run from the repository root: ``python bench/bench_launch.py [--runs 10]``. Each run is
``start`` to ``wait`` through a launcher, with a task directory as the server sets it up.
The zygote's own warm-up is measured separately and is not part of the warm runs.

``--toil-child`` times instead what the Toil engine's supervisor costs by itself: a run of
``toil_child`` whose Toil leader is ``true`` (which exits at once), with the environment the
Toil engine gives it, started cold (``python -m``) and forked from the zygote.

``--spare`` times instead the warm launcher with spares (``spare_nice``: children forked and
prefaulted ahead of time, see ``toolchest_wes.engines.zygote``) and without, each starting a
run 10 ms after the last one ended, in blocks of 5 runs taking turns (within a block, runs
follow each other as closely as a busy server's do).

``--wait-latency`` times how late a supervisor that waits in a loop of 0.2 s waits (as the
executor and ``toil_child`` do) sees a child that sleeps 0.3 to 0.45 s exit: with
``Popen.wait(timeout)`` and with ``pidwait.wait_exit`` (a pidfd), in turns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from toolchest_wes.engines.base import Launcher, LaunchSpec  # noqa: E402
from toolchest_wes.engines.pidwait import wait_exit  # noqa: E402
from toolchest_wes.engines.process import SubprocessLauncher  # noqa: E402
from toolchest_wes.engines.warm_launcher import WarmLauncher  # noqa: E402

ENTRY = "toolchest_wes.engines.cwltool_child"
TOIL_CHILD = "toolchest_wes.engines.toil_child"
TOOL = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "baseCommand": "echo",
    "inputs": {"message": {"type": "string", "inputBinding": {"position": 1}}},
    "outputs": {"out": "stdout"},
    "stdout": "out.txt",
}


def one_run(launcher: Launcher, base: Path, n: int) -> float:
    run_dir = base / f"run-{n}"
    run_dir.mkdir()
    (run_dir / "hello.cwl").write_text(json.dumps(TOOL))
    (run_dir / "params.json").write_text(json.dumps({"message": "hello"}))
    spec = LaunchSpec(
        argv=["cwltool", "--outdir", str(run_dir / "out"), "hello.cwl", "params.json"],
        entry=ENTRY,
        cwd=run_dir,
        stdout=run_dir / "stdout",
        stderr=run_dir / "stderr",
        env={"TOOLCHEST_WES_CHILD_TASK_DIR": str(run_dir / "tasks")},
    )
    return timed_start(launcher, spec)


def timed_start(launcher: Launcher, spec: LaunchSpec) -> float:
    """Seconds from starting ``spec`` to its exit, which must be 0."""
    started = time.perf_counter()
    code = launcher.start(spec).wait()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{spec.cwd} exited {code}:\n{spec.stderr.read_text()}")
    return elapsed


def toil_child_run(launcher: Launcher, base: Path, n: int) -> float:
    """``toil_child true``: the supervisor of a Toil run around a leader that does nothing."""
    run_dir = base / f"toil-{n}"
    work = run_dir / "work"
    work.mkdir(parents=True)
    spec = LaunchSpec(
        argv=["toil_child", "true"],
        entry=TOIL_CHILD,
        cwd=run_dir,
        stdout=run_dir / "stdout",
        stderr=run_dir / "stderr",
        env={
            "TOOLCHEST_WES_TOIL_TASK_DIR": str(run_dir / "tasks"),
            "TOOLCHEST_WES_TOIL_LOG_DIR": str(work / "toil-logs"),
            "TOOLCHEST_WES_TOIL_WORK_DIR": str(work),
            "TOOLCHEST_WES_TOIL_BIN": "/usr/bin",
            "TOOLCHEST_WES_TOIL_NICE": "0",
            "TOOLCHEST_WES_TOIL_JOBSTORE": str(work / "jobstore"),
        },
    )
    return timed_start(launcher, spec)


def wait_latency(runs: int) -> None:
    """How late each way of waiting sees a child's exit (see the module docstring)."""

    def popen_wait(proc: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                proc.wait(0.2)
                return
            except subprocess.TimeoutExpired:
                pass

    def pidfd_wait(proc: subprocess.Popen[bytes]) -> None:
        while wait_exit(proc, 0.2) is None:
            pass

    late: dict[str, list[float]] = {"Popen.wait": [], "wait_exit": []}
    for n in range(runs):
        nap = 0.3 + 0.15 * n / runs  # exits at every phase of the 0.2 s loop
        for name, wait in (("Popen.wait", popen_wait), ("wait_exit", pidfd_wait)):
            proc = subprocess.Popen(["sleep", f"{nap:.3f}"])
            started = time.perf_counter()
            wait(proc)
            late[name].append(time.perf_counter() - started - nap)
    for name, times in late.items():
        print(
            f"{name:<10} sees the exit late by median {statistics.median(times) * 1000:5.1f} ms"
            f"  max {max(times) * 1000:5.1f}  (n={len(times)})"
        )


def spares(runs: int) -> None:
    """Warm runs with spares and without, in blocks of 5 back-to-back runs taking turns."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    launchers = {
        "with spares": WarmLauncher([ENTRY], spare_nice=0),
        "without": WarmLauncher([ENTRY]),
    }
    times: dict[str, list[float]] = {name: [] for name in launchers}
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        base = Path(tmp)
        try:
            n = 0
            for launcher in launchers.values():
                launcher.start_background()
                for _ in range(3):  # the zygote's start, then warm runs
                    n += 1
                    one_run(launcher, base, n)
            while len(times["without"]) < runs:
                for name, launcher in launchers.items():
                    time.sleep(0.5)  # a server that was idle for a moment
                    for _ in range(5):
                        n += 1
                        time.sleep(0.01)
                        times[name].append(one_run(launcher, base, n))
        finally:
            for launcher in launchers.values():
                launcher.close()
    for name, values in times.items():
        print(
            f"WarmLauncher {name:<11} median {statistics.median(values) * 1000:8.1f} ms"
            f"  min {min(values) * 1000:8.1f}  max {max(values) * 1000:8.1f}  (n={len(values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--toil-child", action="store_true")
    parser.add_argument("--wait-latency", action="store_true")
    parser.add_argument("--spare", action="store_true")
    args = parser.parse_args()
    runs = args.runs
    if args.wait_latency:
        wait_latency(runs)
        return
    if args.spare:
        spares(runs)
        return
    entry, one_run_of = (TOIL_CHILD, toil_child_run) if args.toil_child else (ENTRY, one_run)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        base = Path(tmp)
        cold = SubprocessLauncher()
        warm = WarmLauncher([entry])
        try:
            started = time.perf_counter()
            warm.start_background()
            # The first warm run waits for the zygote to be ready.
            first = one_run_of(warm, base, -1)
            warm_up = time.perf_counter() - started
            cold_times, warm_times = [], []
            # Interleaved, so that both see the same machine load.
            for n in range(runs):
                cold_times.append(one_run_of(cold, base, 2 * n))
                warm_times.append(one_run_of(warm, base, 2 * n + 1))
        finally:
            warm.close()
            cold.close()
    print(f"zygote start + first warm run: {warm_up * 1000:8.1f} ms (first run {first * 1000:.1f})")
    for name, times in (("SubprocessLauncher", cold_times), ("WarmLauncher", warm_times)):
        print(
            f"{name:<18} median {statistics.median(times) * 1000:8.1f} ms"
            f"  min {min(times) * 1000:8.1f}  max {max(times) * 1000:8.1f}  (n={len(times)})"
        )
    speedup = statistics.median(cold_times) / statistics.median(warm_times)
    print(f"speed-up (median): {speedup:.1f}x")


if __name__ == "__main__":
    main()
