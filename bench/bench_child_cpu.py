"""CPU time of one warm cwltool run, this checkout against another, side by side.

A warm run is a child forked from a process that ran ``cwltool_child.warm()``, as the zygote
forks them; this measures the CPU time that child uses from the fork to its exit (its
``wait4`` resource usage, which includes the ``echo`` it starts), for hello-world
(``examples/hello``). CPU time, unlike wall time, hardly moves with the load of a shared
machine, so small changes to the run's own work show. Each checkout runs in an interpreter of
its own (``PYTHONPATH``) with this virtualenv's libraries; the two take turns, ``--batch``
runs at a time, and the script prints the medians and their ratio.

Usage: python bench/bench_child_cpu.py --baseline DIR [--runs 60] [--batch 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import HELLO, ROOT, stop_on_signals


def child_cpu_ms() -> tuple[float, int]:
    """Fork one hello-world run from this (warm) process; its CPU ms and minor page faults."""
    from toolchest_wes.engines import cwltool_child

    folder = Path(tempfile.mkdtemp(prefix="child-cpu-"))
    try:
        for name in ("out", "work", "tasks"):
            (folder / name).mkdir()
        (folder / "job.json").write_text(json.dumps({"message": "bench"}))
        argv = ["--disable-color", "--no-container", "--outdir", str(folder / "out")]
        argv += ["--tmpdir-prefix", f"{folder}/work/tmp", "--tmp-outdir-prefix"]
        argv += [f"{folder}/work/out", str(HELLO), str(folder / "job.json")]
        pid = os.fork()
        if pid == 0:  # the run, as the zygote's child would be
            os.environ[cwltool_child.TASK_DIR_ENV] = str(folder / "tasks")
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os._exit(cwltool_child.main(argv))
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the run exited {os.waitstatus_to_exitcode(status)}")
        return (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_minflt
    finally:
        shutil.rmtree(folder)


def serve() -> None:
    """Worker mode: warm up, then answer each line ``N`` with N runs' figures as JSON."""
    from toolchest_wes.engines import cwltool_child

    cwltool_child.warm()
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps([child_cpu_ms() for _ in range(int(line))]), flush=True)


class Worker:
    """An interpreter running ``serve`` with one checkout's code."""

    def __init__(self, code: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(code))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
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

    def runs(self, count: int) -> list[tuple[float, int]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{count}\n")
        self.proc.stdin.flush()
        return [(cpu, faults) for cpu, faults in json.loads(self._line())]

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
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    stop_on_signals()
    if args.serve:
        serve()
        return
    if args.baseline is None:
        parser.error("--baseline DIR is required")
    this, base = Worker(ROOT), Worker(args.baseline)
    try:
        this.runs(3), base.runs(3)  # warm-up
        ours: list[tuple[float, int]] = []
        theirs: list[tuple[float, int]] = []
        while len(ours) < args.runs:
            ours += this.runs(args.batch)
            theirs += base.runs(args.batch)
    finally:
        this.close()
        base.close()
    o, t = (statistics.median(cpu for cpu, _ in runs) for runs in (ours, theirs))
    of, tf = (statistics.median(faults for _, faults in runs) for runs in (ours, theirs))
    print(
        f"warm hello-world run, CPU from fork to exit ({len(ours)} runs each, in turns): "
        f"this {o:.1f} ms, baseline {t:.1f} ms, ratio {o / t:.2f}; "
        f"minor page faults {of:.0f} vs {tf:.0f}"
    )


if __name__ == "__main__":
    main()
