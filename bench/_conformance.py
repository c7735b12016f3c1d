"""What the conformance scripts share (``conformance.py`` for CWL, ``wdl_conformance.py`` for
WDL): the WES server they run against, one run's result and its report, the common options and
the loop over runners and modes that stops everything it started, also on Ctrl-C or SIGTERM.

A *direct* runner runs the engine on this machine without a server: it is the baseline. Every
other runner goes through a WES server; a test it does not pass is allowed to fail only if the
baseline of the same subset (run in the same invocation) did not pass it either, else if it is
on the script's built-in list or the ``--expect`` file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from _common import DEFAULT_TOIL_VENV, ROOT, stop_on_signals, stop_session

sys.path.insert(0, str(ROOT))
from tests.processes import Server, clean_env, spawn
from tests.redis_server import RedisServer, start_redis_server

MODES = ("embedded", "distributed")
#: The serve options a worker takes too (written with ``=``).
ENGINE_OPTIONS = ("--engine=", "--toil-")
#: How much of a failure message the JSON summary keeps per test.
MESSAGE_CHARS = 2000


@dataclass
class Result:
    """One runner's results on one subset: against one mode's server, or ``direct``."""

    runner: str
    mode: str
    subset: str
    seconds: float
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    #: Did not pass and is not allowed to fail.
    unexpected: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)

    #: The first word of every printed line.
    SUITE: ClassVar[str] = "conformance"
    #: What the tests in ``unsupported`` are called in the printed lines.
    UNSUPPORTED: ClassVar[str] = "unsupported"

    @property
    def prefix(self) -> str:
        """What starts each printed line of this result."""
        return f"{self.SUITE} {self.runner} {self.mode} {self.subset}"

    def line(self) -> str:
        """The summary line; never a bare "N passed, M failed", which CI reads as pytest's."""
        return (
            f"{self.prefix}: {len(self.passed)} passed, {len(self.failed)} failed, "
            f"{len(self.unsupported)} {self.UNSUPPORTED} ({self.seconds:.0f} s)"
        )

    def add(self, outcomes: dict[str, str]) -> None:
        """File each test id under its outcome (``passed``, ``failed`` or ``unsupported``)."""
        for test_id, outcome in sorted(outcomes.items()):
            getattr(self, outcome).append(test_id)

    def not_passed(self) -> set[str]:
        """The tests that failed or were unsupported."""
        return {*self.failed, *self.unsupported}


class SetupError(RuntimeError):
    """Something the conformance run needs could not be found or started."""


@contextmanager
def wes_server(mode: str, work: Path, serve_args: list[str]) -> Iterator[str]:
    """The server of ``mode``, logs and data under ``work``; yields its base URL."""
    data = work / "data"
    redis: RedisServer | None = None
    workers: list[subprocess.Popen[bytes]] = []
    server: Server | None = None
    try:
        if mode == "distributed":
            executable = shutil.which("redis-server")
            if executable is None:
                raise SetupError("redis-server is not on PATH (Debian package redis-server)")
            (work / "redis").mkdir()
            redis = RedisServer(executable, work / "redis")
            start_redis_server(redis)
            worker_args = ["worker", "--redis", redis.url, "--data-dir", str(data)]
            # A worker runs the engines, so it takes the server's engine settings too.
            engines = [a for a in serve_args if a.startswith(ENGINE_OPTIONS)]
            workers.append(spawn([*worker_args, *engines], clean_env(), work / "worker.log"))
            serve_args = ["--redis", redis.url, *serve_args]
        server = Server(data, *serve_args)
        try:
            server.start()
        except AssertionError as exc:
            raise SetupError(f"toolchest-wes serve did not start: {exc}") from None
        yield server.url
    finally:
        if server is not None and server.proc is not None:
            server.kill(signal.SIGTERM)
        for worker in workers:
            stop_session(worker, grace_s=30)
        if redis is not None:
            redis.stop()


def script(name: str) -> str:
    """The console script ``name`` of this Python's environment, else from PATH.

    Not ``python -m cwltool``: that exits 0 whatever happened, so every should_fail test
    would fail.
    """
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SetupError(f"{name} is not installed here (pip install -e '.[dev]')")
    return found


def toil_serve_args(venv: Path) -> list[str]:
    """The serve options that make Toil, from ``venv``, the server's only engine."""
    return ["--engine=toil", f"--toil-venv={venv}"]


def toil_program(venv: Path, name: str) -> Path:
    """``name`` from the Toil virtualenv ``venv``; a SetupError says how to install it."""
    program = venv / "bin" / name
    if not os.access(program, os.X_OK):
        raise SetupError(
            f"{program} not found; pip install 'toil[cwl,wdl,server]==9.6.*' into --toil-venv"
        )
    return program


def run_session(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> int:
    """Run ``argv`` in its own session, output to ``log``; stop the whole session on the way
    out, so that Ctrl-C stops every runner it started. Its exit code."""
    proc = spawn(argv[1:], env, log, program=argv[:1], cwd=cwd)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            stop_runner(proc)


def stop_runner(proc: subprocess.Popen[bytes], grace_s: float = 60) -> None:
    """Stop the session ``proc`` leads, giving it ``grace_s`` to end.

    The test driver exits at once, but each WES runner still cancels its run on the server,
    which must stay up until they are done.
    """
    stop_session(proc, grace_s)


def keep_logs(work: Path, target: Path) -> None:
    """Copy the logs and result files of one run out of its temporary folder."""
    target.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.log", "*.xml", "*.json", "redis/*.log"):
        for path in work.glob(pattern):
            shutil.copy2(path, target / path.name)


def read_expect(path: Path) -> set[str]:
    """Test ids, one per line; ``#`` starts a comment."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def add_common_options(parser: argparse.ArgumentParser, runners: tuple[str, ...]) -> None:
    """The options every conformance script has."""
    parser.add_argument(
        "--runner", action="append", choices=[*runners, "all"], help="repeatable; default all"
    )
    parser.add_argument(
        "--mode", action="append", choices=[*MODES, "all"], help="repeatable; default embedded"
    )
    parser.add_argument("-j", "--jobs", type=int, default=2, help="tests at once")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="an option for toolchest-wes serve"
    )
    parser.add_argument("--expect", type=Path, help="ids allowed to fail, one per line")
    parser.add_argument("--json", type=Path, help="write a JSON summary here")
    parser.add_argument("--logs", type=Path, help="keep server and runner logs here")
    parser.add_argument("--tests", help="only these test ids, comma-separated")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per test")
    parser.add_argument("--toil-venv", type=Path, default=DEFAULT_TOIL_VENV)


def expand_common(args: argparse.Namespace, runners: tuple[str, ...]) -> None:
    """Replace ``all`` and the defaults of ``--runner`` and ``--mode`` by names."""
    args.runner = expand(args.runner or ["all"], runners)
    args.mode = expand(args.mode or ["embedded"], MODES)


def expand(chosen: list[str], every: tuple[str, ...]) -> list[str]:
    """The names of ``every`` that ``chosen`` names (``all`` names each)."""
    return [name for name in every if name in chosen or "all" in chosen]


#: Runs one runner in one mode (``direct`` for a direct runner) with the options and a
#: temporary folder; one Result per subset.
RunOne = Callable[[str, str, argparse.Namespace, Path], list[Result]]


def run_all(
    args: argparse.Namespace,
    check_setup: Callable[[argparse.Namespace], None],
    direct: dict[str, tuple[str, ...]],
    run_one: RunOne,
    allowed: Callable[[Result, Result | None], set[str]],
    summary: Callable[[], dict[str, Any]],
    name: str = "conformance",
) -> int:
    """Check the setup, run every runner of ``args`` in every mode, report each result and
    write the ``summary`` (with the results) to ``--json``. ``name`` starts error messages.

    ``direct`` maps each direct runner to the results (by ``Result.runner``) it is the
    baseline of; direct runners run first. ``allowed(result, baseline)`` gives the tests ``result``
    may fail, ``baseline`` being the direct runner's result of the same subset if it ran (None
    for a direct result, or when none ran). The exit code:
    0, 1 if a test that is not allowed to fail did not pass, 2 if something could not be
    started, 130 on Ctrl-C or SIGTERM.
    """
    stop_on_signals()
    results: list[Result] = []
    baselines: dict[tuple[str, str], Result] = {}
    order = sorted(args.runner, key=lambda runner: runner not in direct)
    try:
        check_setup(args)
        servers = any(runner not in direct for runner in args.runner)
        if servers and "distributed" in args.mode and shutil.which("redis-server") is None:
            raise SetupError("redis-server is not on PATH (Debian package redis-server)")
        for runner in order:
            for mode in ["direct"] if runner in direct else args.mode:
                with tempfile.TemporaryDirectory(prefix="toolchest-wes-conformance-") as tmp:
                    try:
                        produced = run_one(runner, mode, args, Path(tmp))
                    finally:
                        if args.logs:
                            keep_logs(Path(tmp), args.logs / f"{runner}-{mode}")
                for result in produced:
                    baseline = baselines.get((result.runner, result.subset))
                    tolerated = allowed(result, baseline)
                    result.unexpected = sorted(
                        t for t in [*result.failed, *result.unsupported] if t not in tolerated
                    )
                    for other in direct.get(runner, ()):
                        baselines[(other, result.subset)] = result
                    report(result, baseline)
                    results.append(result)
    except SetupError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if args.json:
            try:
                extra = summary()
            except SetupError:  # said already
                extra = {}
            written = {**extra, "results": [asdict(r) for r in results]}
            args.json.write_text(json.dumps(written, indent=2) + "\n")
    return 1 if any(r.unexpected for r in results) else 0


def report(result: Result, baseline: Result | None) -> None:
    """Print the summary line of ``result`` and the ids of the tests that did not pass."""
    print(result.line(), flush=True)
    if result.failed:
        print(f"{result.prefix} failed: {', '.join(result.failed)}")
    if result.unsupported:
        print(f"{result.prefix} {result.UNSUPPORTED}: {', '.join(result.unsupported)}")
    if result.unexpected:
        print(f"{result.prefix} NOT ALLOWED to fail: {', '.join(result.unexpected)}")
    if baseline is not None:
        worse = sorted(set(baseline.passed) - set(result.passed))
        if worse:
            print(
                f"{result.prefix} pass with {baseline.runner} direct, not through it: "
                f"{', '.join(worse)}"
            )
        better = sorted(set(result.passed) - set(baseline.passed))
        if better:
            print(
                f"{result.prefix} pass through it, not with {baseline.runner} direct: "
                f"{', '.join(better)}"
            )
    sys.stdout.flush()
