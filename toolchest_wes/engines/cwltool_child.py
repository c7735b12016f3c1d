"""Runs cwltool inside this process: the ``entry`` of the cwltool engine's ``LaunchSpec``.

``main(argv)`` is ``cwltool argv``. It calls ``cwltool.main.main`` rather than
``cwltool.main.run`` (the ``cwltool`` command), so SIGTERM keeps its default action: the
engine dies at once, and the tools in its process group get the same SIGTERM from
``kill_tree``. ``run``'s handler can stall for 10 s when the signal lands while the main thread
waits for a tool (its ``Popen.wait`` holds a lock the handler then waits for). ``warm()``
prepares a zygote (``toolchest_wes.engines.zygote``): it imports cwltool, loads the CWL
schemas and runs one tiny tool, so that children forked afterwards start in milliseconds
instead of seconds.

Three variables of the child's environment add to plain cwltool:

- ``TOOLCHEST_WES_CHILD_TASK_DIR``: record every CommandLineTool execution as a task. Task
  ``N`` (numbered 1, 2, ... in start order) gets ``N/stdout`` and ``N/stderr`` in that
  directory, and ``tasks.jsonl`` there gains one line when the task starts (``id``, ``name``,
  ``cmd``, ``start_time``) and one when it ends (``id``, ``end_time``, ``exit_code``, which
  is ``null`` if the job could not be started). Each ``main`` call starts the file afresh.
- ``TOOLCHEST_WES_CHILD_IGNORE_DOCKER=1``: with ``--no-container``, run tools that list a
  DockerRequirement under ``requirements`` directly instead of rejecting them. A tool that
  needs the container's own file system (a ``dockerOutputDirectory``, or an
  InitialWorkDirRequirement entry at an absolute path) is still rejected as cwltool rejects
  it, as an unsupported requirement (exit code 33): run on the host, it would write there.
- ``TOOLCHEST_WES_CHILD_SANDBOX``: a ``SandboxPolicy`` as JSON
  (``toolchest_wes.engines.sandbox``). The process confines itself to it before cwltool
  starts (``toolchest_wes.engines.engine_jail``), and every tool that runs without a
  container, and the JavaScript engine of CWL expressions, runs in bwrap under it.

Whatever the policy, the server's settings and credentials are removed from the
environment first, so neither tools nor expressions can inherit them.

Importing this module has no side effects; ``main`` patches cwltool when it is called,
through ``toolchest_wes.compat.cwltool_internals``, which holds every private part of cwltool
used here.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import functools
import hashlib
import inspect
import io
import json
import logging
import os
import signal
import stat
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchest_wes.engines.base import EXIT_INTERNAL_ERROR
from toolchest_wes.engines.cwltool_monitor import sampling_process_monitor
from toolchest_wes.engines.cwltool_sandbox import (
    SandboxedSubprocess,
    marking_job_run,
    sandboxed_job_popen,
)
from toolchest_wes.engines.engine_jail import JailError, enter_jail, scrub_environment
from toolchest_wes.engines.proctree import children
from toolchest_wes.engines.sandbox import SANDBOX_ENV, SandboxPolicy

__all__ = ["IGNORE_DOCKER_ENV", "TASK_DIR_ENV", "learn", "main", "prefault", "reset", "warm"]

logger = logging.getLogger(__name__)

TASK_DIR_ENV = "TOOLCHEST_WES_CHILD_TASK_DIR"
IGNORE_DOCKER_ENV = "TOOLCHEST_WES_CHILD_IGNORE_DOCKER"
NICE_ENV = "TOOLCHEST_WES_CHILD_NICE"
#: How many cores the run's tools may use: the process and its tools keep to that many CPUs.
CORES_ENV = "TOOLCHEST_WES_CHILD_CORES"

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
# The schema versions a run is likely to need; others load on first use, as in cwltool.
_WARM_VERSIONS = ("v1.0", "v1.1", "v1.2")

_ECHO_TOOL = {
    "class": "CommandLineTool",
    "baseCommand": "echo",
    "inputs": {"message": {"type": "string", "inputBinding": {"position": 1}}},
    "outputs": {"out": "stdout"},
    "stdout": "out.txt",
}
_WARM_WORKFLOW = {
    "cwlVersion": "v1.2",
    "class": "Workflow",
    "inputs": {"message": "string"},
    "outputs": {"out": {"type": "File", "outputSource": "say/out"}},
    "steps": {"say": {"in": {"message": "message"}, "out": ["out"], "run": _ECHO_TOOL}},
}
# What a spare walks: the workflow's one tool alone, the commonest kind of run, which takes
# a fifth less time than the workflow and leaves a tool's run as few faults.
_PREFAULT_TOOL = {"cwlVersion": "v1.2", **_ECHO_TOOL}


@dataclass
class _RunState:
    """What the patched cwltool functions need to know about the current ``main`` call."""

    recorder: _TaskRecorder | None = None
    # The workflow document, parsed by the zygote before this process was forked, for the
    # loader cwltool makes next: (the path cwltool was given, the parsed tree).
    document: tuple[str, Any] | None = None
    ignore_docker: bool = False
    docker_warned: set[str] = field(default_factory=set)
    sandbox: SandboxPolicy | None = None
    #: The last run left nothing that ``reset`` cannot put back: it was not confined to a
    #: sandbox, which is for good.
    reusable: bool = False


_state = _RunState()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _TaskRecorder:
    """Numbers the CWL jobs of one run and logs them to ``tasks.jsonl``."""

    def __init__(self, task_dir: Path) -> None:
        task_dir.mkdir(parents=True, exist_ok=True)
        self.task_dir = task_dir
        # One os.write per line on an O_APPEND descriptor: lines from parallel jobs never
        # interleave, and readers tailing the file never see a line half written. Truncated
        # first: a run launched again numbers its tasks from 1 again.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(task_dir / "tasks.jsonl", flags, 0o666)
        self._lock = threading.Lock()
        self._count = 0

    def begin(self, name: str, commands: list[str]) -> Path:
        """Record a task that starts now; returns its directory."""
        with self._lock:
            self._count += 1
            task_id = str(self._count)
        path = self.task_dir / task_id
        path.mkdir(exist_ok=True)
        self._write({"id": task_id, "name": name, "cmd": commands, "start_time": _utc_now()})
        return path

    def end(self, path: Path, exit_code: int | None) -> None:
        self._write({"id": path.name, "end_time": _utc_now(), "exit_code": exit_code})

    def close(self) -> None:
        os.close(self._fd)

    def _write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, json.dumps(record).encode() + b"\n")


def _link(source: str | None, target: Path) -> None:
    """Expose a file the tool wrote as a task log, without copying it."""
    if source is None or os.path.islink(source):
        # A tool may have swapped its log for a link; the server, which serves task logs,
        # must never be led by one to a file outside the run.
        return
    with contextlib.suppress(OSError):
        # A file left by an earlier attempt of the run would make os.link fail.
        target.unlink(missing_ok=True)
        os.link(source, target)


def _recording_job_popen(original: Callable[..., int]) -> Callable[..., int]:
    """Wrap ``cwltool.job._job_popen``, which starts one CWL job, to record it as a task."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def job_popen(*args: Any, **kwargs: Any) -> int:
        recorder = _state.recorder
        if recorder is None:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        arguments = bound.arguments
        task = recorder.begin(str(arguments.get("name") or ""), list(arguments["commands"]))
        with contextlib.ExitStack() as files:
            # Without a stdout:/stderr: in the tool, cwltool sends the tool's output to its
            # own stderr; the default_* arguments give each task a file of its own instead.
            if arguments["stdout_path"] is None and arguments.get("default_stdout") is None:
                arguments["default_stdout"] = files.enter_context(open(task / "stdout", "wb"))
            if arguments["stderr_path"] is None and arguments.get("default_stderr") is None:
                arguments["default_stderr"] = files.enter_context(open(task / "stderr", "wb"))
            exit_code: int | None = None
            try:
                exit_code = original(*bound.args, **bound.kwargs)
                return exit_code
            finally:
                _link(arguments["stdout_path"], task / "stdout")
                _link(arguments["stderr_path"], task / "stderr")
                recorder.end(task, exit_code)

    return job_popen


def _container_free_job_runner(original: Callable[..., type]) -> Callable[..., type]:
    """Wrap ``CommandLineTool.make_job_runner`` to run DockerRequirement tools directly."""

    @functools.wraps(original)
    def make_job_runner(self: Any, runtimeContext: Any) -> type:
        if _state.ignore_docker and not runtimeContext.use_container:
            requirement, required = self.get_requirement("DockerRequirement")
            if required:
                from cwltool.errors import UnsupportedRequirement

                if requirement and requirement.get("dockerOutputDirectory"):
                    raise UnsupportedRequirement(
                        "this server runs tools without containers, and this tool's "
                        "DockerRequirement sets dockerOutputDirectory, a folder that only "
                        "its container has"
                    )
                tool_id = str(self.tool.get("id", ""))
                if tool_id not in _state.docker_warned:
                    _state.docker_warned.add(tool_id)
                    # cwltool's logger, so the line lands in the run's stderr in its format.
                    logging.getLogger("cwltool").warning(
                        "[tool %s] DockerRequirement ignored: this server runs tools "
                        "without containers",
                        tool_id,
                    )
                return _host_job_class()
        return original(self, runtimeContext)

    return make_job_runner


def _sandbox_policy() -> SandboxPolicy | None:
    return _state.sandbox


@functools.cache
def _host_job_class() -> type:
    """cwltool's ``CommandLineJob`` for a tool whose DockerRequirement is ignored."""
    from toolchest_wes.compat import cwltool_internals

    return cwltool_internals.job_class_checked_after_setup(
        "HostCommandLineJob", _refuse_staging_outside_workdir
    )


def _refuse_staging_outside_workdir(job: Any) -> None:
    """Refuse a job that would stage a file outside its working directory.

    In a container, an InitialWorkDir entry may be staged at an absolute path (CWL v1.2);
    on the host that path is the server's own file system, so such a job is refused before
    anything is staged. Entry names can be expressions, hence the check on the staging plan.
    """
    from cwltool.errors import UnsupportedRequirement

    if job.generatemapper is None:
        return
    outdir = os.path.realpath(job.outdir)
    for _, entry in job.generatemapper.items():
        target = os.path.realpath(entry.target)
        if os.path.commonpath([outdir, target]) != outdir:
            raise UnsupportedRequirement(
                "this server runs tools without containers, and this tool stages "
                f"{entry.target!r} outside its working directory, which only its "
                "container could hold"
            )


def _install_patches() -> None:
    """Patch cwltool once per process; the patches read ``_state`` at call time."""
    from toolchest_wes.compat import cwltool_internals

    # The task is recorded with the tool's own command line, outside the sandbox's.
    cwltool_internals.wrap_job_popen(
        lambda original: _recording_job_popen(sandboxed_job_popen(original, _sandbox_policy))
    )
    cwltool_internals.wrap_job_run(marking_job_run)
    # The JavaScript engine starts node through its module's own name for subprocess.
    cwltool_internals.wrap_js_subprocess(lambda real: SandboxedSubprocess(real, _sandbox_policy))
    cwltool_internals.wrap_make_job_runner(_container_free_job_runner)
    cwltool_internals.wrap_process_monitor(sampling_process_monitor)
    cwltool_internals.wrap_default_loader(_seeding_default_loader)


# cwltool's argument parser, built by ``warm`` for one parse in a forked child. cwltool builds
# its parser twice per run (to parse, and for ``get_default_args``), a tenth of a warm run's
# work. An argparse action may keep state from one parse to the next (cwltool's own
# AppendAction empties its default list in place), so a parser serves one parse: each process
# takes this one once and builds its own afterwards (a reused process, in ``reset``, for its
# next run), and the zygote never parses with it.
_spare_parser: argparse.ArgumentParser | None = None


def _make_parser() -> argparse.ArgumentParser:
    from cwltool.argparser import arg_parser

    return arg_parser()


def _take_parser() -> argparse.ArgumentParser:
    global _spare_parser
    parser, _spare_parser = _spare_parser, None
    return parser if parser is not None else _make_parser()


@functools.cache
def _version() -> str:
    """cwltool's version; cwltool would read its package metadata again at every run."""
    from importlib.metadata import version

    return version("cwltool")


def _version_line() -> str:
    """What cwltool's ``versionstring`` answers (it logs it as a run starts)."""
    return f"{sys.argv[0]} {_version()}"


def _parse_arguments(argv: list[str]) -> argparse.Namespace:
    """``CWLTOOL_OPTIONS`` and ``argv``, parsed as ``cwltool.main.main`` parses them.

    An unusable command line exits (``SystemExit`` 2) with argparse's message, as cwltool's.
    """
    options = [opt for opt in os.environ.get("CWLTOOL_OPTIONS", "").split(" ") if opt]
    parser = _take_parser()
    # The parser took its program name from the argv of the process that built it.
    parser.prog = os.path.basename(sys.argv[0])
    args = parser.parse_args(options + list(argv))
    if args.record_container_id:
        if not args.cidfile_dir:
            args.cidfile_dir = os.getcwd()
        del args.record_container_id
    return args


# How many URLs ``urllib.parse.urlsplit`` remembers for good in the engine process. The
# standard library keeps the last 128 (``functools.lru_cache``), but every run builds
# schema_salad loaders from a CWL schema context of some 230 URLs, walked in the same order each
# time: with room for 128, each walk evicts every URL before it comes round again, and all 230
# are split anew, several times per run. Remembered for good (no eviction), the zygote's warm-up
# fills the table once and each forked run only reads it: an LRU list would be rewritten at
# every hit, and each rewritten page is one more copy-on-write fault in a forked run.
_URLSPLIT_TABLE_SIZE = 4096


class _RememberingUrlsplit:
    """``urllib.parse.urlsplit`` with a table of the first URLs it split, never evicted.

    Past ``limit`` entries, calls go to the standard library's function (and its own LRU
    cache). The answers are the same; ``SplitResult`` is an immutable tuple.
    """

    def __init__(self, split: Callable[..., Any], limit: int) -> None:
        self.split = split
        self.limit = limit
        self.table: dict[tuple[Any, Any, Any], Any] = {}

    def __call__(self, url: Any, scheme: Any = "", allow_fragments: Any = True) -> Any:
        key = (url, scheme, allow_fragments)
        known = self.table.get(key)
        if known is not None:
            return known
        result = self.split(url, scheme, allow_fragments)
        if len(self.table) < self.limit:
            self.table[key] = result
        return result

    def compact(self) -> None:
        """Copy the answers so far, and the strings in them, into memory of their own.

        A run that reads an answer writes to it (reference counts), and to each of its parts
        that it uses. Made one after another, the answers share a few pages; made where the
        warm-up happened to split them, they are strewn over a hundred, and each page is one
        more copy-on-write fault in a child forked afterwards.
        """
        for key, result in self.table.items():
            self.table[key] = type(result)(*(_own_copy(part) for part in result))


def _own_copy(value: Any) -> Any:
    """A new string equal to ``value`` (a ``str`` or ``bytes``), allocated now."""
    if isinstance(value, str) and value:
        return (value + " ")[:-1]
    if isinstance(value, bytes) and value:
        return (value + b" ")[:-1]
    return value


def _remember_urlsplits() -> None:
    """Put :class:`_RememberingUrlsplit` in place of ``urllib.parse.urlsplit``; once per process.

    ``urllib.parse`` calls its own ``urlsplit`` through the module (``urlparse``, ``urljoin``),
    and so does schema_salad; code that imported the function by name keeps the original.
    """
    if not isinstance(urllib.parse.urlsplit, _RememberingUrlsplit):
        urllib.parse.urlsplit = _RememberingUrlsplit(urllib.parse.urlsplit, _URLSPLIT_TABLE_SIZE)


# Workflow documents the zygote parsed, by the SHA-256 of their text; children forked afterwards
# find them here and skip the parse (ruamel.yaml's round-trip loader: 1.5 ms for hello-world,
# a tenth of a warm run). Keyed by content, not path: each run's copy lies in its own folder,
# and a run only ever gets the parse of the very text it read itself.
_documents: OrderedDict[str, Any] = OrderedDict()
_DOCUMENTS_KEPT = 16
# The digests of the documents of recent runs: a document is parsed the second time it comes,
# so that documents run once cost the zygote a read and a hash, not a parse of their own.
_seen: OrderedDict[str, None] = OrderedDict()
_SEEN_KEPT = 256
# Bigger documents are left to cwltool: the zygote answers no request while it parses (some
# 5 microseconds per character), and should not spend long on any one.
_DOCUMENT_MAX_CHARS = 16 * 1024


def _read_document(path: str) -> str | None:
    """The text of the local workflow document ``path`` as cwltool's fetcher reads it, or
    None for anything else (a URL, a fragment, a missing or too big file)."""
    if "#" in path or "://" in path:
        return None
    try:
        # Without blocking: a FIFO in the document's place must not hang the zygote.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # Text mode, as cwltool's fetcher reads it (universal newlines).
        with open(fd, encoding="utf-8", closefd=False) as document:
            text = document.read(_DOCUMENT_MAX_CHARS + 1)
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
    return text if len(text) <= _DOCUMENT_MAX_CHARS else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def learn(argv: list[str], cwd: str) -> None:
    """Parse the workflow document of the run ``argv`` (``cwd`` its folder), in the zygote.

    Called by the zygote after it has answered a request (``toolchest_wes.engines.zygote``),
    so that runs forked afterwards, spares included, that bring the same text skip the parse.
    A document is parsed the second time a run brings it, and kept while it keeps coming.
    cwltool's command line ends with the workflow and the job order, as ``CwltoolEngine``
    writes it; anything else is a document no run will look up.
    """
    from toolchest_wes.compat import cwltool_internals

    if len(argv) < 2:
        return
    text = _read_document(os.path.join(cwd, argv[-2]))
    if text is None:
        return
    key = _digest(text)
    if key in _documents:
        _documents.move_to_end(key)
        return
    if key not in _seen:
        _seen[key] = None
        while len(_seen) > _SEEN_KEPT:
            _seen.popitem(last=False)
        return
    try:
        tree = cwltool_internals.parse_document(text)
    except Exception:
        return
    if tree is None:
        return
    _documents[key] = tree
    while len(_documents) > _DOCUMENTS_KEPT:
        _documents.popitem(last=False)


def _known_document(args: argparse.Namespace) -> tuple[str, Any] | None:
    """The zygote's parse of this run's workflow document, if it has one for the same text."""
    if not _documents or args.enable_dev or not isinstance(args.workflow, str):
        return None  # with --enable-dev, cwltool also reads further YAML documents in the file
    text = _read_document(args.workflow)
    if text is None:
        return None
    tree = _documents.get(_digest(text))
    return None if tree is None else (args.workflow, tree)


def _seeding_default_loader(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``cwltool.main.default_loader`` to hand the first loader of a run the document
    the zygote parsed, so that cwltool's fetch of it parses nothing."""

    @functools.wraps(original)
    def default_loader(*args: Any, **kwargs: Any) -> Any:
        from toolchest_wes.compat import cwltool_internals

        loader = original(*args, **kwargs)
        document, _state.document = _state.document, None
        if document is not None:
            path, tree = document
            url = cwltool_internals.document_url(path)
            cwltool_internals.seed_document(loader, url, tree)
        return loader

    return default_loader


def _schema_setup(enable_ext: bool) -> Callable[[], None]:
    """The ``custom_schema_callback`` for ``cwltool.main.main``.

    Without one, cwltool's ``setup_schema`` empties ``SCHEMA_CACHE`` on every call, and
    reloading the schemas costs about 0.5 s per run: most of what the warm zygote saves.
    """

    def setup() -> None:
        import cwltool.main
        import cwltool.process

        if enable_ext:
            # cwltool's own --enable-ext branch, so the extension schemas stay exactly its.
            cwltool.main.setup_schema(argparse.Namespace(enable_ext=True), None)
        else:
            for version in list(cwltool.process.custom_schemas):
                cwltool.process.use_standard_schema(version)

    return setup


def _die_with_group(signum: int, _frame: object) -> None:
    # The tools cwltool started share this process group; take them all down at once so a
    # stopped run leaves nothing running.
    os.killpg(0, signal.SIGKILL)


def _bind_lifetime_to_parent() -> None:
    """End the run's process group on SIGTERM, and when the launching process dies.

    A server killed outright cannot stop its runs; with PR_SET_PDEATHSIG the kernel sends
    this process SIGTERM when its parent (the zygote or the server) goes, so no orphaned tool
    keeps running unwatched. The zygote outlives an embedded worker that dies while the
    gunicorn arbiter lives, so that the next worker can adopt the run; it never outlives the
    server.
    """
    signal.signal(signal.SIGTERM, _die_with_group)
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        _die_with_group(signal.SIGTERM, None)


# How much this process has lowered its priority already: a spare child (``prefault``) does it
# before its run, and the run's own call must not add the same amount again.
_lowered_by = 0


def _lower_priority(nice: int) -> None:
    """Make the run yield the CPU to the API and the workers' bookkeeping.

    The tools inherit it. With the kernel's autogroup scheduling (the default on desktop and
    many server kernels) a new session gets a CPU share equal to every other session's, so
    each run's session would weigh as much as the whole API, whatever its nice value;
    the session's own weight is lowered too, through /proc/self/autogroup.
    """
    global _lowered_by
    if nice <= _lowered_by:
        return
    os.nice(nice - _lowered_by)
    _lowered_by = nice
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


def _keep_to_cores(cores: int) -> None:
    """Hold the run, and the tools it starts, to ``cores`` of the CPUs it may use (0: all).

    cwltool has no option for a run's cores; CPU affinity is inherited by every tool, so it
    is the limit that holds whatever the tools do.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if 0 < cores < len(allowed):
        # Runs start at a CPU picked by their pid, so that one-core runs spread out.
        start = os.getpid() % len(allowed)
        os.sched_setaffinity(0, {allowed[(start + i) % len(allowed)] for i in range(cores)})


def main(argv: list[str]) -> int:
    """Run ``cwltool argv`` in this process; returns cwltool's exit code."""
    import cwltool.main

    task_dir = os.environ.get(TASK_DIR_ENV)
    ignore_docker = os.environ.get(IGNORE_DOCKER_ENV) == "1"
    nice = int(os.environ.get(NICE_ENV, "0"))
    cores = int(os.environ.get(CORES_ENV, "0"))
    policy_text = os.environ.get(SANDBOX_ENV)
    scrub_environment()
    leader = os.getpid() == os.getpgid(0)  # only as the leader of the run's own group
    if leader:
        _lower_priority(nice)
        _keep_to_cores(cores)
    policy = SandboxPolicy.from_json(policy_text) if policy_text else None
    if policy is not None:
        try:
            enter_jail(policy)
        except JailError as exc:
            print(f"toolchest-wes: the run's sandbox failed: {exc}", file=sys.stderr)
            return EXIT_INTERNAL_ERROR
    if leader:
        # After the jail: a change of uid clears the parent-death signal.
        _bind_lifetime_to_parent()
    _install_patches()
    _remember_urlsplits()
    _state.reusable = policy is None
    recorder = _TaskRecorder(Path(task_dir)) if task_dir else None
    _state.recorder = recorder
    _state.ignore_docker = ignore_docker
    _state.docker_warned = set()
    _state.sandbox = policy
    try:
        args = _parse_arguments(argv)
        _state.document = _known_document(args)
        return int(
            cwltool.main.main(
                args=args,
                versionfunc=_version_line,
                custom_schema_callback=_schema_setup(bool(args.enable_ext)),
            )
        )
    finally:
        _state.recorder = None
        _state.document = None
        _state.ignore_docker = False
        _state.sandbox = None
        if recorder is not None:
            recorder.close()


def prefault(nice: int) -> None:
    """Prepare a spare child of the zygote for a run that has not come yet.

    Called in a process forked from the warm zygote, in its own session, before it knows its
    run: it lowers its priority as a run's ``main`` will (``nice``), then runs the warm-up
    workflow's tool, so that the pages of the zygote that a run writes to are copied now,
    while the CPU is idle, rather than one copy-on-write fault at a time during the run (some
    40 % of a hello-world run's CPU time). The walk leaves cwltool as it found it, so the run
    that follows starts from the same state as one forked from the zygote directly, but for
    this module's patches of cwltool, which every run installs and which are idle without a
    run.
    """
    _lower_priority(nice)
    _walk_warm_workflow(_PREFAULT_TOOL)
    # The run's own call finds them in place: wrapping cwltool's functions takes some 0.5 ms
    # of a run (the job wrapper reads a signature). After the walk, which is a plain run.
    _install_patches()


# The warm-up workflow's command line, parsed once by ``warm``; each walk takes a copy with its
# own paths, so that a spare's prefault does not build cwltool's parser again.
_warm_args: argparse.Namespace | None = None
# What a run may change and ``reset`` puts back, as the zygote had it after ``warm``.
_default_registries: list[str] | None = None
_zygote_cpus: set[int] | None = None
_zygote_tempdir: str | None = None


def warm() -> None:
    """Import cwltool, load the CWL schemas and run a tiny workflow once, quietly.

    Leaves cwltool's module state as a fresh process would have it, apart from the loaded
    schemas and imports, so that each forked child behaves like ``cwltool`` started anew.
    """
    import cwltool.process

    from toolchest_wes.compat import cwltool_internals

    global _spare_parser, _warm_args, _default_registries, _zygote_cpus, _zygote_tempdir
    import cwltool.resolver

    _default_registries = list(cwltool.resolver.ga4gh_tool_registries)
    _zygote_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    _remember_urlsplits()
    for version in _WARM_VERSIONS:
        cwltool.process.get_schema(version)
    # Built here, so that every forked run finds them ready.
    _version()
    cwltool_internals.cache_default_args()
    _warm_args = _make_parser().parse_args(
        ["--quiet", "--no-container", "--outdir", "out", "warm.cwl", "job.json"]
    )
    _walk_warm_workflow(_WARM_WORKFLOW)
    _spare_parser = _make_parser()
    _zygote_tempdir = tempfile.tempdir
    if isinstance(urllib.parse.urlsplit, _RememberingUrlsplit):
        urllib.parse.urlsplit.compact()


def _walk_warm_workflow(document: dict[str, Any]) -> None:
    """Run ``document`` (with the input ``message``) in this process, quietly, and put back
    what cwltool changed."""
    import cwltool.main
    import cwltool.resolver

    if _warm_args is None:
        raise RuntimeError("warm() comes before any other walk of the warm-up workflow")
    registries = list(cwltool.resolver.ga4gh_tool_registries)
    saved_argv = sys.argv
    handler = logging.NullHandler()
    with tempfile.TemporaryDirectory(prefix="toolchest-wes-warm-") as tmp:
        workflow = Path(tmp, "warm.cwl")
        workflow.write_text(json.dumps(document))
        job = Path(tmp, "job.json")
        job.write_text(json.dumps({"message": "warm"}))
        args = copy.deepcopy(_warm_args)
        args.outdir = str(Path(tmp, "out"))
        args.tmpdir_prefix = f"{tmp}/tmp-"
        args.tmp_outdir_prefix = f"{tmp}/outtmp-"
        args.workflow = str(workflow)
        args.job_order = [str(job)]
        # cwltool appends basename(argv[0]) to the requests User-Agent once per process;
        # "cwltool" matches what the children pass, so they do not append it again.
        sys.argv = ["cwltool"]
        try:
            code = cwltool.main.main(
                args=args,
                stdout=io.StringIO(),
                stderr=io.StringIO(),
                logger_handler=handler,
                custom_schema_callback=lambda: None,
            )
        finally:
            sys.argv = saved_argv
            for name in ("cwltool", "salad", "rdflib.term", "galaxy.tool_util.deps"):
                logging.getLogger(name).removeHandler(handler)
            _put_back(registries, thread_wait_s=2.0)
    if code != 0:
        raise RuntimeError(f"the warm-up workflow exited with {code}")


def _put_back(registries: list[str], thread_wait_s: float) -> None:
    """Put back the module state of cwltool that a run changes, as a fresh process has it."""
    import cwltool.resolver
    import cwltool.utils

    from toolchest_wes.compat import cwltool_internals

    # main() empties the registry list unless --enable-ga4gh-tool-registry is given; a run
    # given that flag must find cwltool's default list.
    cwltool.resolver.ga4gh_tool_registries[:] = registries
    cwltool.utils.processes_to_kill.clear()
    # Job names come from this set; each run names its jobs from scratch.
    cwltool_internals.forget_job_names()
    # Timer threads (cwltool's memory monitor, the expression engine's timeout) end soon
    # after they are cancelled; a process that forks must be single-threaded.
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(timeout=thread_wait_s)


def reset() -> bool:
    """After a run that ended by itself, in the process that ran it: put back what the run
    changed, so that the next run starts as one in a fresh child of the zygote would; whether
    this process may take another run (the zygote's reuse).

    Not after a run confined to a sandbox: its process cannot leave it. The run's expression
    engine (a node process that cwl_utils keeps for the next expression) is stopped, and a
    run that left any other process running is not followed by another.
    """
    global _spare_parser
    if not _state.reusable or _default_registries is None:
        return False
    _stop_expression_engines()
    # The next run's parser, built now rather than on its path (some 2 ms).
    if _spare_parser is None:
        _spare_parser = _make_parser()
    _put_back(_default_registries, thread_wait_s=0.1)
    if _zygote_cpus is not None and os.sched_getaffinity(0) != _zygote_cpus:
        os.sched_setaffinity(0, _zygote_cpus)
    tempfile.tempdir = _zygote_tempdir
    # A process it started, ended or not, belongs to the run that started it.
    return not children(os.getpid())


def _stop_expression_engines() -> None:
    """Stop the node processes that evaluated the run's JavaScript expressions."""
    from cwl_utils.sandboxjs import NodeJSEngine

    procs = getattr(NodeJSEngine.localdata, "procs", None)
    if not procs:
        return
    for proc in procs.values():
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=5.0)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
    procs.clear()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
