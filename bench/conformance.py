"""CWL v1.2 conformance through WES: cwltest, through real WES clients, against a fresh server.

    python bench/conformance.py [--runner toolchest|toil|cwltool|toil-cwl-runner|all ...]
        [--engine cwltool|toil|all ...] [--mode embedded|distributed|all ...]
        [--subset required|all] [-j 2] [--cwl-dir ../shared/cwl-v1.2]
        [--serve-arg=--option=value ...] [--expect FILE] [--json FILE] [--logs DIR]
        [--tests ID,ID] [--timeout 300] [--toil-venv DIR]

For every runner, engine and mode it starts what the mode needs on free loopback ports with a
fresh data directory (embedded: ``toolchest-wes serve``; distributed: ``redis-server`` without
persistence, ``toolchest-wes worker`` and ``toolchest-wes serve --redis``), runs cwltest from
the conformance folder (always ``--exclude-tags docker``; ``--tags required`` for the required
subset) and stops everything again, also on Ctrl-C, SIGTERM or failure. Runners:

- toolchest: ``toolchest-wes cwl-runner --wes URL``; the server runs with its default settings.
- toil: ``toil-wes-cwl-runner --wes_endpoint URL`` from the Toil virtualenv (``--toil-venv``,
  else ``TOOLCHEST_WES_TOIL_VENV``); the server runs with ``--output-locations=file``.
- cwltool: ``cwltool --no-container`` directly, without a server: the baseline of the
  cwltool engine.
- toil-cwl-runner: ``toil-cwl-runner --no-container`` from the Toil virtualenv directly,
  without a server: the baseline of the toil engine.

``--engine`` picks the server's engine for the WES runners (default cwltool): with ``toil``
the server offers only Toil (``serve --engine toil``, so it is also the default engine of a
client that names none) and ``toolchest-wes cwl-runner --engine toil`` sends
``workflow_engine=toil``; such a result is labelled ``<runner>/toil``.

``--serve-arg`` options go to every ``toolchest-wes serve`` (write them with ``=``:
``--serve-arg=--submit-rate=0``). For each runner and mode it prints
``conformance <runner> <mode> <subset>: N passed, M failed, U unsupported (S s)`` and the ids of
the tests that did not pass. It exits 1 if a test that is not allowed to fail did not pass
through some runner: with ``--expect FILE`` (one id per line, ``#`` comments) the tests
listed there, else those the engine's direct runner did not pass when it ran too, else the
built-in list of the tests that engine does not pass directly. It exits 2 if something could
not be started.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from _common import ROOT
from _conformance import (
    MESSAGE_CHARS,
    Result,
    SetupError,
    add_common_options,
    expand,
    expand_common,
    read_expect,
    run_all,
    run_session,
    script,
    toil_program,
    toil_serve_args,
    wes_server,
)

from tests.processes import clean_env

RUNNERS = ("cwltool", "toil-cwl-runner", "toolchest", "toil")
ENGINES = ("cwltool", "toil")
#: Each engine's direct runner, the baseline of the WES runners on that engine.
DIRECT = {"cwltool": "cwltool", "toil": "toil-cwl-runner"}
SUBSETS = ("required", "all")
DEFAULT_CWL_DIR = ROOT.parent / "shared" / "cwl-v1.2"
#: Tests that do not pass with ``cwltool --no-container`` itself (cwltool 3.3, measured with
#: ``--runner cwltool``), so no WES server can be expected to pass them through cwltool.
ALLOWED_CWLTOOL = {
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
#: Tests that do not pass with ``toil-cwl-runner --no-container`` itself (Toil 9.6, measured
#: with ``--runner toil-cwl-runner``): the same required tests as cwltool; the whole suite was
#: not measured, so cwltool's list stands in for it.
ALLOWED_TOIL = {
    "required": ("cwloutput_nolimit", "filename_with_hash_mark"),
    "all": ALLOWED_CWLTOOL["all"],
}
#: The tests each engine does not pass when run directly.
BUILT_IN = {"cwltool": ALLOWED_CWLTOOL, "toil": ALLOWED_TOIL}
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


def runner_command(
    runner: str, url: str, toil_venv: Path, engine: str = "cwltool"
) -> tuple[list[str], dict[str, str]]:
    """The command cwltest runs per test (before its own arguments), and its environment."""
    env = clean_env()
    if runner == "cwltool":
        return [script("cwltool"), "--no-container"], env
    if runner == "toil-cwl-runner":
        # Toil starts its workers (_toil_worker) by name, from PATH.
        env["PATH"] = f"{toil_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        # Without a container, as the cwltool baseline and the server run such tools.
        return [str(toil_program(toil_venv, "toil-cwl-runner")), "--no-container"], env
    if runner == "toolchest":
        engine_args = [] if engine == "cwltool" else ["--engine", engine]
        return [script("toolchest-wes"), "cwl-runner", "--wes", url, *engine_args], env
    # toil-wes-cwl-runner finds the files to attach with `cwltool --print-deps` from PATH; its
    # own cwltool is the one it was released with.
    env["PATH"] = f"{toil_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # It passes what it does not know (cwltest's --outdir and --quiet among them) to the
    # server as workflow_engine_parameters, which the server must accept.
    return [str(toil_venv / "bin" / "toil-wes-cwl-runner"), "--wes_endpoint", url], env


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
    code = run_session(argv, args.cwl_dir, env, log)
    if not junit.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise SetupError(f"cwltest wrote no results (exit {code}):\n{tail}")
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


def run_one(runner: str, mode: str, args: argparse.Namespace, work: Path) -> list[Result]:
    """Start the server ``mode`` needs (none for a direct runner), run cwltest through
    ``runner`` on every engine of ``args``; one result per engine."""
    if mode == "direct":
        command, env = runner_command(runner, "", args.toil_venv)
        return [cwltest_result(runner, mode, command, env, args, work)]
    results = []
    for engine in args.engine:
        engine_work = work / engine
        engine_work.mkdir()
        serve_args = [*(TOIL_SERVE_ARGS if runner == "toil" else ()), *args.serve_arg]
        if engine == "toil":
            serve_args += toil_serve_args(args.toil_venv)
        label = runner if engine == "cwltool" else f"{runner}/{engine}"
        with wes_server(mode, engine_work, serve_args) as url:
            command, env = runner_command(runner, url, args.toil_venv, engine)
            results.append(cwltest_result(label, mode, command, env, args, engine_work))
    return results


def cwltest_result(
    label: str,
    mode: str,
    command: list[str],
    env: dict[str, str],
    args: argparse.Namespace,
    work: Path,
) -> Result:
    """Run cwltest through ``command``; its result, labelled ``label``."""
    started = time.monotonic()
    outcomes, messages = run_cwltest(command, env, args, work)
    result = Result(label, mode, args.subset, time.monotonic() - started, messages=messages)
    result.add(outcomes)
    return result


def allowed_for(args: argparse.Namespace) -> Callable[[Result, Result | None], set[str]]:
    """Which tests a result may fail (see the module's docstring)."""
    expected = read_expect(args.expect) if args.expect else None

    def allowed(result: Result, baseline: Result | None) -> set[str]:
        runner, _, engine = result.runner.partition("/")
        limits = set(CLIENT_LIMITS.get((runner, args.subset), ()))
        if expected is not None:
            return expected | limits
        if baseline is not None:
            return baseline.not_passed() | limits
        engine_of = {runner: engine for engine, runner in DIRECT.items()}
        built_in = BUILT_IN[engine_of.get(runner) or engine or "cwltool"]
        return set(built_in[args.subset]) | limits

    return allowed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(parser, RUNNERS)
    parser.add_argument(
        "--engine",
        action="append",
        choices=[*ENGINES, "all"],
        help="the server's engine for the WES runners; repeatable; default cwltool",
    )
    parser.add_argument("--subset", choices=SUBSETS, default="required")
    parser.add_argument("--cwl-dir", type=Path, default=DEFAULT_CWL_DIR)
    args = parser.parse_args()
    expand_common(args, RUNNERS)
    args.engine = expand(args.engine or ["cwltool"], ENGINES)
    args.cwl_dir = args.cwl_dir.resolve()
    return args


def check_setup(args: argparse.Namespace) -> None:
    """Fail before starting anything if a runner or the test suite is missing."""
    if not (args.cwl_dir / "conformance_tests.yaml").is_file():
        raise SetupError(f"no conformance_tests.yaml in {args.cwl_dir} (see --cwl-dir)")
    toil_programs = {"toil": "toil-wes-cwl-runner", "toil-cwl-runner": "toil-cwl-runner"}
    for runner in args.runner:
        if runner in toil_programs:
            toil_program(args.toil_venv, toil_programs[runner])


def main() -> int:
    args = parse_args()
    wes_runners = [r for r in RUNNERS if r not in DIRECT.values()]
    direct = {
        runner: tuple(w if engine == "cwltool" else f"{w}/{engine}" for w in wes_runners)
        for engine, runner in DIRECT.items()
    }
    summary = {
        "subset": args.subset,
        "cwl_dir": str(args.cwl_dir),
        "engines": args.engine,
        "serve_args": args.serve_arg,
    }
    return run_all(args, check_setup, direct, run_one, allowed_for(args), lambda: summary)


if __name__ == "__main__":
    sys.exit(main())
