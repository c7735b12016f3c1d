"""Embedded-mode benchmarks against real `toolchest-wes serve` processes.

1. Hello-world submit -> COMPLETE latency, polling the status every 10 ms (target: median
   <= 300 ms).
2. ``GET /runs?page_size=10`` with 10,000 runs stored against 100 runs stored, requests
   interleaved between two servers so both see the same machine load (target: ratio <= 1.5).

Usage: python bench/bench_embedded.py [--runs 30] [--list-requests 400]
       python bench/bench_embedded.py --engine toil [--runs 10] [--toil-venv DIR]
       python bench/bench_embedded.py --engine snakemake [--runs 10]

With ``--engine toil`` it measures instead hello-world submit -> COMPLETE through the server's
Toil engine (``workflow_engine=toil``), in CWL (``examples/hello``) and in WDL
(``bench/hello.wdl``), and ``--engine snakemake`` the Snakemake hello-world, each beside the
same workflow run by the engine directly, as from a shell, and beside the parts of what the
server does: the command it starts (``toil_child`` with Toil's flags, or ``snakemake`` with
the server's flags), with the server's niceness and without, and for Toil the runner with the
server's flags but without ``toil_child``. All take turns after one warm-up round; the
differences of the medians say what WES adds, and where.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from _common import (
    API,
    DEFAULT_TOIL_VENV,
    HELLO,
    HELLO_BY_TYPE,
    HELLO_SMK,
    HELLO_WDL,
    embedded_server,
    hello_params,
    stop_on_signals,
    submit_hello,
)

from toolchest_wes.config import Settings
from toolchest_wes.core.executor import prepare_run
from toolchest_wes.core.workspace import Attachment, Workspace
from toolchest_wes.engines.base import PreparedRun, Resources, WorkflowEngine
from toolchest_wes.engines.snakemake_engine import SnakemakeEngine
from toolchest_wes.engines.toil_engine import RUNNERS, ToilEngine
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import RunRecord

#: The niceness the server gives engine processes by default.
NICE = Settings.model_fields["engine_nice"].default


def latency(url: str, runs: int) -> list[float]:
    """Seconds from POST to seeing COMPLETE, polling every 10 ms."""
    times: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(runs + 3):
            elapsed = hello_through_wes(client)
            if i >= 3:  # the first runs pay for the warm engine process starting
                times.append(elapsed)
    return times


def hello_through_wes(
    client: httpx.Client,
    engine: str | None = None,
    workflow_type: str = "CWL",
    stamps: dict[str, tuple[float, float]] | None = None,
) -> float:
    """Seconds from POSTing hello-world to seeing it COMPLETE, polling every 10 ms.

    ``stamps`` gets the run's id with the wall-clock times of the POST and of seeing COMPLETE.
    """
    posted = time.time()
    start = time.perf_counter()
    run_id = submit_hello(client, engine=engine, workflow_type=workflow_type)
    while True:
        state = client.get(f"{API}/runs/{run_id}/status").json()["state"]
        if State(state).is_terminal:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    if state != "COMPLETE":
        raise RuntimeError(f"run {run_id} ended {state}")
    if stamps is not None:
        stamps[run_id] = (posted, posted + elapsed)
    return elapsed


_EXECUTOR_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \[\d+\] toolchest_wes\.core\.executor: "
    r"run (started|ended) run_id=(\S+)",
    re.MULTILINE,
)


def server_phases(log: Path, stamps: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
    """Each run's time in the server before its engine started, from then until its end was
    recorded, and from then until the client saw it, from the executor's INFO log lines."""
    seen: dict[tuple[str, str], float] = {}
    for stamp, what, run_id in _EXECUTOR_LINE.findall(log.read_text(errors="replace")):
        when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        seen[(run_id, what)] = when
    phases: dict[str, list[float]] = {"before the engine": [], "engine": [], "after": []}
    for run_id, (posted, completed) in stamps.items():
        started, ended = seen.get((run_id, "started")), seen.get((run_id, "ended"))
        if started is not None and ended is not None:
            phases["before the engine"].append(started - posted)
            phases["engine"].append(ended - started)
            phases["after"].append(completed - ended)
    return phases


def hello_direct(program: Path, workflow_type: str, folder: Path) -> float:
    """Seconds that ``program`` (toil-cwl-runner or toil-wdl-runner) takes to run hello-world
    in a new ``folder``, as a user would from a shell there."""
    folder.mkdir(parents=True)
    job = folder / "hello.json"
    job.write_text(json.dumps(hello_params(workflow_type, "bench")))
    if workflow_type == "CWL":
        # Without a container, as the server runs CWL tools by default here.
        argv = [str(program), "--no-container", "--outdir", str(folder / "out")]
        argv += [str(HELLO), str(job)]
    elif workflow_type == "SMK":
        argv = [str(program), "--snakefile", str(HELLO_SMK), "--configfile", str(job)]
        argv += ["--cores", "1", "--quiet"]
    else:
        argv = [str(program), str(HELLO_WDL), "-i", str(job), "-o", str(folder / "out")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
    # Toil starts its workers (_toil_worker) by name, as it does in its activated virtualenv.
    env["PATH"] = f"{program.parent}{os.pathsep}{env.get('PATH', '')}"
    return timed(argv, folder, env, folder / "stdout", folder / "stderr")


def timed(argv: list[str], cwd: Path, env: dict[str, str], stdout: Path, stderr: Path) -> float:
    """Seconds that ``argv`` takes, run in a session of its own as the server runs engines."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        start = time.perf_counter()
        code = subprocess.run(
            argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True, check=False
        ).returncode
        elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{argv[0]} exited {code}:\n{stderr.read_text()[-3000:]}")
    return elapsed


def prepared_run(folder: Path, workflow_type: str) -> PreparedRun:
    """Hello-world staged in ``folder`` and prepared as the server's executor does it."""
    workflow, version = HELLO_BY_TYPE[workflow_type]
    with open(workflow, "rb") as stream:
        run = Workspace(folder.parent).stage(
            folder.name,
            [Attachment(workflow.name, stream)],
            hello_params(workflow_type, "bench"),
        )
    request = RunRequest(
        workflow_type=workflow_type, workflow_type_version=version, workflow_url=workflow.name
    )
    record = RunRecord(run_id=folder.name, state=State.QUEUED, request=request, created_at=0)
    return prepare_run(record, run, Resources())


def hello_launch_spec(engine: WorkflowEngine, folder: Path, supervised: bool = True) -> float:
    """Seconds that the command the server starts for hello-world takes, without the server.

    An entry module runs as ``python -m MODULE``, not forked from a warm interpreter. With
    ``supervised`` false, a Toil run starts Toil's runner with the same flags without
    ``toil_child``, as a shell would with Toil on ``PATH``.
    """
    spec = engine.launch_spec(prepared_run(folder, engine.workflow_type))
    argv, env = spec.argv, os.environ | spec.env
    if spec.entry is not None:
        argv = [sys.executable, "-m", spec.entry, *argv[1:]]  # as SubprocessLauncher runs it
    if not supervised:
        argv = argv[3:]
        env = {k: v for k, v in env.items() if not k.startswith("TOOLCHEST_WES_")}
        env["PATH"] = f"{Path(argv[0]).parent}{os.pathsep}{env.get('PATH', '')}"
        (folder / "work" / "toil").mkdir()
    return timed(argv, spec.cwd, env, spec.stdout, spec.stderr)


def engine_latency(
    tmp: Path,
    runs: int,
    engine: str,
    serve_args: list[str],
    programs: dict[str, Path],
    engines: dict[str, Callable[[int], WorkflowEngine]],
) -> None:
    """Hello-world of each workflow type through the server's ``engine`` and its parts, in
    turns after one warm-up round: through WES; the command the server starts, with the
    server's niceness and without; for Toil, its runner with the server's flags but without
    ``toil_child``; and the engine run directly from a shell."""
    log = tmp / f"{engine}.log"
    with (
        embedded_server(tmp / engine, serve_args=serve_args, log=log) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        for workflow_type, program in programs.items():
            stamps: dict[str, tuple[float, float]] = {}
            parts = _parts(client, engine, workflow_type, program, engines[workflow_type], stamps)
            times: dict[str, list[float]] = {name: [] for name in parts}
            cpu: dict[str, list[float]] = {name: [] for name in parts}
            for i in range(runs + 1):  # the first round warms the file cache
                for n, (name, part) in enumerate(parts.items()):
                    before = _children_cpu()
                    elapsed = part(tmp / f"{engine}-{workflow_type}-{n}-{i}")
                    if i >= 1:
                        times[name].append(elapsed)
                        # The server's own processes are not this one's reaped children.
                        cpu[name].append(_children_cpu() - before)
            direct = statistics.median(times[f"{program.name} directly"])
            print(f"{engine} {workflow_type} hello-world over {runs} rounds:", flush=True)
            for name, values in times.items():
                extra = (statistics.median(values) - direct) * 1000
                used = statistics.median(cpu[name]) * 1000
                print(
                    f"  {name}: {describe(values)}; {extra:+.0f} ms"
                    + (f"; CPU median {used:.0f} ms" if used else ""),
                    flush=True,
                )
            # The first round's run is in stamps too: it is left out like the others' first.
            first = next(iter(stamps))
            phases = server_phases(log, {k: v for k, v in stamps.items() if k != first})
            print(
                "  through WES, from the server's log: "
                + "; ".join(f"{name} {describe(values)}" for name, values in phases.items()),
                flush=True,
            )


def _children_cpu() -> float:
    """User and system seconds of this process's children that ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parts(
    client: httpx.Client,
    engine: str,
    workflow_type: str,
    program: Path,
    make: Callable[[int], WorkflowEngine],
    stamps: dict[str, tuple[float, float]],
) -> dict[str, Callable[[Path], float]]:
    """What ``engine_latency`` times, by name, each run in a new folder."""
    parts: dict[str, Callable[[Path], float]] = {
        "through WES": lambda _f: hello_through_wes(client, engine, workflow_type, stamps),
        f"server's command alone, nice {NICE}": lambda f: hello_launch_spec(make(NICE), f),
        "server's command alone, nice 0": lambda f: hello_launch_spec(make(0), f),
    }
    if engine == "toil":
        parts["runner with the server's flags, no toil_child, nice 0"] = lambda f: (
            hello_launch_spec(make(0), f, supervised=False)
        )
    parts[f"{program.name} directly"] = lambda f: hello_direct(program, workflow_type, f)
    return parts


def _toil(workflow_type: str, bin_dir: Path, nice: int) -> WorkflowEngine:
    return ToilEngine(workflow_type=workflow_type, bin_dir=bin_dir, nice=nice)


def describe(times: list[float]) -> str:
    """Median, min and max of ``times`` (seconds), in milliseconds."""
    ms = sorted(t * 1000 for t in times)
    return f"median {statistics.median(ms):.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f})"


def fill(data_dir: Path, count: int) -> None:
    """Store ``count`` finished runs directly, as a server that has run them would have."""
    data_dir.mkdir(parents=True)
    store = store_from_url(f"sqlite:///{data_dir / 'runs.sqlite'}")
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x.cwl")
    now = time.time()
    for i in range(count):
        store.create_run(
            RunRecord(
                run_id=f"run-{i:06d}",
                state=State.COMPLETE,
                request=request.model_copy(update={"tags": {"i": str(i)}}),
                created_at=now + i,
                start_time="2026-01-01T00:00:00Z",
                end_time="2026-01-01T00:00:01Z",
                exit_code=0,
            )
        )
    store.close()


def list_ratio(tmp: Path, requests: int) -> tuple[float, float]:
    small, large = tmp / "small", tmp / "large"
    fill(small, 100)
    fill(large, 10_000)
    with embedded_server(small) as url_small, embedded_server(large) as url_large:
        times: dict[str, list[float]] = {url_small: [], url_large: []}
        with httpx.Client(timeout=30) as client:
            for i in range(requests * 2 + 40):
                url = url_small if i % 2 == 0 else url_large
                start = time.perf_counter()
                response = client.get(f"{url}{API}/runs", params={"page_size": 10})
                elapsed = time.perf_counter() - start
                assert response.status_code == 200 and len(response.json()["runs"]) == 10
                if i >= 40:
                    times[url].append(elapsed)
    return statistics.median(times[url_small]), statistics.median(times[url_large])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, help="default 30, with --engine toil 10")
    parser.add_argument("--list-requests", type=int, default=400)
    parser.add_argument("--engine", choices=["cwltool", "toil", "snakemake"], default="cwltool")
    parser.add_argument("--toil-venv", type=Path, default=DEFAULT_TOIL_VENV)
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="an option for toolchest-wes serve"
    )
    args = parser.parse_args()
    stop_on_signals()
    if args.engine == "toil":
        bin_dir = args.toil_venv / "bin"
        with tempfile.TemporaryDirectory() as tmp:
            serve_args = ["--engine=toil", f"--toil-venv={args.toil_venv}", *args.serve_arg]
            engine_latency(
                Path(tmp),
                args.runs or 10,
                "toil",
                serve_args,
                {t: bin_dir / runner for t, runner in RUNNERS.items()},
                {t: functools.partial(_toil, t, bin_dir) for t in RUNNERS},
            )
        return
    if args.engine == "snakemake":
        program = Path(sys.executable).parent / "snakemake"
        with tempfile.TemporaryDirectory() as tmp:
            engine_latency(
                Path(tmp),
                args.runs or 10,
                "snakemake",
                ["--engine=snakemake", *args.serve_arg],
                {"SMK": program},
                {"SMK": lambda nice: SnakemakeEngine(program=program, nice=nice)},
            )
        return
    args.runs = args.runs or 30
    with tempfile.TemporaryDirectory() as tmp:
        with embedded_server(Path(tmp) / "latency") as url:
            times = latency(url, args.runs)
        ms = sorted(t * 1000 for t in times)
        print(
            f"hello-world submit->COMPLETE over {len(ms)} runs: "
            f"median {statistics.median(ms):.0f} ms"
            f", min {ms[0]:.0f} ms, p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms"
        )
        small, large = list_ratio(Path(tmp), args.list_requests)
        print(
            f"GET /runs?page_size=10 median: 100 runs {small * 1000:.2f} ms, 10,000 runs "
            f"{large * 1000:.2f} ms, ratio {large / small:.2f}"
        )


if __name__ == "__main__":
    main()
