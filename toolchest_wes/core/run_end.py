"""A started run's way to its end: waiting for its engine, stopping it when the run is
cancelled or goes over its limits, and recording how the run ended.

Shared by ``execute_run``, which starts the engine, and ``adopt_run``, which follows an engine
an earlier process started. Every ending is a compare-and-set in the store, so a cancel that
arrives at any moment or a racing reconcile can never produce two endings.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from toolchest_wes.core.executor_deps import ExecutorDeps, patiently, with_storage_patience
from toolchest_wes.core.output_files import list_output_files
from toolchest_wes.core.resources import format_bytes
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.states import allowed_from
from toolchest_wes.core.workspace import RunDir
from toolchest_wes.engines.base import (
    EXIT_INTERNAL_ERROR,
    PreparedRun,
    ProcessHandle,
    Resources,
    WorkflowEngine,
)
from toolchest_wes.engines.proctree import tree_memory_bytes
from toolchest_wes.models import State
from toolchest_wes.storage.base import StorageError
from toolchest_wes.store.base import RunUpdate, StateStore, StoreUnavailableError, iso_now

__all__ = [
    "conclude",
    "describe",
    "end_run",
    "fail_outside_engine",
    "refuse",
    "wait_for_engine",
]

logger = logging.getLogger(__name__)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STDERR_TAIL_LINES = 5
#: What a process prints when a write fails because the disk (or the user's quota) is full.
_DISK_FULL = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
#: How long a running run waits before it tries again to upload its logs after a failure.
_LOG_UPLOAD_BACKOFF_S = 15.0
#: How often a run with a memory limit has its processes' memory read: often enough to stop
#: a runaway tool before it takes the machine's memory, rarely enough to cost nothing.
_MEMORY_CHECK_S = 1.0

#: How many state reads per second all the runs of one process make together, at most: with
#: many runs at once each reads its state less often than ``poll_interval_s``, so that a
#: thousand runs do not take the store and the process (the API's, in embedded mode) from the
#: requests. 500/s keeps the cancel check of 1,000 runs within 2 s.
_STATE_READS_PER_S = 500.0


class _Waiters:
    """How many runs of this process are waiting on their engine right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def enter(self) -> None:
        with self._lock:
            self.count += 1

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


_WAITERS = _Waiters()


def _state_poll_interval(poll_interval_s: float) -> float:
    """How long a run waits between two reads of its state, with the runs waiting now.

    Never below ``poll_interval_s``. The lease does not depend on it: ``LeaseKeeper``
    renews it apart from the state reads.
    """
    return max(poll_interval_s, _WAITERS.count / _STATE_READS_PER_S)


#: What ``wait_for_engine`` reports for a run stopped by a cancel request.
_CANCELLED = "cancelled"


def conclude(
    deps: ExecutorDeps,
    engine: WorkflowEngine,
    prepared: PreparedRun,
    run_dir: RunDir,
    exit_code: int,
    stopped: str | None,
) -> None:
    """Record how the run ended, once its engine exited with ``exit_code`` (``stopped``: why
    the executor stopped it, if it did), uploading its files first if they are kept apart."""
    store, run_id = deps.store, prepared.run_id
    collected: dict[str, Any] | None = None
    if deps.files is not None and exit_code == 0 and not stopped:
        # Before the upload: an engine may gather its outputs only once it has exited
        # (Snakemake links its final files into outputs/).
        collected = engine.collect_outputs(prepared, prepared.stdout_path)
    if deps.files is not None:
        problem = _upload_results(deps, run_id, outputs=exit_code == 0 and not stopped)
        if problem is not None and stopped != _CANCELLED:
            end_run(
                store,
                run_id,
                State.SYSTEM_ERROR,
                allowed_from(State.SYSTEM_ERROR),
                exit_code=exit_code,
                lines=[problem],
            )
            return
    if stopped == _CANCELLED:
        end_run(store, run_id, State.CANCELED, frozenset({State.CANCELING}), exit_code=exit_code)
    elif stopped is not None:
        end_run(
            store,
            run_id,
            State.EXECUTOR_ERROR,
            allowed_from(State.EXECUTOR_ERROR),
            exit_code=exit_code,
            lines=[stopped],
        )
    elif exit_code == 0:
        _complete(store, engine, prepared, run_dir, deps.files, collected)
    else:
        _failed(store, run_id, run_dir, exit_code)


def wait_for_engine(
    handle: ProcessHandle,
    deps: ExecutorDeps,
    run_id: str,
    resources: Resources,
    running_for_s: float = 0.0,
) -> tuple[int, str | None]:
    """Wait for the engine, killing it if the run is cancelled or goes over its limits.

    ``running_for_s``: how long the engine ran before this wait (an adopted run's).
    Returns the exit code and why the run was stopped: ``None`` if it ended by itself,
    ``_CANCELLED``, or a line for the user naming the limit it went over.
    """
    checked = uploaded = time.monotonic()
    started = checked - running_for_s
    # Counted while it waits, so that each run's state poll spreads out with many runs.
    _WAITERS.enter()
    try:
        while True:
            exit_code = handle.wait(_state_poll_interval(deps.poll_interval_s))
            if exit_code is not None:
                # A run can be cancelled in the instant its engine exits; the CAS in the
                # caller decides which ending wins, so only report a cancel we acted on.
                return exit_code, None
            now = time.monotonic()
            if deps.files is not None and now >= uploaded + deps.log_upload_interval_s:
                uploaded = now
                if not _upload_logs(deps.files, run_id):
                    # A storage that does not answer is tried less often, so that waiting on
                    # it never delays the cancel check much.
                    uploaded = now + _LOG_UPLOAD_BACKOFF_S
            over = _over_limit(handle, resources, now - started, now - checked)
            if over is not None:
                logger.info("stopping run_id=%s pid=%s: %s", run_id, handle.pid, over)
                return _stop(handle, deps), over
            if resources.memory_bytes is not None and now - checked >= _MEMORY_CHECK_S:
                checked = now
            try:
                cancelling = deps.store.get_state(run_id) is State.CANCELING
            except StoreUnavailableError as exc:
                # The store is restarting or out of reach: the engine keeps running (its lease
                # too, by ``deps.leases`` once the store is back). If that takes longer than the
                # lease, the reconcile loop ends the run as lost, and the final CAS finds it ended.
                logger.warning("store unavailable while running run_id=%s: %s", run_id, exc)
                continue
            if cancelling:
                logger.info("cancelling run_id=%s pid=%s", run_id, handle.pid)
                return _stop(handle, deps), _CANCELLED
    finally:
        _WAITERS.leave()


def _stop(handle: ProcessHandle, deps: ExecutorDeps) -> int:
    """Kill the engine's process group; its exit code (a negative signal number)."""
    handle.kill_tree(deps.cancel_grace_s)
    code = handle.wait(deps.cancel_grace_s)
    return code if code is not None else -int(signal.SIGKILL)


def _over_limit(
    handle: ProcessHandle, resources: Resources, elapsed_s: float, since_check_s: float
) -> str | None:
    """Why the run must stop now, or ``None``."""
    if resources.runtime_s is not None and elapsed_s > resources.runtime_s:
        return (
            f"the run was stopped after {elapsed_s:.0f} s: it went over its runtime limit of "
            f"{resources.runtime_s:g} s (workflow_engine_parameters 'runtime', or the "
            "server's default)"
        )
    if resources.memory_bytes is not None and since_check_s >= _MEMORY_CHECK_S:
        used = tree_memory_bytes(handle.pid)
        if used > resources.memory_bytes:
            return (
                f"the run was stopped: its processes used {used / (1 << 20):.0f} MiB of "
                f"memory, over its limit of {format_bytes(resources.memory_bytes)} "
                "(workflow_engine_parameters 'memory', or the server's default)"
            )
    return None


def _upload_logs(files: RunFiles, run_id: str) -> bool:
    """Send the logs so far, so that users can follow them; whether that worked (a failure
    is only logged: the next upload, or the one at the end, sends them)."""
    try:
        files.upload_logs(run_id)
    except (StorageError, OSError) as exc:
        logger.warning("could not upload the logs of run_id=%s yet: %s", run_id, exc)
        return False
    return True


def _upload_results(deps: ExecutorDeps, run_id: str, *, outputs: bool) -> str | None:
    """Upload the logs, and the outputs if asked; a line for system_logs if that failed."""
    files = deps.files
    assert files is not None

    def upload() -> None:
        files.finish_logs(run_id)
        if outputs:
            files.upload_outputs(run_id)

    try:
        with_storage_patience(deps, run_id, upload)
    except (StorageError, OSError) as exc:
        logger.warning("could not upload the files of run_id=%s: %s", run_id, exc)
        what = "outputs and logs" if outputs else "logs"
        return f"the run's {what} could not be uploaded to {files.url}: {exc}"
    return None


def _complete(
    store: StateStore,
    engine: WorkflowEngine,
    prepared: PreparedRun,
    run_dir: RunDir,
    stored: RunFiles | None = None,
    collected: dict[str, Any] | None = None,
) -> None:
    """End the run COMPLETE with its outputs (``collected`` already, or collected now)."""
    outputs = collected
    if outputs is None:
        outputs = engine.collect_outputs(prepared, prepared.stdout_path)
    files = list_output_files(outputs, run_dir.outputs)
    if stored is not None:
        outputs = stored.stored_locations(outputs, prepared.run_id)
    end_run(
        store,
        prepared.run_id,
        State.COMPLETE,
        allowed_from(State.COMPLETE),
        exit_code=0,
        outputs=outputs,
        output_files=files,
    )


def _failed(store: StateStore, run_id: str, run_dir: RunDir, exit_code: int) -> None:
    text = _tail_lines(run_dir.stderr)
    tail = text[-_STDERR_TAIL_LINES:]
    if exit_code > 0 and _disk_full(text, run_dir):
        # The server's disk failed, not the workflow: the same run succeeds once there is
        # room, so this is a system error, told apart by the errno the engine or a tool hit.
        state = State.SYSTEM_ERROR
        lines = [
            f"no space left on device: the work directory {run_dir.root.parent} is full "
            "(the server's disk, not the workflow, failed; the run can succeed once space "
            "is freed)"
        ]
    elif exit_code == EXIT_INTERNAL_ERROR:
        state, lines = State.SYSTEM_ERROR, ["the engine wrapper failed inside the server"]
    elif exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else ""
        state = State.SYSTEM_ERROR
        lines = [f"the engine was killed by signal {-exit_code} {name}".rstrip()]
    else:
        state, lines = State.EXECUTOR_ERROR, [f"the engine exited with status {exit_code}"]
    if tail:
        lines.append("last lines of stderr:\n" + "\n".join(tail))
    end_run(store, run_id, state, allowed_from(state), exit_code=exit_code, lines=lines)


def refuse(store: StateStore, run_id: str, reason: str) -> None:
    """End a run that cannot start, SYSTEM_ERROR, with ``reason`` in its system logs."""
    end_run(store, run_id, State.SYSTEM_ERROR, allowed_from(State.SYSTEM_ERROR), lines=[reason])


def fail_outside_engine(
    deps: ExecutorDeps,
    run_id: str,
    handle: ProcessHandle | None,
    exc: Exception,
    *,
    log_line: str,
    reason: str,
) -> None:
    """End a run that failed in the server rather than in its engine, with ``exc`` caught.

    The engine (``handle``, if it has not been waited for) is killed with its process tree.
    A store that does not answer leaves the run to its lease: recording an ending needs the
    store too, and the reconcile loop queues the run again (never started) or ends it
    SYSTEM_ERROR. Any other failure is logged with its traceback (``log_line``) and ends the
    run SYSTEM_ERROR with ``reason`` and a traceback-free line for ``exc`` in its system logs.
    """
    if isinstance(exc, StoreUnavailableError):
        if handle is not None:
            handle.kill_tree(deps.cancel_grace_s)
        logger.warning("store unavailable, run left to its lease run_id=%s: %s", run_id, exc)
        return
    logger.error("%s run_id=%s", log_line, run_id, exc_info=exc)
    if handle is not None:
        handle.kill_tree(deps.cancel_grace_s)
    end_run(
        deps.store,
        run_id,
        State.SYSTEM_ERROR,
        allowed_from(State.SYSTEM_ERROR),
        lines=[f"{reason}: {describe(exc)}"],
    )


def end_run(
    store: StateStore,
    run_id: str,
    state: State,
    sources: frozenset[State],
    *,
    exit_code: int | None = None,
    lines: list[str] | None = None,
    outputs: dict[str, Any] | None = None,
    output_files: list[dict[str, Any]] | None = None,
) -> bool:
    """Move the run to ``state`` if it is in one of ``sources``, with its end time and what
    is given; whether this ending was the one recorded."""
    update = RunUpdate(
        end_time=iso_now(),
        exit_code=exit_code,
        outputs=outputs,
        output_files=output_files,
        append_system_logs=list(lines or []),
    )
    # A retried transition that had already been applied fails its compare-and-set, so
    # retrying can never record a second ending.
    done = patiently(
        lambda: store.transition(run_id, state, allowed_from=sources, update=update), run_id
    )
    if done:
        logger.info("run ended run_id=%s state=%s exit_code=%s", run_id, state, exit_code)
    else:
        logger.info("run already ended, %s not recorded run_id=%s", state, run_id)
    return done


def _tail_lines(path: Path) -> list[str]:
    """The non-blank lines of the file's last 8 KiB, without colour codes."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [_ANSI.sub("", line).rstrip() for line in text.splitlines() if line.strip()]


def _disk_full(engine_stderr: list[str], run_dir: RunDir) -> bool:
    """Whether the engine, or a tool in its own stderr, reported a full disk or quota."""
    tools = (_tail_lines(path) for path in run_dir.tasks.glob("*/stderr"))
    return any(
        marker in line
        for lines in (engine_stderr, *tools)
        for line in lines
        for marker in _DISK_FULL
    )


def describe(exc: BaseException) -> str:
    """A one-line reason without a traceback or server-internal details beyond the message."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
