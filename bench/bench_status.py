"""Embedded-mode status polling against a bare Flask handler, both under gunicorn.

Starts a real ``toolchest-wes serve`` (embedded mode, SQLite store, auth off on loopback)
holding one finished hello-world run, and ``bench/bare_app.py`` (a Flask view returning a
constant dict) under the same gunicorn settings with ``--bare-workers`` processes (2, as the
distributed benchmark's API). Then ``wrk`` with 16 connections for ``--seconds`` on each,
taking turns (bare, embedded, bare, embedded, ...) so both see the same load, and prints the
medians and their ratio (target: >= 0.85).

Usage: python bench/bench_status.py [--rounds 5] [--seconds 10] [--bare-workers 2]
       [--serve-arg=--option=value ...] [--code DIR] [--auth]

``--auth`` serves with ``--auth tokens`` and polls with an API token of the run's owner (the
bare handler gets the same header and ignores it).

``--code DIR`` runs the server from another checkout (``git worktree add DIR <commit>``) with
this virtualenv's libraries, to measure the same ratio for earlier code.
Needs wrk on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import (
    API,
    ROOT,
    embedded_server,
    free_port,
    spawn_session,
    stop_on_signals,
    stop_session,
    submit_hello,
    wrk,
)

from toolchest_wes.models import State


def start_bare(workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """bench/bare_app.py under the server's gunicorn settings with ``workers`` processes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
    env.update(PYTHONPATH=str(ROOT), TOOLCHEST_WES_LOG_LEVEL="WARNING")
    argv = ["-c", "python:toolchest_wes.server.gunicorn_conf", "--workers", str(workers)]
    argv += ["--bind", f"127.0.0.1:{port}", "bench.bare_app:app"]
    proc = spawn_session([sys.executable, "-m", "gunicorn", *argv], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/status"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_session(proc)
            raise RuntimeError("bare Flask did not start")
        time.sleep(0.1)


def api_token(data_dir: Path) -> str:
    """A new API token of user ``bench`` in ``data_dir``, from the real command."""
    command = [sys.executable, "-m", "toolchest_wes.cli.main", "token", "create", "bench"]
    done = subprocess.run(
        [*command, "--data-dir", str(data_dir)], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()[-1]


def finished_run(url: str, headers: dict[str, str]) -> str:
    """The id of a hello-world run that reached COMPLETE on the server at ``url``."""
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        run_id = submit_hello(client)
        deadline = time.monotonic() + 120
        while (state := client.get(f"{API}/runs/{run_id}/status").json()["state"]) not in {
            s.value for s in State if s.is_terminal
        }:
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} did not finish")
            time.sleep(0.05)
    if state != State.COMPLETE.value:
        raise RuntimeError(f"run {run_id} ended {state}")
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--bare-workers", type=int, default=2)
    parser.add_argument("--serve-arg", action="append", default=[], help="more serve options")
    parser.add_argument("--code", type=Path, help="serve this checkout's code")
    parser.add_argument("--auth", action="store_true", help="serve with --auth tokens")
    args = parser.parse_args()
    stop_on_signals()
    if not shutil.which("wrk"):
        sys.exit("wrk is not on PATH")
    bare, bare_url = start_bare(args.bare_workers)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            serve_args = list(args.serve_arg)
            headers: dict[str, str] = {}
            if args.auth:
                serve_args.append("--auth=tokens")
                headers["Authorization"] = f"Bearer {api_token(Path(tmp))}"
            header = next((f"{k}: {v}" for k, v in headers.items()), None)
            with embedded_server(Path(tmp), code=args.code, serve_args=serve_args) as url:
                status_url = f"{url}{API}/runs/{finished_run(url, headers)}/status"
                wrk(bare_url, seconds=2, header=header)  # warm-up of both
                wrk(status_url, seconds=2, header=header)
                theirs, ours = [], []
                for i in range(args.rounds):
                    theirs.append(wrk(bare_url, seconds=args.seconds, header=header))
                    ours.append(wrk(status_url, seconds=args.seconds, header=header))
                    print(
                        f"round {i + 1}: bare {theirs[-1]:.0f} req/s, embedded "
                        f"{ours[-1]:.0f} req/s ({ours[-1] / theirs[-1]:.2f})",
                        flush=True,
                    )
    finally:
        stop_session(bare, grace_s=30)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(
        f"status: embedded GET /runs/{{id}}/status{' with a token' if args.auth else ''} "
        f"{o:.0f} req/s vs bare Flask "
        f"({args.bare_workers} processes) {t:.0f} req/s, medians of {args.rounds} alternating "
        f"{args.seconds} s wrk runs at 16 connections: ratio {o / t:.2f}"
    )


if __name__ == "__main__":
    main()
