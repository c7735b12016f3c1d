"""Helpers shared by the benchmark scripts (run them as ``python bench/<script>.py``)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from toolchest_wes.store.base import StateStore

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "hello.cwl"
#: The same in WDL, without a task (see the file).
HELLO_WDL = Path(__file__).resolve().parent / "hello.wdl"
#: The same as a Snakefile.
HELLO_SMK = ROOT / "examples" / "snakemake" / "hello" / "Snakefile"
#: Each language's hello-world and the workflow_type_version sent with it.
HELLO_BY_TYPE = {"CWL": (HELLO, "v1.2"), "WDL": (HELLO_WDL, "1.0"), "SMK": (HELLO_SMK, "1.0")}
API = "/ga4gh/wes/v1"
#: A virtualenv with Toil (``toil[cwl,wdl,server]``), as ``scripts/interop.sh`` and CI make.
DEFAULT_TOIL_VENV = Path(
    os.environ.get("TOOLCHEST_WES_TOIL_VENV", "/tmp/toolchest-wes-interop/toil")
)


#: The signals on which a benchmark stops everything it started: Ctrl-C, ``kill``, and the
#: terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP unwind the benchmark as Ctrl-C does, once.

    Python's default SIGTERM ends the process without running a single ``finally`` block, so
    a benchmark killed by hand left its servers running. With this, each signal raises
    ``KeyboardInterrupt`` in the main thread, and the ``finally`` blocks and context managers
    that stop what the benchmark started (``stop_sessions``) run. Later signals are ignored:
    a second Ctrl-C would otherwise cut that cleanup short, and each stop is bounded anyway
    (SIGKILL after its grace period). Call it first thing in ``main``.

    The handler runs wherever the main thread is. Where that is a finalizer (``__del__``) or
    a weak reference's callback, Python prints the exception and drops it, and a benchmark
    so stopped ran on to its end; such an interrupt is raised again once that code has
    returned (``sys.unraisablehook`` sees it dropped).
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, _unwind)
    sys.unraisablehook = functools.partial(_raise_dropped_interrupt, sys.unraisablehook)


def _unwind(signum: int, frame: FrameType | None) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    # os.write, not print: the handler may interrupt a print of the main thread.
    os.write(2, f"\n{signal.Signals(signum).name}: stopping what the benchmark started\n".encode())
    _interrupt(signum, frame)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


#: How soon an interrupt that a finalizer dropped is raised again.
_RETRY_S = 0.01


def _raise_dropped_interrupt(previous: Callable[[Any], object], unraisable: Any) -> None:
    """``sys.unraisablehook``: a ``KeyboardInterrupt`` dropped where exceptions cannot
    propagate is raised again shortly, from SIGALRM's handler; anything else goes on to
    ``previous``."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        previous(unraisable)
        return
    signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, _RETRY_S)


def hello_run_folder(prefix: str) -> tuple[Path, list[str]]:
    """A new temporary folder laid out as the server lays out a hello-world run (``out``,
    ``work``, ``tasks``, ``job.json``), and the arguments of ``cwltool_child.main`` that run
    hello-world in it. The caller removes the folder."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    for name in ("out", "work", "tasks"):
        (folder / name).mkdir()
    (folder / "job.json").write_text(json.dumps({"message": "bench"}))
    argv = ["--disable-color", "--no-container", "--outdir", str(folder / "out")]
    argv += ["--tmpdir-prefix", f"{folder}/work/tmp", "--tmp-outdir-prefix"]
    argv += [f"{folder}/work/out", str(HELLO), str(folder / "job.json")]
    return folder, argv


def silence_output() -> None:
    """Point this process's standard output and error at /dev/null: a forked run's."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)


def spawn_session(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: Any = None,
    stdout: Any = subprocess.DEVNULL,
    stderr: Any = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """``argv`` in a session (so a process group) of its own.

    One ``killpg`` then reaches every process it starts (gunicorn's and Celery's workers, the
    zygote); and a Ctrl-C, which the terminal sends to its whole foreground group, reaches
    only the benchmark, which stops the servers in order instead of leaving each to die on its
    own.
    """
    return subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def stop_sessions(procs: Sequence[subprocess.Popen[Any]], grace_s: float = 20.0) -> None:
    """SIGTERM the process group of each of ``procs`` (in that order), wait until every
    process of them has exited, SIGKILL the groups still there after ``grace_s``; reap all.

    Waiting for the group, not only for its leader: a gunicorn arbiter may exit before one of
    its workers does, which was then left running.
    """
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        alive = [proc for proc in alive if _group_alive(proc)]
        if alive:
            time.sleep(0.1)
    for proc in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def stop_session(proc: subprocess.Popen[Any], grace_s: float = 20.0) -> None:
    """``stop_sessions`` of one process."""
    stop_sessions([proc], grace_s)


def _group_alive(proc: subprocess.Popen[Any]) -> bool:
    # Reap the leader first: a zombie still counts as a member of its group.
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(url: str, seconds: int = 10, connections: int = 16, header: str | None = None) -> float:
    """Requests per second that ``wrk`` (4 threads) reaches on ``url``, sending ``header``
    (``"Name: value"``) if given; any non-2xx answer is a failure."""
    extra = [] if header is None else ["-H", header]
    out = subprocess.run(
        ["wrk", "-t", "4", "-c", str(connections), "-d", f"{seconds}s", *extra, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not match or errors:
        raise RuntimeError(out)
    return float(match.group(1))


def post_hello(
    client: httpx.Client,
    message: str = "bench",
    tags: dict[str, str] | None = None,
    engine: str | None = None,
    workflow_type: str = "CWL",
) -> httpx.Response:
    """POST the hello-world example (``workflow_type`` CWL, WDL or SMK), with ``tags`` and
    ``workflow_engine`` if given; the response, whatever it is."""
    workflow, version = HELLO_BY_TYPE[workflow_type]
    data = {
        "workflow_type": workflow_type,
        "workflow_type_version": version,
        "workflow_url": workflow.name,
        "workflow_params": json.dumps(hello_params(workflow_type, message)),
    }
    if tags:
        data["tags"] = json.dumps(tags)
    if engine:
        data["workflow_engine"] = engine
    return client.post(
        f"{API}/runs",
        data=data,
        files=[("workflow_attachment", (workflow.name, workflow.read_bytes()))],
    )


def hello_params(workflow_type: str, message: str) -> dict[str, str]:
    """The inputs of the hello-world example (WDL names them by workflow)."""
    return {"hello.message" if workflow_type == "WDL" else "message": message}


def submit_hello(
    client: httpx.Client,
    message: str = "bench",
    engine: str | None = None,
    workflow_type: str = "CWL",
) -> str:
    """POST the hello-world example; returns the run id."""
    response = post_hello(client, message, engine=engine, workflow_type=workflow_type)
    response.raise_for_status()
    return str(response.json()["run_id"])


def list_all_runs(client: httpx.Client) -> list[dict[str, Any]]:
    """Every run of GET /runs, following next_page_token to the end."""
    runs: list[dict[str, Any]] = []
    token = ""
    while True:
        response = client.get(f"{API}/runs", params={"page_size": 1000, "page_token": token})
        response.raise_for_status()
        page = response.json()
        runs += page["runs"]
        token = page["next_page_token"]
        if not token:
            return runs


def middle_token(store: StateStore, page_size: int, **filters: Any) -> str | None:
    """The token of the page halfway down a store's listing."""
    tokens: list[str] = []
    token = None
    while True:
        token = store.list_runs(page_size=page_size, page_token=token, **filters).next_page_token
        if token is None:
            break
        tokens.append(token)
    return tokens[len(tokens) // 2] if tokens else None


@contextmanager
def embedded_server(
    data_dir: Path,
    code: Path | None = None,
    serve_args: Sequence[str] = (),
    log: Path | None = None,
) -> Iterator[str]:
    """A `toolchest-wes serve` process on a free port, without submit limits; yields its URL.

    ``code`` is a checkout whose code the server runs (``PYTHONPATH``) with this virtualenv's
    libraries; by default the installed package. ``serve_args`` are more serve options.
    ``log``: a file that gets the server's log at level INFO (else warnings are dropped).
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
    env["TOOLCHEST_WES_LOG_LEVEL"] = "INFO" if log else "WARNING"
    # The benchmarks submit far faster than one user may by default.
    env["TOOLCHEST_WES_SUBMIT_RATE"] = "0"
    env["TOOLCHEST_WES_MAX_ACTIVE_RUNS_PER_USER"] = "0"
    if code is not None:
        env["PYTHONPATH"] = str(code)
    argv = [sys.executable, "-m", "toolchest_wes.cli.main", "serve", "--port", str(port)]
    with open(log or os.devnull, "wb") as stderr:
        proc = spawn_session(
            [*argv, "--data-dir", str(data_dir), *serve_args], env=env, cwd=code, stderr=stderr
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the server ({code or 'installed'}) did not start")
            time.sleep(0.1)
        yield url
    finally:
        stop_session(proc, grace_s=30)


def process_tree_cpu_ms(root: int) -> float:
    """CPU milliseconds used so far by process ``root`` and every process below it, including
    children they already reaped (Linux, from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        # utime, stime, cutime, cstime
        times[int(entry)] = sum(int(f) for f in fields[11:15])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total * 1000 / tick


def server_pid(code: Path) -> int:
    """The pid of the embedded server, started by this process, that runs ``code``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != os.getpid():
            continue
        if f"PYTHONPATH={code}".encode() in environ:
            return int(entry)
    raise LookupError(f"no server of this process runs {code}")


def interleaved(
    calls: Sequence[Callable[[], object]], repeat: int, *, warmup: int = 10
) -> tuple[list[float], list[float]]:
    """Milliseconds of each of ``repeat`` calls of both, alternating, after a warm-up of
    ``warmup`` calls each, so that both see the same machine load."""
    for _ in range(min(warmup, repeat)):
        for call in calls:
            call()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for call, times in zip(calls, samples, strict=True):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
    return samples
