"""CPU time of one warm cwltool run, this checkout against another, side by side.

A warm run is a child forked from a process that ran ``cwltool_child.warm()``, as the zygote
forks them; this measures the CPU time that child uses from the fork to its exit (its
``wait4`` resource usage, which includes the ``echo`` it starts), for hello-world
(``examples/hello``). CPU time, unlike wall time, hardly moves with the load of a shared
machine, so small changes to the run's own work show. Each checkout runs in an interpreter of
its own (``PYTHONPATH``) with this virtualenv's libraries; the two take turns, ``--batch``
runs at a time, and the script prints the medians and their ratio.

With ``--spare``, this checkout's children are spares (``toolchest_wes.engines.zygote``): each
first runs ``cwltool_child.prefault`` as the zygote's spare does while idle, and the figures
are from the end of that to the exit, the part of the run that a request waits for (the
prefault's own CPU time is printed apart). The baseline's children are plain forks.

With ``--reuse``, this checkout's children are engine processes reused as the zygote reuses
them: each runs hello-world once, calls ``cwltool_child.reset()``, and the figures are those
of its second run and the ``reset()`` after it (the process's own usage and its tools'), the
CPU that each later run of a reused process costs. There is no fork and no exit in them.

With ``--learn``, this checkout's worker first calls ``cwltool_child.learn`` for hello-world,
as the zygote does once it has answered a request, so that its children find the workflow
document parsed; the baseline's do not.

Usage: python bench/bench_child_cpu.py --baseline DIR [--runs 60] [--batch 10] [--spare]
       [--reuse] [--learn]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from _common import HELLO, ROOT, hello_run_folder, silence_output, stop_on_signals


def _usage() -> tuple[float, int]:
    """This process's CPU seconds with those of its waited-for children, and its faults."""
    own, tools = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + tools.ru_utime + tools.ru_stime, own.ru_minflt


def reused_cpu_ms() -> tuple[float, int, float]:
    """Fork a process that runs hello-world, ``reset()``, and hello-world again; the CPU ms
    and minor faults of the second run with its ``reset()``."""
    from toolchest_wes.engines import cwltool_child

    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        silence_output()
        figures = []
        for _ in range(2):
            folder, argv = hello_run_folder("child-cpu-")
            os.environ[cwltool_child.TASK_DIR_ENV] = str(folder / "tasks")
            before = _usage()
            code = cwltool_child.main(argv)
            fit = cwltool_child.reset()
            after = _usage()
            shutil.rmtree(folder)
            if code != 0 or not fit:
                os._exit(1)
            figures = [(after[0] - before[0]) * 1000, after[1] - before[1]]
        os.write(report_w, json.dumps(figures).encode())
        os._exit(0)
    os.close(report_w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(report_r) as report:
        text = report.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("a reused run failed, or reset() refused another")
    cpu, faults = json.loads(text)
    return cpu, faults, 0.0


def child_cpu_ms(spare: bool = False) -> tuple[float, int, float]:
    """Fork one hello-world run from this (warm) process; its CPU ms and minor page faults,
    and with ``spare`` the CPU ms of the prefault that came first (left out of the others)."""
    from toolchest_wes.engines import cwltool_child

    folder, argv = hello_run_folder("child-cpu-")
    try:
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the run, as the zygote's child would be
            silence_output()
            if spare:
                cwltool_child.prefault(0)
            own = resource.getrusage(resource.RUSAGE_SELF)
            os.write(report_w, json.dumps([own.ru_utime + own.ru_stime, own.ru_minflt]).encode())
            os.environ[cwltool_child.TASK_DIR_ENV] = str(folder / "tasks")
            os._exit(cwltool_child.main(argv))
        os.close(report_w)
        _, status, usage = os.wait4(pid, 0)
        with os.fdopen(report_r) as report:
            before_cpu, before_faults = json.loads(report.read()) if spare else (0.0, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the run exited {os.waitstatus_to_exitcode(status)}")
        cpu = (usage.ru_utime + usage.ru_stime - before_cpu) * 1000
        return cpu, usage.ru_minflt - before_faults, before_cpu * 1000
    finally:
        shutil.rmtree(folder)


def serve(spare: bool, learn: bool = False, reuse: bool = False) -> None:
    """Worker mode: warm up, then answer each line ``N`` with N runs' figures as JSON."""
    from toolchest_wes.engines import cwltool_child

    cwltool_child.warm()
    if learn:  # twice, as the zygote parses a document the second time a run brings it
        for _ in range(2):
            cwltool_child.learn([str(HELLO), "job.json"], str(ROOT))
    print("ready", flush=True)
    for line in sys.stdin:
        figures = [reused_cpu_ms() if reuse else child_cpu_ms(spare) for _ in range(int(line))]
        print(json.dumps(figures), flush=True)


class Worker:
    """An interpreter running ``serve`` with one checkout's code."""

    def __init__(
        self, code: Path, spare: bool = False, learn: bool = False, reuse: bool = False
    ) -> None:
        env = dict(os.environ, PYTHONPATH=str(code))
        flags = [
            *(["--spare"] if spare else []),
            *(["--learn"] if learn else []),
            *(["--reuse"] if reuse else []),
        ]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", *flags],
            cwd=Path(__file__).parent,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._line() != "ready":
            raise RuntimeError(f"the worker for {code} did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def runs(self, count: int) -> list[tuple[float, int, float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{count}\n")
        self.proc.stdin.flush()
        return [(cpu, faults, prefault) for cpu, faults, prefault in json.loads(self._line())]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--spare", action="store_true", help="this checkout's runs as spares")
    parser.add_argument(
        "--reuse", action="store_true", help="this checkout's runs in reused engine processes"
    )
    parser.add_argument(
        "--learn", action="store_true", help="this checkout's zygote parsed hello-world before"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    stop_on_signals()
    if args.serve:
        serve(args.spare, args.learn, args.reuse)
        return
    if args.baseline is None:
        parser.error("--baseline DIR is required")
    this, base = Worker(ROOT, args.spare, args.learn, args.reuse), Worker(args.baseline)
    try:
        this.runs(3), base.runs(3)  # warm-up
        ours: list[tuple[float, int, float]] = []
        theirs: list[tuple[float, int, float]] = []
        while len(ours) < args.runs:
            ours += this.runs(args.batch)
            theirs += base.runs(args.batch)
    finally:
        this.close()
        base.close()
    o, t = (statistics.median(cpu for cpu, _, _ in runs) for runs in (ours, theirs))
    of, tf = (statistics.median(faults for _, faults, _ in runs) for runs in (ours, theirs))
    start = "the end of a spare's prefault" if args.spare else "fork"
    span = "a reused process's second run and reset()" if args.reuse else f"{start} to exit"
    print(
        f"warm hello-world run, CPU of this: {span}; baseline: fork to exit "
        f"({len(ours)} runs each, in turns): "
        f"this {o:.1f} ms, baseline {t:.1f} ms, ratio {o / t:.2f}; "
        f"minor page faults {of:.0f} vs {tf:.0f}"
    )
    if args.spare:
        prefault = statistics.median(p for _, _, p in ours)
        print(f"the prefault before each of this checkout's runs: {prefault:.1f} ms of CPU")


if __name__ == "__main__":
    main()
