"""A Snakemake logger plugin (``--logger toolchest``) that records every job as a task.

Snakemake finds logger plugins by module name (``snakemake_logger_plugin_<name>``) on
``sys.path``; the Snakemake engine puts the folder holding this package on the engine
process's ``PYTHONPATH``. The module imports nothing but the standard library and Snakemake's
plugin interface, so it also works in a Snakemake installed in a virtualenv of its own.

It writes the task-file format of ``toolchest_wes.engines.cwltool_child``, into the folder
named by ``TOOLCHEST_WES_SMK_TASK_DIR``: ``tasks.jsonl`` gains one line when a job starts
(``id``, ``name``, ``cmd``, ``start_time``) and one when it ends (``id``, ``end_time``,
``exit_code``); task ``N`` has its files in ``N/``, empty until the job ends (a shell
command's output goes to the run's stdout and stderr, as in plain Snakemake, so a task's
``stdout`` stays empty). A job's ``stderr`` is then its first
``log:`` file (Snakemake's own per-job log), or, for a job that failed without one, the
error Snakemake reported.

It also appends each job's ``input``, ``output`` and ``log`` files, relative to the working
directory, to the file named by ``TOOLCHEST_WES_SMK_JOBS``, from which the engine works out
the run's outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from logging import LogRecord
from typing import Any

from snakemake_interface_logger_plugins.base import LogHandlerBase

__all__ = ["JOBS_ENV", "TASK_DIR_ENV", "LogHandler"]

TASK_DIR_ENV = "TOOLCHEST_WES_SMK_TASK_DIR"
JOBS_ENV = "TOOLCHEST_WES_SMK_JOBS"

_EXIT_STATUS = re.compile(r"non-zero exit status (-?\d+)")


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _append_fd(path: str) -> int:
    # One os.write per line on an O_APPEND descriptor: a reader tailing the file never sees
    # a line half written. Truncated first: a run launched again starts afresh.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
    return os.open(path, flags, 0o666)


class LogHandler(LogHandlerBase):
    """Turns Snakemake's job events into task records."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._task_dir = os.environ.get(TASK_DIR_ENV)
        jobs = os.environ.get(JOBS_ENV)
        self._tasks_fd: int | None = None
        self._jobs_fd: int | None = None
        if self._task_dir:
            os.makedirs(self._task_dir, exist_ok=True)
            self._tasks_fd = _append_fd(os.path.join(self._task_dir, "tasks.jsonl"))
        if jobs:
            self._jobs_fd = _append_fd(jobs)
        self._count = 0
        # Snakemake job id -> (task id, log files) of the jobs that started and did not end.
        self._open: dict[int, tuple[str, list[str]]] = {}
        # The last error Snakemake printed: a failing job's exception comes just before its
        # job_error event, which names the job but not the exit status.
        self._last_error = ""
        # A dry run lists the jobs it would run without running them: no tasks, no outputs.
        self._dryrun = bool(getattr(self.common_settings, "dryrun", False))

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        # Every record must reach emit(), whatever Snakemake's quietness settings.
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: LogRecord) -> None:
        """Record the job events; ignore everything else."""
        if self._dryrun:
            return
        event = str(getattr(record, "event", "") or "")
        try:
            with self._lock:
                if event == "job_info":
                    self._started(record)
                elif event == "job_finished":
                    self._ended(getattr(record, "job_id", None), 0)
                elif event == "error":
                    self._last_error = record.getMessage()
                elif event == "job_error":
                    self._failed(record)
        except Exception:  # a logging handler must never break the workflow
            self.handleError(record)

    def _started(self, record: LogRecord) -> None:
        jobid = getattr(record, "jobid", None)
        if not isinstance(jobid, int) or jobid in self._open:
            return
        rule = str(getattr(record, "rule_name", "") or "")
        wildcards = getattr(record, "wildcards", None) or {}
        name = rule
        if isinstance(wildcards, dict) and wildcards:
            name += "[" + ", ".join(f"{k}={v}" for k, v in wildcards.items()) + "]"
        logs = [str(f) for f in getattr(record, "log", None) or []]
        shellcmd = getattr(record, "shellcmd", None)
        self._write_job(
            {
                "jobid": jobid,
                "rule": rule,
                "input": [str(f) for f in getattr(record, "input", None) or []],
                "output": [str(f) for f in getattr(record, "output", None) or []],
                "log": logs,
            }
        )
        if self._tasks_fd is None or self._task_dir is None:
            return
        self._count += 1
        task_id = str(self._count)
        folder = os.path.join(self._task_dir, task_id)
        os.makedirs(folder, exist_ok=True)
        # Empty until the job ends: a task's log links never lead to a 404.
        for stream in ("stdout", "stderr"):
            with open(os.path.join(folder, stream), "w"):
                pass
        self._open[jobid] = (task_id, logs)
        cmd = [str(shellcmd).strip()] if shellcmd else []
        self._write_task({"id": task_id, "name": name, "cmd": cmd, "start_time": _utc_now()})

    def _failed(self, record: LogRecord) -> None:
        jobid = getattr(record, "jobid", None)
        if jobid not in self._open:
            return  # the summary of failed jobs at the end repeats the event
        match = _EXIT_STATUS.search(self._last_error)
        code = int(match.group(1)) if match else 1
        task_id, logs = self._open[jobid]
        if not logs and self._task_dir and self._last_error:
            with open(os.path.join(self._task_dir, task_id, "stderr"), "w") as fh:
                fh.write(self._last_error + "\n")
        self._ended(jobid, code)

    def _ended(self, jobid: Any, exit_code: int) -> None:
        entry = self._open.pop(jobid, None)
        if entry is None or self._task_dir is None:
            return
        task_id, logs = entry
        if logs:
            _link(logs[0], os.path.join(self._task_dir, task_id, "stderr"))
        self._write_task({"id": task_id, "end_time": _utc_now(), "exit_code": exit_code})

    def _write_task(self, record: dict[str, Any]) -> None:
        if self._tasks_fd is not None:
            os.write(self._tasks_fd, json.dumps(record).encode() + b"\n")

    def _write_job(self, record: dict[str, Any]) -> None:
        if self._jobs_fd is not None:
            os.write(self._jobs_fd, json.dumps(record).encode() + b"\n")


def _link(source: str, target: str) -> None:
    """Expose a job's log file as its task's stderr, without copying it."""
    # The server serves task logs: neither a link nor a path outside the working directory
    # may lead it to a file outside the run.
    root = os.path.realpath(os.getcwd())
    if os.path.islink(source) or os.path.commonpath([root, os.path.realpath(source)]) != root:
        return
    with contextlib.suppress(OSError):
        if os.path.lexists(target):
            os.unlink(target)
        os.link(source, target)
