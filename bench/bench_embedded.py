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
(``bench/hello.wdl``), each beside the same workflow run by ``toil-cwl-runner`` or
``toil-wdl-runner`` directly, as from a shell, taking turns after one warm-up run of each; the
difference of the medians is what WES adds.
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

import httpx
from _common import (
    API,
    DEFAULT_TOIL_VENV,
    HELLO,
    HELLO_SMK,
    HELLO_WDL,
    embedded_server,
    hello_params,
    submit_hello,
)

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import RunRecord


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
    client: httpx.Client, engine: str | None = None, workflow_type: str = "CWL"
) -> float:
    """Seconds from POSTing hello-world to seeing it COMPLETE, polling every 10 ms."""
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
    return elapsed


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
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{program.name} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed


def toil_latency(tmp: Path, runs: int, venv: Path, serve_args: list[str]) -> None:
    """Hello-world through the server's Toil engine and with Toil directly, in turns."""
    programs = {"CWL": venv / "bin" / "toil-cwl-runner", "WDL": venv / "bin" / "toil-wdl-runner"}
    with (
        embedded_server(tmp / "toil", serve_args=serve_args) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for workflow_type, program in programs.items():
            wes: list[float] = []
            direct: list[float] = []
            for i in range(runs + 1):  # the first of each warms the file cache
                folder = tmp / f"direct-{workflow_type}-{i}"
                through = hello_through_wes(client, "toil", workflow_type)
                alone = hello_direct(program, workflow_type, folder)
                if i >= 1:
                    wes.append(through)
                    direct.append(alone)
            print(
                f"toil {workflow_type} hello-world over {runs} runs: submit->COMPLETE through "
                f"WES {describe(wes)}; {program.name} directly {describe(direct)}; "
                f"WES adds {(statistics.median(wes) - statistics.median(direct)) * 1000:.0f} ms "
                "(difference of the medians)",
                flush=True,
            )


def snakemake_latency(tmp: Path, runs: int) -> None:
    """Hello-world through the server's Snakemake engine and with Snakemake directly."""
    program = Path(sys.executable).parent / "snakemake"
    with (
        embedded_server(tmp / "smk", serve_args=["--engine=snakemake"]) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        wes: list[float] = []
        direct: list[float] = []
        for i in range(runs + 1):  # the first of each warms the file cache
            through = hello_through_wes(client, "snakemake", "SMK")
            alone = hello_direct(program, "SMK", tmp / f"direct-smk-{i}")
            if i >= 1:
                wes.append(through)
                direct.append(alone)
        print(
            f"snakemake SMK hello-world over {runs} runs: submit->COMPLETE through WES "
            f"{describe(wes)}; snakemake directly {describe(direct)}; WES adds "
            f"{(statistics.median(wes) - statistics.median(direct)) * 1000:.0f} ms "
            "(difference of the medians)",
            flush=True,
        )


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
    if args.engine == "toil":
        with tempfile.TemporaryDirectory() as tmp:
            serve_args = ["--engine=toil", f"--toil-venv={args.toil_venv}", *args.serve_arg]
            toil_latency(Path(tmp), args.runs or 10, args.toil_venv, serve_args)
        return
    if args.engine == "snakemake":
        with tempfile.TemporaryDirectory() as tmp:
            snakemake_latency(Path(tmp), args.runs or 10)
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
