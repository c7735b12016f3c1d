"""CWL v1.2 conformance through WES: cwltest, through real WES clients, against a fresh server.

    python bench/conformance.py [--runner toolchest|toil|cwltool|all ...]
        [--mode embedded|distributed|all ...] [--subset required|all] [-j 2]
        [--cwl-dir ../shared/cwl-v1.2] [--serve-arg=--option=value ...] [--expect FILE]
        [--json FILE] [--logs DIR] [--tests ID,ID] [--timeout 300] [--toil-venv DIR]

For every runner and mode it starts what the mode needs on free loopback ports with a fresh
data directory (embedded: ``toolchest-wes serve``; distributed: ``redis-server`` without
persistence, ``toolchest-wes worker`` and ``toolchest-wes serve --redis``), runs cwltest from
the conformance folder (always ``--exclude-tags docker``; ``--tags required`` for the required
subset) and stops everything again, also on Ctrl-C, SIGTERM or failure. Runners:

- toolchest: ``toolchest-wes cwl-runner --wes URL``; the server runs with its default settings.
- toil: ``toil-wes-cwl-runner --wes_endpoint URL`` from the Toil virtualenv (``--toil-venv``,
  else ``TOOLCHEST_WES_TOIL_VENV``); the server runs with ``--output-locations=file``.
- cwltool: ``cwltool --no-container`` directly, without a server: the baseline.

``--serve-arg`` options go to every ``toolchest-wes serve`` (write them with ``=``:
``--serve-arg=--submit-rate=0``). For each runner and mode it prints
``conformance <runner> <mode> <subset>: N passed, M failed, U unsupported (S s)`` and the ids of
the tests that did not pass. It exits 1 if a test that is not allowed to fail (``--expect FILE``,
one id per line, ``#`` comments; else the built-in list of the tests cwltool itself does not
pass) did not pass through some runner, and 2 if something could not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from _common import ROOT

sys.path.insert(0, str(ROOT))
from tests.processes import Server, clean_env, kill_group, spawn
from tests.redis_server import RedisServer, start_redis_server

RUNNERS = ("cwltool", "toolchest", "toil")
MODES = ("embedded", "distributed")
SUBSETS = ("required", "all")
DEFAULT_CWL_DIR = ROOT.parent / "shared" / "cwl-v1.2"
DEFAULT_TOIL_VENV = Path(
    os.environ.get("TOOLCHEST_WES_TOIL_VENV", "/tmp/toolchest-wes-interop/toil")
)
#: Tests that do not pass with ``cwltool --no-container`` itself (cwltool 3.3, measured with
#: ``--runner cwltool``), so no WES server can be expected to pass them through cwltool.
ALLOWED = {
    "required": ("cwloutput_nolimit", "filename_with_hash_mark"),
    "all": (
        "cwloutput_nolimit",
        "filename_with_hash_mark",
        "illegal_symlink",
        # Unsupported: a DockerRequirement under requirements, and --no-container.
        "iwd-container-entryname1",
        "iwd-passthrough2",
        "iwdr_dir_literal_real_file",
        "networkaccess",
        "networkaccess_disabled",
    ),
}
#: Tests a runner cannot pass through any WES server, because the client leaves out files the
#: run needs (explained in bench/README.md): toil-wes-cwl-runner uploads what
#: ``cwltool --print-deps`` lists, which has neither ``$include``d files nor secondary files
#: that only a pattern names.
CLIENT_LIMITS = {
    ("toil", "all"): (
        "initworkdir_expreng_requirements",
        "mixed_version_v10_wf",
        "mixed_version_v11_wf",
        "mixed_version_v12_wf",
    ),
}
#: toil-wes-cwl-runner prints the server's output object as it is and cwltest then opens each
#: File's location as a local path, so the server must answer with file:// locations.
TOIL_SERVE_ARGS = ("--output-locations=file",)
#: How much of a failure message the JSON summary keeps per test.
MESSAGE_CHARS = 2000


@dataclass
class Result:
    """One cwltest run: a runner against one mode's server (``direct`` for cwltool)."""

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

    def line(self) -> str:
        """The summary line; never a bare "N passed, M failed", which CI reads as pytest's."""
        return (
            f"conformance {self.runner} {self.mode} {self.subset}: {len(self.passed)} passed, "
            f"{len(self.failed)} failed, {len(self.unsupported)} unsupported "
            f"({self.seconds:.0f} s)"
        )


class SetupError(RuntimeError):
    """Something the conformance run needs could not be found or started."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so every finally block stops what it started.
    raise KeyboardInterrupt


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
            workers.append(spawn(worker_args, clean_env(), work / "worker.log"))
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
            kill_group(worker)
        if redis is not None:
            redis.stop()


def runner_command(runner: str, url: str, toil_venv: Path) -> tuple[list[str], dict[str, str]]:
    """The command cwltest runs per test (before its own arguments), and its environment."""
    env = clean_env()
    if runner == "cwltool":
        return [script("cwltool"), "--no-container"], env
    if runner == "toolchest":
        return [script("toolchest-wes"), "cwl-runner", "--wes", url], env
    # toil-wes-cwl-runner finds the files to attach with `cwltool --print-deps` from PATH; its
    # own cwltool is the one it was released with.
    env["PATH"] = f"{toil_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # It passes what it does not know (cwltest's --outdir and --quiet among them) to the
    # server as workflow_engine_parameters, which the server must accept.
    return [str(toil_venv / "bin" / "toil-wes-cwl-runner"), "--wes_endpoint", url], env


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


def run_cwltest(
    command: list[str], env: dict[str, str], args: argparse.Namespace, work: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Run cwltest with ``command`` as the runner; each test's outcome, and failure messages."""
    order = args.tests.split(",") if args.tests else None
    junit, badges, log = work / "junit.xml", work / "badges", work / "cwltest.log"
    argv = [sys.executable, "-m", "cwltest", "--test", "conformance_tests.yaml"]
    argv += ["--exclude-tags", "docker", "-j", str(args.jobs), "--timeout", str(args.timeout)]
    argv += ["--junit-xml", str(junit), "--badgedir", str(badges)]
    if args.subset == "required":
        argv += ["--tags", "required"]
    if order is not None:
        argv += ["-n", ",".join(str(number) for number in select(args, order))]
    argv += ["--tool", command[0], "--", *command[1:]]
    # cwltest leaves each test's --outdir in the temporary folder; here that is under `work`,
    # removed at the end, like cwltool's own temporary files.
    (work / "tmp").mkdir(exist_ok=True)
    env = dict(env, TMPDIR=str(work / "tmp"))
    with open(log, "wb") as out:
        # Its own session, so that stopping it stops every runner process it started.
        proc = subprocess.Popen(
            argv,
            cwd=args.cwl_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait()
        finally:
            if proc.poll() is None:
                stop_session(proc)
    if not junit.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise SetupError(f"cwltest wrote no results (exit {proc.returncode}):\n{tail}")
    return read_results(junit, badges / "all.md", order)


def select(args: argparse.Namespace, ids: list[str]) -> list[int]:
    """cwltest's ``-n`` numbers of the tests ``ids``, in that order.

    Not ``-s``: cwltest 2.7 cannot find the first test by name (its index 0 counts as not
    found).
    """
    from cwltest.utils import load_and_validate_tests, shortname

    tests, _metadata = load_and_validate_tests(str(args.cwl_dir / "conformance_tests.yaml"))
    # The same filters as cwltest's, in its order, so that the numbers match its own.
    tests = [t for t in tests if args.subset == "all" or "required" in t.get("tags", [])]
    tests = [t for t in tests if "docker" not in t.get("tags", [])]
    numbers = {shortname(str(t.get("id"))): number for number, t in enumerate(tests, 1)}
    missing = [test_id for test_id in ids if test_id not in numbers]
    if missing:
        raise SetupError(f"no such test in the {args.subset} subset: {', '.join(missing)}")
    return [numbers[test_id] for test_id in ids]


def stop_session(proc: subprocess.Popen[bytes], grace_s: float = 60) -> None:
    """SIGTERM the session ``proc`` leads and wait until every process of it has exited.

    cwltest exits at once, but each runner still cancels its run on the server, which must
    stay up until they are done.
    """
    kill_group(proc)
    deadline = time.monotonic() + grace_s
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def read_results(
    junit: Path, badge: Path, order: list[str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Outcomes (passed, failed, unsupported) and failure messages by test id.

    cwltest's JUnit XML has no <failure> element for a failure without a message (a
    should_fail test whose runner exited 0), so it would read as passed; the badge report's
    list of failed tests, built from the same results as cwltest's exit code, has it.
    With ``-n``, cwltest 2.7 labels its k-th result with the k-th test of the whole list, not
    of the selection; ``order`` (the selected ids, in the order given to ``-n``) corrects that.
    """
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    relabel: dict[str, str] = {}
    for k, case in enumerate(ET.parse(junit).iter("testcase")):
        test_id = case.get("file") or case.get("name") or "?"
        if order is not None:
            relabel[test_id] = order[k]
            test_id = order[k]
        failure = case.find("failure")
        if failure is not None:
            outcomes[test_id] = "failed"
            text = (failure.get("message") or failure.text or "")[-MESSAGE_CHARS:]
            # A runner that exits non-zero gets only "returned non-zero" as its message; the
            # reason is in its stderr.
            stderr = case.findtext("system-err") or ""
            if stderr:
                text += f"\n--- stderr ---\n{stderr[-MESSAGE_CHARS:]}"
            messages[test_id] = text
        elif case.find("skipped") is not None:
            outcomes[test_id] = "unsupported"
        else:
            outcomes[test_id] = "passed"
    if badge.exists():
        section = ""
        for badge_line in badge.read_text().splitlines():
            if badge_line.startswith("## "):
                section = badge_line
            elif "failed" in section and (match := re.match(r"- \[(.+?)\]\(", badge_line)):
                test_id = relabel.get(match[1], match[1])
                if outcomes.get(test_id) != "failed":
                    outcomes[test_id] = "failed"
                    messages[test_id] = "failed without a message (should_fail, but exited 0)"
    return outcomes, messages


def run_one(
    runner: str, mode: str, args: argparse.Namespace, work: Path, allowed: set[str]
) -> Result:
    """Start the server ``mode`` needs (none for cwltool), run cwltest through ``runner``."""
    started = time.monotonic()
    if runner == "cwltool":
        command, env = runner_command(runner, "", args.toil_venv)
        outcomes, messages = run_cwltest(command, env, args, work)
    else:
        serve_args = [*(TOIL_SERVE_ARGS if runner == "toil" else ()), *args.serve_arg]
        with wes_server(mode, work, serve_args) as url:
            command, env = runner_command(runner, url, args.toil_venv)
            outcomes, messages = run_cwltest(command, env, args, work)
    result = Result(runner, mode, args.subset, time.monotonic() - started, messages=messages)
    allowed = allowed | set(CLIENT_LIMITS.get((runner, args.subset), ()))
    for test_id, outcome in sorted(outcomes.items()):
        getattr(result, outcome).append(test_id)
        if outcome != "passed" and test_id not in allowed:
            result.unexpected.append(test_id)
    return result


def report(result: Result, baseline: Result | None) -> None:
    """Print the summary line of ``result`` and the ids of the tests that did not pass."""
    prefix = f"conformance {result.runner} {result.mode} {result.subset}"
    print(result.line(), flush=True)
    if result.failed:
        print(f"{prefix} failed: {', '.join(result.failed)}")
    if result.unsupported:
        print(f"{prefix} unsupported: {', '.join(result.unsupported)}")
    if result.unexpected:
        print(f"{prefix} NOT ALLOWED to fail: {', '.join(result.unexpected)}")
    if baseline is not None and baseline is not result:
        worse = sorted(set(baseline.passed) - set(result.passed))
        if worse:
            print(f"{prefix} pass with cwltool direct, not through it: {', '.join(worse)}")
    sys.stdout.flush()


def keep_logs(work: Path, target: Path) -> None:
    """Copy the logs and the JUnit XML of one cwltest run out of its temporary folder."""
    target.mkdir(parents=True, exist_ok=True)
    for path in [*work.glob("*.log"), *work.glob("*.xml"), *work.glob("redis/*.log")]:
        shutil.copy2(path, target / path.name)


def read_expect(path: Path) -> set[str]:
    """Test ids, one per line; ``#`` starts a comment."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runner", action="append", choices=[*RUNNERS, "all"], help="repeatable; default all"
    )
    parser.add_argument(
        "--mode", action="append", choices=[*MODES, "all"], help="repeatable; default embedded"
    )
    parser.add_argument("--subset", choices=SUBSETS, default="required")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="tests at once (cwltest -j)")
    parser.add_argument("--cwl-dir", type=Path, default=DEFAULT_CWL_DIR)
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="an option for toolchest-wes serve"
    )
    parser.add_argument("--expect", type=Path, help="ids allowed to fail, one per line")
    parser.add_argument("--json", type=Path, help="write a JSON summary here")
    parser.add_argument("--logs", type=Path, help="keep server and cwltest logs here")
    parser.add_argument("--tests", help="only these test ids, comma-separated")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per test")
    parser.add_argument("--toil-venv", type=Path, default=DEFAULT_TOIL_VENV)
    args = parser.parse_args()
    args.runner = _expand(args.runner or ["all"], RUNNERS)
    args.mode = _expand(args.mode or ["embedded"], MODES)
    args.cwl_dir = args.cwl_dir.resolve()
    return args


def _expand(chosen: list[str], every: tuple[str, ...]) -> list[str]:
    return [name for name in every if name in chosen or "all" in chosen]


def check_setup(args: argparse.Namespace) -> None:
    """Fail before starting anything if a runner or the test suite is missing."""
    if not (args.cwl_dir / "conformance_tests.yaml").is_file():
        raise SetupError(f"no conformance_tests.yaml in {args.cwl_dir} (see --cwl-dir)")
    toil = args.toil_venv / "bin" / "toil-wes-cwl-runner"
    if "toil" in args.runner and not os.access(toil, os.X_OK):
        raise SetupError(f"{toil} not found; pip install 'toil[cwl,server]' into --toil-venv")
    servers = any(runner != "cwltool" for runner in args.runner)
    if servers and "distributed" in args.mode and shutil.which("redis-server") is None:
        raise SetupError("redis-server is not on PATH (Debian package redis-server)")


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    allowed = read_expect(args.expect) if args.expect else set(ALLOWED[args.subset])
    results: list[Result] = []
    baseline: Result | None = None
    try:
        check_setup(args)
        for runner in args.runner:
            for mode in ["direct"] if runner == "cwltool" else args.mode:
                with tempfile.TemporaryDirectory(prefix="toolchest-wes-conformance-") as tmp:
                    try:
                        result = run_one(runner, mode, args, Path(tmp), allowed)
                    finally:
                        if args.logs:
                            keep_logs(Path(tmp), args.logs / f"{runner}-{mode}")
                baseline = result if runner == "cwltool" else baseline
                report(result, baseline)
                results.append(result)
    except SetupError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conformance: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if args.json:
            summary = {
                "subset": args.subset,
                "cwl_dir": str(args.cwl_dir),
                "allowed": sorted(allowed),
                "serve_args": args.serve_arg,
                "results": [asdict(r) for r in results],
            }
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if any(r.unexpected for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
