"""WDL conformance through WES: the WDL conformance suite, run by Toil directly and through a
fresh server's Toil engine.

    python bench/wdl_conformance.py [--runner toil-wdl-runner|toolchest|all ...]
        [--mode embedded|distributed|all ...] [--versions 1.0,1.1] [--subset quick|all]
        [--tags TAG,TAG] [--tests ID,ID] [-j 2] [--wdl-dir ../shared/wdl-conformance-tests]
        [--serve-arg=--option=value ...] [--expect FILE] [--json FILE] [--logs DIR]
        [--timeout 300] [--toil-venv DIR]

The suite (``conformance.yaml``, one WDL file and inputs per test) is run by its own
``run.py`` (through ``_wdl_suite.py``, with the Toil virtualenv's Python, in a copy of the
suite), which runs ``toil-wdl-runner WDL -i INPUTS -m RESULTS`` per test and compares the
outputs with the expected ones. Runners:

- toil-wdl-runner: Toil's own, from ``--toil-venv``, directly: the baseline. With
  ``--direct-tasks host`` it runs with ``--container singularity`` and the server's
  stand-in for Singularity (``toolchest_wes.engines.toil_hostexec``) on its PATH, so its
  tasks run on the host as the server runs them.
- toolchest: ``toil-wdl-runner`` on the suite's PATH is ``wdl_wes_runner.py``, which posts
  the WDL file, its imports and its input files as attachments to a fresh server
  (``workflow_type=WDL``, ``workflow_engine=toil``), waits, downloads the outputs and writes
  them as Toil would; the server offers only Toil, from ``--toil-venv`` (``serve --engine toil
  --toil-venv DIR``, with its default settings: WDL tasks run on the host, without a
  container; embedded: ``toolchest-wes serve``; distributed: also ``redis-server`` and
  ``toolchest-wes worker``).

Every test of the selection runs once per version of ``--versions`` that it declares.
``--subset quick`` (the default) is a handful of tests that pass directly here, for CI;
``--subset all`` is every test; ``--tags`` and ``--tests`` narrow either down. Each runner
gets ``--timeout`` seconds per test.

Toil 9.6 run directly runs every WDL task in a container (a task that names no image gets
miniwdl's default), so on a machine without a container runtime every test with a task fails
there; such a failed test is counted apart, as "need a container runtime" (the
``unsupported`` list of the JSON summary), and the summary lists the selected tests with a
task per version under ``container``. The server runs tasks on the host, so they can pass
through it.

For each runner, mode and version it prints ``wdl-conformance <runner> <mode> <version>: N
passed, M failed, C need a container runtime (S s)`` and the ids of the tests that did not
pass. It exits 1 if a test that is not allowed to fail did not pass (``--expect FILE``, one
id per line; else, when the baseline ran too, a test it passed; else one outside the
built-in list of those Toil does not pass directly here), and 2 if something could not be
started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from _common import ROOT
from _conformance import (
    MESSAGE_CHARS,
    Result,
    SetupError,
    add_common_options,
    expand_common,
    read_expect,
    run_all,
    run_session,
    toil_program,
    toil_serve_args,
    wes_server,
)

from tests.processes import clean_env

BENCH = Path(__file__).resolve().parent
RUNNERS = ("toil-wdl-runner", "toolchest")
DIRECT = {"toil-wdl-runner": ("toolchest",)}
VERSIONS = ("draft-2", "1.0", "1.1")
SUBSETS = ("quick", "all")
DEFAULT_WDL_DIR = ROOT.parent / "shared" / "wdl-conformance-tests"
#: Tests that pass through the server here (and with toil-wdl-runner directly, tasks on the
#: host), for CI: values of every kind, a File input, File outputs of a task, a subworkflow
#: import, a task that names a Docker image, and a workflow that must fail.
QUICK = (
    "select_first",
    "struct",
    "pair",
    "basename",
    "stdout_output",
    "sub_file",
    "null_optional_vs_default_subworkflows",
    "md5",
    "range_fail",
)
#: Tests that toil-wdl-runner (Toil 9.6) does not pass directly here, with its tasks on the
#: host (measured with ``--runner toil-wdl-runner --direct-tasks host --subset all``; the
#: server fails the same ones): ``Object`` is an unknown type to it, it cannot parse a string
#: in a 1.0 placeholder, it does not coerce an array as 1.1 allows, its ``write_json`` is not
#: the file ``as_map`` expects, and ``miniwdl_self_test`` downloads its input from the network.
BUILT_IN: dict[str, tuple[str, ...]] = {
    "draft-2": (),
    "1.0": ("object", "string_placeholders_conditionals_1_0", "miniwdl_self_test"),
    "1.1": ("array_coerce", "as_map", "miniwdl_self_test"),
}
#: A WDL task: Toil runs each in a container.
TASK = re.compile(r"^\s*task\s+\w+", re.MULTILINE)
IMPORT = re.compile(r'^\s*import\s+"([^"]+)"', re.MULTILINE)
#: run.py's statuses, as outcomes (a failed test that needs a container is "unsupported").
OUTCOMES = {"SUCCEEDED": "passed", "WARNING": "passed", "FAILED": "failed"}


class WdlResult(Result):
    """The results of one runner on one WDL version."""

    SUITE = "wdl-conformance"
    UNSUPPORTED = "need a container runtime"


def load_tests(wdl_dir: Path) -> list[dict[str, Any]]:
    """The tests of ``conformance.yaml``; a test's number is its index."""
    tests = yaml.safe_load((wdl_dir / "conformance.yaml").read_text())
    if not isinstance(tests, list):
        raise SetupError(f"{wdl_dir / 'conformance.yaml'} is not a list of tests")
    return tests


def needs_container(test: dict[str, Any], wdl_dir: Path) -> bool:
    """Whether the test's workflow, or one it imports, has a task."""
    pending = [wdl_dir / test["inputs"]["dir"] / test["inputs"]["wdl"]]
    seen: set[Path] = set()
    while pending:
        path = pending.pop().resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text()
        if TASK.search(text):
            return True
        pending += [path.parent / target for target in IMPORT.findall(text)]
    return False


def select(tests: list[dict[str, Any]], args: argparse.Namespace, version: str) -> list[int]:
    """The numbers of the tests to run on ``version``."""
    ids = set(args.tests.split(",")) if args.tests else None
    tags = set(args.tags.split(",")) if args.tags else None
    if ids is not None:
        known = {test["id"] for test in tests}
        if ids - known:
            raise SetupError(f"no such test: {', '.join(sorted(ids - known))}")
    chosen = []
    for number, test in enumerate(tests):
        if version not in test["versions"]:
            continue
        if args.subset == "quick" and test["id"] not in QUICK:
            continue
        if ids is not None and test["id"] not in ids:
            continue
        if tags is not None and not tags & set(test.get("tags", [])):
            continue
        chosen.append(number)
    return chosen


def runner_bin(runner: str, url: str, args: argparse.Namespace, work: Path) -> Path:
    """A folder with the ``toil-wdl-runner`` the suite runs: Toil's, under a time limit, or
    one that runs the workflow through the server at ``url``."""
    folder = work / "bin"
    folder.mkdir(exist_ok=True)
    if runner == "toil-wdl-runner":
        toil = toil_program(args.toil_venv, "toil-wdl-runner")
        command = f'timeout -k 10 {args.timeout} {toil} "$@"'
        if args.direct_tasks == "host":
            # The server's stand-in for Singularity, which runs each task on the host.
            stand_in = folder / "singularity"
            stand_in.write_text(
                f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} "
                '-m toolchest_wes.engines.toil_hostexec "$@"\n'
            )
            stand_in.chmod(0o755)
            images = work / "images"
            command = (
                f"env SINGULARITY_CACHEDIR={images}/singularity "
                f"MINIWDL__SINGULARITY__IMAGE_CACHE={images}/miniwdl "
                f"{command} --container singularity"
            )
    else:
        client = f"{sys.executable} {BENCH / 'wdl_wes_runner.py'}"
        command = f'{client} --wes {url} --engine toil --timeout {args.timeout} "$@"'
    wrapper = folder / "toil-wdl-runner"
    wrapper.write_text(f"#!/bin/sh\nexec {command}\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return folder


def copy_suite(wdl_dir: Path, work: Path) -> Path:
    """A writable copy of the suite: run.py writes beside the tests and into its folder."""
    suite = work / "suite"
    shutil.copytree(wdl_dir, suite, ignore=shutil.ignore_patterns(".git"))
    for path in [suite, *suite.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return suite


def run_version(
    label: str, mode: str, version: str, bin_dir: Path, args: argparse.Namespace, work: Path
) -> WdlResult:
    """Run the selected tests of ``version`` through the ``toil-wdl-runner`` of ``bin_dir``."""
    started = time.monotonic()
    result = WdlResult(label, mode, version, 0.0)
    numbers = select(args.suite_tests, args, version)
    if numbers:
        suite = copy_suite(args.wdl_dir, work / f"suite-{version}")
        env = clean_env()
        path = os.pathsep.join([str(bin_dir), str(args.toil_venv / "bin"), env.get("PATH", "")])
        env.update(PATH=path, TMPDIR=str(work / "tmp"))
        (work / "tmp").mkdir(exist_ok=True)
        out = work / f"tests-{version}.json"
        driver = [str(args.toil_venv / "bin" / "python"), str(BENCH / "_wdl_suite.py")]
        driver += [str(suite), version, ",".join(map(str, numbers)), str(args.jobs), str(out)]
        code = run_session(driver, suite, env, work / f"run-{version}.log")
        if not out.exists():
            tail = (work / f"run-{version}.log").read_text(errors="replace")[-3000:]
            raise SetupError(f"the suite's run.py wrote no results (exit {code}):\n{tail}")
        outcomes = {}
        for entry in json.loads(out.read_text()):
            test = args.suite_tests[entry["number"]]
            outcome = OUTCOMES.get(entry["status"], "failed")
            # The server runs tasks on the host; only Toil run directly needs a container.
            direct = mode == "direct" and args.direct_tasks == "container"
            if outcome == "failed" and direct and needs_container(test, args.wdl_dir):
                outcome = "unsupported"
            outcomes[entry["id"]] = outcome
            if outcome != "passed":
                message = f"{entry.get('reason') or ''}\n--- stderr ---\n{entry['stderr']}"
                result.messages[entry["id"]] = message[-MESSAGE_CHARS:]
        result.add(outcomes)
    result.seconds = time.monotonic() - started
    return result


def run_one(runner: str, mode: str, args: argparse.Namespace, work: Path) -> list[Result]:
    """Every version of ``args`` through ``runner`` (for the server's runner, one server)."""
    if mode == "direct":
        bin_dir = runner_bin(runner, "", args, work)
        return [run_version(runner, mode, v, bin_dir, args, work) for v in args.versions]
    with wes_server(mode, work, [*toil_serve_args(args.toil_venv), *args.serve_arg]) as url:
        bin_dir = runner_bin(runner, url, args, work)
        return [run_version(runner, mode, v, bin_dir, args, work) for v in args.versions]


def allowed_for(args: argparse.Namespace) -> Callable[[Result, Result | None], set[str]]:
    """Which tests a result may fail (see the module's docstring)."""
    expected = read_expect(args.expect) if args.expect else None

    def allowed(result: Result, baseline: Result | None) -> set[str]:
        # Tests with a task, which Toil run directly cannot run without a container runtime.
        tolerated = set(result.unsupported)
        if expected is not None:
            return tolerated | expected
        if baseline is not None:
            return tolerated | baseline.not_passed()
        return tolerated | set(BUILT_IN.get(result.subset, ()))

    return allowed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(parser, RUNNERS)
    parser.add_argument("--versions", default="1.0,1.1", help="comma-separated WDL versions")
    parser.add_argument("--subset", choices=SUBSETS, default="quick")
    parser.add_argument("--tags", help="only tests with one of these tags, comma-separated")
    parser.add_argument("--wdl-dir", type=Path, default=DEFAULT_WDL_DIR)
    parser.add_argument(
        "--direct-tasks",
        choices=["container", "host"],
        default="container",
        help="how toil-wdl-runner run directly runs tasks: in a container (Toil's own way), "
        "or on the host through the server's stand-in for Singularity",
    )
    args = parser.parse_args()
    expand_common(args, RUNNERS)
    args.versions = [v for v in args.versions.split(",") if v]
    unknown = set(args.versions) - set(VERSIONS)
    if unknown:
        parser.error(f"unknown WDL versions {', '.join(sorted(unknown))}; known: {VERSIONS}")
    args.wdl_dir = args.wdl_dir.resolve()
    return args


def check_setup(args: argparse.Namespace) -> None:
    """Fail before starting anything if the suite or Toil is missing."""
    if not (args.wdl_dir / "conformance.yaml").is_file():
        raise SetupError(f"no conformance.yaml in {args.wdl_dir} (see --wdl-dir)")
    toil_program(args.toil_venv, "toil-wdl-runner")
    args.suite_tests = load_tests(args.wdl_dir)
    for version in args.versions:
        select(args.suite_tests, args, version)  # unknown --tests ids fail here


def summary(args: argparse.Namespace) -> dict[str, Any]:
    """What the JSON summary says besides the results: per version, the selected tests that
    need a container runtime, and the tests that do not declare it."""
    selected = {version: select(args.suite_tests, args, version) for version in args.versions}
    return {
        "subset": args.subset,
        "versions": args.versions,
        "wdl_dir": str(args.wdl_dir),
        "serve_args": [*toil_serve_args(args.toil_venv), *args.serve_arg],
        "direct_tasks": args.direct_tasks,
        "container": {
            version: [
                args.suite_tests[n]["id"]
                for n in numbers
                if needs_container(args.suite_tests[n], args.wdl_dir)
            ]
            for version, numbers in selected.items()
        },
        "skipped": {
            version: [t["id"] for t in args.suite_tests if version not in t["versions"]]
            for version in args.versions
        },
    }


def main() -> int:
    args = parse_args()
    return run_all(
        args,
        check_setup,
        DIRECT,
        run_one,
        allowed_for(args),
        lambda: summary(args),
        "wdl-conformance",
    )


if __name__ == "__main__":
    sys.exit(main())
