"""A longer schemathesis campaign against a live `toolchest-wes serve` process on loopback.

    python bench/fuzz.py [--examples 500] [--time-limit 600]

Starts an embedded server on a free port with a fresh data directory, runs a finished and a
failed run to fuzz around, then fuzzes every operation of the served spec (random, seeded and
schema-violating requests), checking each response: no 5xx, and status code, content type,
headers and body conform to the spec. Stops by itself: after ``--examples`` per operation, or
once ``--time-limit`` seconds have passed (remaining operations are skipped). Exits 1 if any
operation failed. The test suite runs the same checks with a few examples per operation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import schemathesis
from _common import API, ROOT, free_port, spawn_session, stop_on_signals, stop_session, submit_hello

sys.path.insert(0, str(ROOT))
from tests.fuzzing import fuzz

FAIL_CWL = ROOT / "tests" / "cwl" / "fail.cwl"


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A `toolchest-wes serve` process on a free loopback port, and its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
    env["TOOLCHEST_WES_LOG_LEVEL"] = "WARNING"
    argv = [sys.executable, "-m", "toolchest_wes.cli.main", "serve", "--port", str(port)]
    proc = spawn_session(
        [*argv, "--data-dir", str(data_dir), "--container-runtime", "none"],
        env=env,
        stderr=None,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_session(proc)
            raise RuntimeError("server did not start")
        time.sleep(0.1)


def seed(url: str) -> list[dict[str, str]]:
    """A COMPLETE and an EXECUTOR_ERROR run, as path parameters to fuzz around."""
    with httpx.Client(base_url=url, timeout=30) as client:
        done = submit_hello(client, "fuzz")
        response = client.post(
            f"{API}/runs",
            data={"workflow_type": "CWL", "workflow_type_version": "v1.2"}
            | {"workflow_url": "fail.cwl"},
            files=[("workflow_attachment", ("fail.cwl", FAIL_CWL.read_bytes()))],
        )
        response.raise_for_status()
        failed = response.json()["run_id"]
        seeds = []
        for run_id in (done, failed):
            while client.get(f"{API}/runs/{run_id}/status").json()["state"] not in (
                "COMPLETE",
                "EXECUTOR_ERROR",
                "SYSTEM_ERROR",
            ):
                time.sleep(0.05)
            tasks = client.get(f"{API}/runs/{run_id}/tasks").json()["task_logs"]
            files = client.get(f"{API}/runs/{run_id}/outputs").json()["files"]
            seeds.append(
                {
                    "run_id": run_id,
                    "task_id": tasks[0]["id"] if tasks else "none",
                    "path": files[0]["path"] if files else "none",
                }
            )
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="examples per operation")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds, at most")
    args = parser.parse_args()
    stop_on_signals()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="toolchest-wes-fuzz-") as tmp:
        proc, url = start_server(Path(tmp) / "data")
        try:
            schema = schemathesis.openapi.from_url(f"{url}{API}/openapi.json")
            statuses: Counter[tuple[str, int]] = Counter()

            def call(case: schemathesis.Case) -> object:
                if time.monotonic() - started > args.time_limit:
                    raise TimeoutError("time limit reached")
                return case.call(base_url=f"{url}{API}", timeout=30)

            failures = fuzz(
                schema,
                call,
                max_examples=args.examples,
                seeds=seed(url),
                on_response=lambda label, status: statuses.update([(label, status)]),
            )
        finally:
            stop_session(proc, grace_s=30)
    for (label, status), count in sorted(statuses.items()):
        print(f"{count:6d}  {status}  {label}")
    timed_out = {k for k, v in failures.items() if "time limit reached" in v}
    for label in sorted(timed_out):
        print(f"skipped (time limit): {label}")
    real = {k: v for k, v in failures.items() if k not in timed_out}
    for label, text in real.items():
        print(f"\nFAILED {label}:\n{text}")
    print(
        f"\n{sum(statuses.values())} requests, {len(real)} failing operations, "
        f"{time.monotonic() - started:.0f} s"
    )
    return 1 if real else 0


if __name__ == "__main__":
    sys.exit(main())
