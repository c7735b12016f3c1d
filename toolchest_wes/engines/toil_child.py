"""The process of one Toil run: ``python -m toolchest_wes.engines.toil_child RUNNER ARGS…``,
or ``main([RUNNER, ARGS…])`` in a process forked from the warm zygote (no interpreter start).

It runs ``RUNNER ARGS…`` (``toil-cwl-runner`` or ``toil-wdl-runner``) as its child, and:

- turns the per-job logs that Toil writes (``--writeLogs`` with ``--writeLogsFromAllJobs``)
  into the server's task logs (``tasks.jsonl`` and one folder per task with ``stdout`` and
  ``stderr``, as ``cwltool_child`` writes them) while the run goes on;
- on SIGTERM, and when the server that started it dies, SIGKILLs every process below it
  and exits. Toil's single-machine batch system
  starts each worker as the leader of a session of its own, so signalling the run's process
  group alone would leave the workers, and the tools they run, behind. This process is a
  child subreaper (``PR_SET_CHILD_SUBREAPER``): processes orphaned below it are re-parented
  to it instead of to init, so walking its descendants finds them all.
- on other batch systems, removes the run's file job store (``TOOLCHEST_WES_TOIL_JOBSTORE``)
  once every process below it is gone: a leader killed on cancel leaves it behind, whatever
  ``--clean`` says;
- on Slurm (``TOOLCHEST_WES_TOIL_SLURM_COMMENT``), starts a ``slurm_sweep`` watcher that
  outlives it: Toil's workers run under ``slurmstepd``, not below this process, and a
  leader SIGKILLed at the end of the cancel grace period cannot ``scancel`` them itself.

Settings come from the environment that ``ToilEngine.launch_spec`` gives
(``TOOLCHEST_WES_TOIL_*``). Toil itself is never imported here: it lives in its own
interpreter.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchest_wes.engines.pidwait import wait_exit
from toolchest_wes.engines.proctree import descendants

__all__ = ["SHUTDOWN_GRACE_S", "TaskLogConverter", "kill_descendants", "main"]

#: How long a zygote that forked this process and shuts down waits after SIGTERM before it
#: SIGKILLs it: time to kill what Toil started, which its process group does not hold.
SHUTDOWN_GRACE_S = 3.0

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
_PR_SET_CHILD_SUBREAPER = 36
_POLL_S = 0.2
# Toil writes a job's log file in several writes; one untouched this long is whole.
_SETTLE_S = 0.5
# How long a run's end waits for its Slurm watcher's sweep.
_WATCHER_WAIT_S = 10.0

_LOG_NAME = re.compile(r"^(?P<failed>failed_)?(?P<job>.+?)_(?P<n>\d{3,})\.log$")
_TIMESTAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)([+-]\d{4})?\]", re.MULTILINE)
_EXIT_STATUS = re.compile(r"(?:exit status|exited with status|exit code|exit value) (-?\d+)")
# The command follows these on the same line and may go on over the next lines.
_WDL_COMMAND = re.compile(r"Executing command in <[^>]*>: (.*?)(?=^\[\d{4}-|\Z)", re.S | re.M)
_CWL_COMMAND = re.compile(r"\[job [^\]\n]*\] [^\n]*?\$ (.*?)(?=^\[\d{4}-|\Z)", re.S | re.M)
_STREAM_SUFFIXES = (".stdout", ".stderr")


def kill_descendants(
    root: int, timeout_s: float = 1.5, spare: frozenset[int] = frozenset()
) -> None:
    """SIGKILL every process below ``root`` and reap them, until none is left; the processes
    of ``spare`` and those below them are left alone."""
    deadline = time.monotonic() + timeout_s
    while True:
        spared = {pid for keep in spare for pid in descendants(keep)}
        pids = [pid for pid in descendants(root) if pid != root and pid not in spared]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        if not pids or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def _reap() -> None:
    """Collect the exit of every finished child (orphans re-parented here included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class _Task:
    task_id: str
    job: str
    number: str


@dataclass
class TaskLogConverter:
    """Writes one task per Toil job log into ``task_dir``, in ``cwltool_child``'s format.

    A WDL task gives ``<task>.command_NNN.log`` (the worker's log) and, when they are not
    empty, ``<task>.stdout_NNN.log`` and ``<task>.stderr_NNN.log`` (the command's own
    streams); a CWL job gives ``<job>_NNN.log``, where the tool's output and Toil's log meet.
    """

    log_dir: Path
    task_dir: Path
    _seen: set[str] = field(default_factory=set)
    _count: int = 0
    _fd: int | None = None

    def open(self) -> None:
        """Create ``task_dir`` and start ``tasks.jsonl`` afresh."""
        self.task_dir.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self.task_dir / "tasks.jsonl", flags, 0o666)

    def close(self) -> None:
        """Close ``tasks.jsonl``."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def scan(self, final: bool = False) -> None:
        """Record the job logs that are complete (all of them if ``final``)."""
        try:
            entries = sorted(os.scandir(self.log_dir), key=lambda e: e.stat().st_mtime)
        except FileNotFoundError:
            return
        names = {e.name for e in entries}
        now = time.time()
        for entry in entries:
            match = _LOG_NAME.match(entry.name)
            if entry.name in self._seen or match is None:
                continue
            job = match["job"]
            if job.endswith(_STREAM_SUFFIXES):
                continue  # read with the job's own log
            if not final and now - entry.stat().st_mtime < _SETTLE_S:
                continue
            self._seen.add(entry.name)
            try:
                self._record(Path(entry.path), job, match["n"], bool(match["failed"]), names)
            except (OSError, ValueError) as exc:
                # A task log is worth less than the run: note it, and go on.
                print(f"toolchest-wes: cannot read Toil log {entry.name}: {exc}", file=sys.stderr)

    def _record(self, path: Path, job: str, number: str, failed: bool, names: set[str]) -> None:
        self._count += 1
        task = self.task_dir / str(self._count)
        task.mkdir(exist_ok=True)
        text = path.read_text(encoding="utf-8", errors="replace")
        base = job.removesuffix(".command")
        streams = {}
        for stream in ("stdout", "stderr"):
            own = f"{base}.{stream}_{number}.log"
            if job != base and own in names:
                streams[stream] = self.log_dir / own
        # A CWL job's log holds the tool's stderr among Toil's lines; a WDL task's log is
        # Toil's alone, so it follows the command's own stderr.
        stderr = task / "stderr"
        with open(stderr, "wb") as out:
            if "stderr" in streams:
                out.write(streams["stderr"].read_bytes())
                out.write(b"\n--- Toil worker log ---\n")
            out.write(text.encode())
        if "stdout" in streams:
            shutil.copyfile(streams["stdout"], task / "stdout")
        else:
            (task / "stdout").touch()
        stamps = _TIMESTAMP.findall(text)
        exit_code = self._exit_code(text, failed)
        wdl_command = _WDL_COMMAND.search(text)
        cwl_command = _CWL_COMMAND.search(text)
        self._write(
            {
                "id": str(self._count),
                "name": base.replace("CWLJob_", "", 1),
                "cmd": [wdl_command[1].strip()] if wdl_command else _words(cwl_command),
                "start_time": _iso(stamps[0]) if stamps else None,
            }
        )
        self._write(
            {
                "id": str(self._count),
                "end_time": _iso(stamps[-1]) if stamps else None,
                "exit_code": exit_code,
            }
        )

    @staticmethod
    def _exit_code(text: str, failed: bool) -> int:
        if not failed:
            return 0
        found = _EXIT_STATUS.findall(text)
        codes = [int(c) for c in found if int(c) != 0]
        return codes[-1] if codes else 1

    def _write(self, record: dict[str, Any]) -> None:
        if self._fd is not None:
            os.write(self._fd, json.dumps(record).encode() + b"\n")


def _words(match: re.Match[str] | None) -> list[str]:
    """The words of a command cwltool logged (a shell line, continued with backslashes)."""
    if match is None:
        return []
    line = match[1].replace("\\\n", " ").strip()
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def _iso(stamp: tuple[str, str]) -> str:
    return stamp[0] + "Z" if stamp[1] in ("", "+0000") else stamp[0] + stamp[1]


def _hostexec_folder(work_dir: Path) -> Path:
    """A folder with a ``singularity`` program that runs tasks on the host (toil_hostexec)."""
    folder = work_dir / "toil-bin"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "singularity"
    # Toil's workers run with Toil's interpreter; this program needs the server's, which
    # finds toolchest_wes where this module was imported from.
    package_root = shlex.quote(str(Path(__file__).resolve().parents[2]))
    python = shlex.quote(sys.executable)
    script.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH={package_root} exec {python} -m toolchest_wes.engines.toil_hostexec "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return folder


def _environment(work_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    path = [os.environ["TOOLCHEST_WES_TOIL_BIN"]]  # Toil starts its workers by name
    if os.environ.get("TOOLCHEST_WES_TOIL_HOSTEXEC"):
        path.insert(0, str(_hostexec_folder(work_dir)))
        images = work_dir / "images"
        env["SINGULARITY_CACHEDIR"] = str(images / "singularity")
        env["MINIWDL__SINGULARITY__IMAGE_CACHE"] = str(images / "miniwdl")
    env["PATH"] = os.pathsep.join([*path, os.environ.get("PATH", os.defpath)])
    for name in [k for k in env if k.startswith("TOOLCHEST_WES_")]:
        del env[name]
    return env


def main(argv: list[str]) -> int:
    """Run Toil's ``argv`` as described in the module docstring; its exit code."""
    if not argv:
        print("usage: python -m toolchest_wes.engines.toil_child RUNNER ARGS...", file=sys.stderr)
        return 2
    work_dir = Path(os.environ["TOOLCHEST_WES_TOIL_WORK_DIR"])
    converter = TaskLogConverter(
        Path(os.environ["TOOLCHEST_WES_TOIL_LOG_DIR"]),
        Path(os.environ["TOOLCHEST_WES_TOIL_TASK_DIR"]),
    )
    with contextlib.suppress(OSError):
        os.nice(int(os.environ.get("TOOLCHEST_WES_TOIL_NICE") or 0))
    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # A server killed outright cannot cancel its runs: the kernel sends SIGTERM here when
    # the parent (the zygote, or the server) goes, so Toil never runs on unwatched. The
    # zygote outlives an embedded worker that dies while the arbiter lives: the run is adopted.
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the server died before the request took effect
        return 128 + signal.SIGTERM
    (work_dir / "toil").mkdir(parents=True, exist_ok=True)
    slurm_comment = os.environ.get("TOOLCHEST_WES_TOIL_SLURM_COMMENT")
    slurm_remove = os.environ.get("TOOLCHEST_WES_TOIL_SLURM_REMOVE")
    jobstore = os.environ.get("TOOLCHEST_WES_TOIL_JOBSTORE")
    env = _environment(work_dir)
    # Started before the leader, so no Slurm job of the run can escape it.
    watcher = _start_slurm_watcher(slurm_comment, slurm_remove) if slurm_comment else None
    spare = frozenset([watcher.pid]) if watcher else frozenset()
    converter.open()
    try:
        leader = subprocess.Popen(argv, env=env)
        code: int | None = None
        while code is None:
            if stop:
                kill_descendants(os.getpid(), spare=spare)
                return 128 + stop[0]
            code = wait_exit(leader, _POLL_S)
            if code is None:
                converter.scan()
        converter.scan(final=True)
        return code if code >= 0 else 128 - code
    finally:
        # Nothing Toil started may outlive the run, whatever ended it.
        kill_descendants(os.getpid(), spare=spare)
        converter.close()
        if jobstore:
            shutil.rmtree(jobstore, ignore_errors=True)
        if watcher is not None:
            _finish_slurm_watcher(watcher)


def _start_slurm_watcher(comment: str, remove: str | None) -> subprocess.Popen[bytes]:
    """``slurm_sweep`` for this run, in a session of its own, waiting for this process.

    Its stdin is a pipe that only this process holds (Popen closes it in the leader), so it
    reads end of file when this process ends, SIGKILL included, and then cancels the run's
    Slurm jobs that are left.
    """
    argv = [sys.executable, "-m", "toolchest_wes.engines.slurm_sweep", comment]
    if remove:
        argv += ["--remove", remove]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCHEST_WES_")}
    # It imports toolchest_wes from where this module was imported, as the hostexec does.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, start_new_session=True
    )


def _finish_slurm_watcher(watcher: subprocess.Popen[bytes]) -> None:
    """Let the watcher sweep now, and wait a little for it: a run that ends normally has
    nothing left in Slurm, and a cancelled one is SIGKILLed soon (the watcher goes on)."""
    if watcher.stdin is not None:
        watcher.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        watcher.wait(_WATCHER_WAIT_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
