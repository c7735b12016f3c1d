"""execute_run: the worker side of a run's life, from QUEUED to a terminal state.

The same function runs in the embedded server's thread pool and (in distributed mode) in a
Celery task. Every state change is a compare-and-set in the store, so a cancel that arrives at
any moment, a duplicate delivery or a racing reconcile can never produce two endings.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from toolchest_wes.core.leases import LeaseKeeper
from toolchest_wes.core.resources import ResourcePolicy, format_bytes
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.states import allowed_from
from toolchest_wes.core.workspace import RunDir, Workspace
from toolchest_wes.engines.base import (
    EXIT_INTERNAL_ERROR,
    Launcher,
    PreparedRun,
    ProcessHandle,
    Resources,
    WorkflowEngine,
)
from toolchest_wes.engines.engine_record import remove_record
from toolchest_wes.engines.process import ProcessLostError
from toolchest_wes.engines.proctree import tree_memory_bytes
from toolchest_wes.models import State
from toolchest_wes.storage.base import StorageError, StorageUnavailableError
from toolchest_wes.store.base import (
    RunRecord,
    RunUpdate,
    StateStore,
    StoreUnavailableError,
    iso_now,
)

__all__ = ["ExecutorDeps", "adopt_run", "execute_run", "list_output_files", "prepare_run"]

logger = logging.getLogger(__name__)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STDERR_TAIL_LINES = 5
#: What a process prints when a write fails because the disk (or the user's quota) is full.
_DISK_FULL = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
#: How long a run waits for an unreachable store to record its start or its end. A
#: restarting Redis or a locked SQLite file is back well within it; past it the run is left to
#: the reconcile loop, which queues it again or ends it once its message or lease is gone.
_STORE_PATIENCE_S = 60.0
_STORE_RETRY_S = 0.5
#: How long a run waits for an unreachable storage to give its files or take its results.
_STORAGE_PATIENCE_S = 30.0
#: How long a running run waits before it tries again to upload its logs after a failure.
_LOG_UPLOAD_BACKOFF_S = 15.0
_STORAGE_RETRY_S = 2.0
#: How often a run with a memory limit has its processes' memory read: often enough to stop
#: a runaway tool before it takes the machine's memory, rarely enough to cost nothing.
_MEMORY_CHECK_S = 1.0

#: How many state reads per second all the runs of one process make together, at most: with
#: many runs at once each reads its state less often than ``poll_interval_s``, so that a
#: thousand runs do not take the store and the process (the API's, in embedded mode) from the
#: requests. 500/s keeps the cancel check of 1,000 runs within 2 s.
_STATE_READS_PER_S = 500.0

_T = TypeVar("_T")


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


@dataclass
class ExecutorDeps:
    """What ``execute_run`` needs, built once per process by the wiring code."""

    store: StateStore
    workspace: Workspace
    engine_for: Callable[[RunRecord], WorkflowEngine]
    launcher: Launcher
    poll_interval_s: float = 0.2
    cancel_grace_s: float = 1.0
    lease_ttl_s: float = 30.0
    resources: ResourcePolicy = field(default_factory=ResourcePolicy)
    #: Where run files are kept when the data folder is not shared (``--storage``); the
    #: workspace is then this process's scratch space. ``None``: the files stay in place.
    files: RunFiles | None = None
    #: How often a running run's logs are uploaded to ``files``.
    log_upload_interval_s: float = 2.0
    #: Where each run's engine process is recorded while it runs, for a process that takes
    #: over after this one dies (``toolchest_wes.engines.engine_record``); ``None``: nowhere.
    engine_records: Path | None = None

    #: Renews the lease of every run this process holds (built from ``store`` and
    #: ``lease_ttl_s``).
    leases: LeaseKeeper = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.leases = LeaseKeeper(self.store, self.lease_ttl_s)

    def engine_record(self, run_id: str) -> Path | None:
        """Where the engine of ``run_id`` is recorded, if engines are recorded."""
        return None if self.engine_records is None else self.engine_records / f"{run_id}.json"


def execute_run(run_id: str, deps: ExecutorDeps) -> None:
    """Take the run from QUEUED to a terminal state. Never raises for a run's own failure.

    Until the engine starts, an unreachable store is waited for (up to a minute): nothing has
    happened yet that a retry could repeat. If it stays unreachable, the run is left as it
    is, QUEUED or INITIALIZING, for the reconcile loop, which queues it again once its
    message or its lease is gone; a run that never started is never failed for a store
    outage.
    """
    store = deps.store
    try:
        # The lease comes with the move to INITIALIZING, in one step: a worker that dies (or
        # loses the store) right after it leaves a lease that runs out, never a run in
        # INITIALIZING that nothing watches.
        started = _patiently(
            lambda: store.transition(
                run_id,
                State.INITIALIZING,
                allowed_from=frozenset({State.QUEUED}),
                update=RunUpdate(start_time=iso_now()),
                lease_ttl_s=deps.lease_ttl_s,
            ),
            run_id,
        )
        if not started:
            _patiently(lambda: _finish_cancel_before_start(store, run_id), run_id)
            return
    except StoreUnavailableError as exc:
        logger.warning(
            "store unavailable, run not started; the reconcile loop queues it again run_id=%s: %s",
            run_id,
            exc,
        )
        return
    # From here until the run ends, its lease is renewed by the process, whatever the run
    # waits for: its files, a fork from a zygote busy with a burst of runs, its engine.
    with deps.leases.hold(run_id):
        _execute_started(run_id, deps)


def _execute_started(run_id: str, deps: ExecutorDeps) -> None:
    """The rest of ``execute_run``, for a run moved to INITIALIZING by this process."""
    store = deps.store
    handle: ProcessHandle | None = None
    try:
        record = _patiently(lambda: store.get_run(run_id), run_id)
        if record is None:
            return
        engine = deps.engine_for(record)
        run_dir = deps.workspace.run_dir(run_id)
        files = deps.files
        if files is not None:
            try:
                _with_storage_patience(deps, run_id, lambda: files.fetch_inputs(run_id))
            except (StorageError, OSError) as exc:
                _refuse(
                    store,
                    run_id,
                    f"the run's files could not be fetched from {files.url}: {exc}; "
                    "submit it again once the storage is back",
                )
                return
        if not run_dir.params_file.exists():
            # A submission whose answer was an error (the store timed out, then applied the
            # write) leaves a record without files: it can never run, so it ends at once.
            _refuse(
                store,
                run_id,
                "the run's files are missing: its submission was answered with an error "
                "(or the files were removed), so it was not run; submit it again",
            )
            return
        # Not strict: the run was accepted, so a policy changed since only clamps it.
        resources, _ = deps.resources.resolve(
            record.request.workflow_engine_parameters, strict=False
        )
        prepared = prepare_run(record, run_dir, resources)
        spec = engine.launch_spec(prepared)
        spec.record = deps.engine_record(run_id)
        if not _patiently(
            lambda: store.transition(
                run_id,
                State.RUNNING,
                allowed_from=frozenset({State.INITIALIZING}),
                update=RunUpdate(cmd=spec.argv),
                lease_ttl_s=deps.lease_ttl_s,
            ),
            run_id,
        ):
            # Cancelled, or queued again by the reconcile loop after this worker's lease ran
            # out (the worker that takes the new message runs it).
            _end(store, run_id, State.CANCELED, frozenset({State.CANCELING}))
            return
        handle = deps.launcher.start(spec)
        logger.info("run started run_id=%s pid=%s", run_id, handle.pid)
        exit_code, stopped = _wait(handle, deps, run_id, resources)
        handle = None
        _conclude(deps, engine, prepared, run_dir, exit_code, stopped)
    except StoreUnavailableError as exc:
        if handle is not None:
            handle.kill_tree(deps.cancel_grace_s)
        # Recording an ending needs the store too: the lease runs out instead, and the
        # reconcile loop queues the run again (never started) or ends it SYSTEM_ERROR.
        logger.warning("store unavailable, run left to its lease run_id=%s: %s", run_id, exc)
    except Exception as exc:
        logger.exception("run failed in the server run_id=%s", run_id)
        if handle is not None:
            handle.kill_tree(deps.cancel_grace_s)
        _end(
            store,
            run_id,
            State.SYSTEM_ERROR,
            allowed_from(State.SYSTEM_ERROR),
            lines=[f"the server failed to run the workflow: {_describe(exc)}"],
        )
    finally:
        _forget_engine(deps, run_id)
        if deps.files is not None:
            # The files are in storage (or the run failed): the worker's disk keeps nothing.
            deps.files.discard_scratch(run_id)


def adopt_run(run_id: str, deps: ExecutorDeps, handle: ProcessHandle, running_for_s: float) -> None:
    """Follow a RUNNING run whose engine an earlier process of this server started, from
    where that process left it to a terminal state, as ``execute_run`` would have.

    ``handle`` is the engine (it may have exited already), running for ``running_for_s``
    seconds, which count towards the run's runtime limit. A cancel, the limits, the outputs
    and the logs are handled as for a run this process started. Never raises for a run's own
    failure. Not for runs whose files are kept in a storage (``deps.files``).
    """
    with deps.leases.hold(run_id):
        _follow_adopted(run_id, deps, handle, running_for_s)


def _follow_adopted(
    run_id: str, deps: ExecutorDeps, handle: ProcessHandle, running_for_s: float
) -> None:
    """The body of ``adopt_run``, with the run's lease held."""
    store = deps.store
    adopted: ProcessHandle | None = handle
    try:
        record = _patiently(lambda: store.get_run(run_id), run_id)
        if record is None or record.state.is_terminal:
            handle.kill_tree(deps.cancel_grace_s)
            return
        engine = deps.engine_for(record)
        run_dir = deps.workspace.run_dir(run_id)
        resources, _ = deps.resources.resolve(
            record.request.workflow_engine_parameters, strict=False
        )
        prepared = prepare_run(record, run_dir, resources)
        store.touch_lease(run_id, deps.lease_ttl_s)
        logger.info("run adopted run_id=%s pid=%s", run_id, handle.pid)
        try:
            exit_code, stopped = _wait(handle, deps, run_id, resources, running_for_s)
        except ProcessLostError as exc:
            adopted = None
            _end(
                store,
                run_id,
                State.SYSTEM_ERROR,
                allowed_from(State.SYSTEM_ERROR),
                lines=[f"{_RESTARTED}; {exc}"],
            )
            return
        adopted = None
        line = f"{_RESTARTED}; the new one took over its engine process (pid {handle.pid})"
        _patiently(lambda: store.update_run(run_id, RunUpdate(append_system_logs=[line])), run_id)
        _conclude(deps, engine, prepared, run_dir, exit_code, stopped)
    except StoreUnavailableError as exc:
        if adopted is not None:
            adopted.kill_tree(deps.cancel_grace_s)
        logger.warning("store unavailable, run left to its lease run_id=%s: %s", run_id, exc)
    except Exception as exc:
        logger.exception("adopted run failed in the server run_id=%s", run_id)
        if adopted is not None:
            adopted.kill_tree(deps.cancel_grace_s)
        _end(
            store,
            run_id,
            State.SYSTEM_ERROR,
            allowed_from(State.SYSTEM_ERROR),
            lines=[f"the server failed to follow the workflow: {_describe(exc)}"],
        )
    finally:
        _forget_engine(deps, run_id)


#: How an adopted run's system logs begin.
_RESTARTED = "the server's worker process restarted while the run was RUNNING"


def _forget_engine(deps: ExecutorDeps, run_id: str) -> None:
    """Remove the run's engine record: its engine has ended, or was never started."""
    path = deps.engine_record(run_id)
    if path is not None:
        with contextlib.suppress(OSError):
            remove_record(path)


def _conclude(
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
            _end(
                store,
                run_id,
                State.SYSTEM_ERROR,
                allowed_from(State.SYSTEM_ERROR),
                exit_code=exit_code,
                lines=[problem],
            )
            return
    if stopped == _CANCELLED:
        _end(store, run_id, State.CANCELED, frozenset({State.CANCELING}), exit_code=exit_code)
    elif stopped is not None:
        _end(
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


def _patiently(call: Callable[[], _T], run_id: str) -> _T:
    """``call()``, retried while the store is unavailable, for up to ``_STORE_PATIENCE_S``.

    Only for idempotent calls or compare-and-set transitions: a retried transition that had
    been applied (its answer lost) fails its compare-and-set, which the caller handles like
    any lost race.
    """
    deadline = time.monotonic() + _STORE_PATIENCE_S
    while True:
        try:
            return call()
        except StoreUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise
            logger.warning("store unavailable, retrying run_id=%s: %s", run_id, exc)
            time.sleep(_STORE_RETRY_S)


def _finish_cancel_before_start(store: StateStore, run_id: str) -> None:
    """The run was not QUEUED: a cancel (or a duplicate delivery) got there first."""
    if store.get_state(run_id) is State.CANCELING:
        _end(store, run_id, State.CANCELED, frozenset({State.CANCELING}))


def prepare_run(record: RunRecord, run_dir: RunDir, resources: Resources) -> PreparedRun:
    """The staged run ``record`` as its engine sees it: the workflow as a path under the
    attachments (unless it is a URL), and the folders of ``run_dir``."""
    url = record.request.workflow_url
    if "://" not in url:
        path, sep, fragment = url.partition("#")
        url = str(run_dir.attachments / path) + sep + fragment
    return PreparedRun(
        run_id=record.run_id,
        run_dir=run_dir.root,
        workflow=url,
        params_file=run_dir.params_file,
        attachments_dir=run_dir.attachments,
        outputs_dir=run_dir.outputs,
        work_dir=run_dir.work,
        task_dir=run_dir.tasks,
        stdout_path=run_dir.stdout,
        stderr_path=run_dir.stderr,
        engine_args=list(record.engine_args),
        resources=resources,
    )


#: What ``_wait`` reports for a run stopped by a cancel request.
_CANCELLED = "cancelled"


def _wait(
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
        _with_storage_patience(deps, run_id, upload)
    except (StorageError, OSError) as exc:
        logger.warning("could not upload the files of run_id=%s: %s", run_id, exc)
        what = "outputs and logs" if outputs else "logs"
        return f"the run's {what} could not be uploaded to {files.url}: {exc}"
    return None


def _with_storage_patience(deps: ExecutorDeps, run_id: str, call: Callable[[], None]) -> None:
    """``call()``, retried for ``_STORAGE_PATIENCE_S`` while the storage does not answer, so
    that a bucket that restarts costs no run (its lease is kept by ``deps.leases``)."""
    deadline = time.monotonic() + _STORAGE_PATIENCE_S
    while True:
        try:
            call()
            return
        except StorageUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise
            logger.warning("storage unavailable, retrying run_id=%s: %s", run_id, exc)
            time.sleep(_STORAGE_RETRY_S)


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
    _end(
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
    _end(store, run_id, state, allowed_from(state), exit_code=exit_code, lines=lines)


def _refuse(store: StateStore, run_id: str, reason: str) -> None:
    """End a run that cannot start, SYSTEM_ERROR, with ``reason`` in its system logs."""
    _end(store, run_id, State.SYSTEM_ERROR, allowed_from(State.SYSTEM_ERROR), lines=[reason])


def _end(
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
    update = RunUpdate(
        end_time=iso_now(),
        exit_code=exit_code,
        outputs=outputs,
        output_files=output_files,
        append_system_logs=list(lines or []),
    )
    # A retried transition that had already been applied fails its compare-and-set, so
    # retrying can never record a second ending.
    done = _patiently(
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


def _describe(exc: BaseException) -> str:
    """A one-line reason without a traceback or server-internal details beyond the message."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def list_output_files(outputs: dict[str, Any], outputs_dir: Path) -> list[dict[str, Any]]:
    """Every file of a CWL output object under ``outputs_dir``, with size and checksum.

    Files named in the output object (including secondaryFiles and Directory listings) keep
    cwltool's ``sha1$...`` checksum; other files found under an output Directory get one
    computed the same way.
    """
    root = outputs_dir.resolve()
    known: dict[str, str | None] = {}

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class") == "File" and isinstance(value.get("location"), str):
                rel = _relative_to(value["location"], root)
                if rel is not None:
                    known.setdefault(rel, value.get("checksum"))
            for child in value.values():
                visit(child)
        elif isinstance(value, list):
            for child in value:
                visit(child)

    visit(outputs)
    files: list[dict[str, Any]] = []
    if root.is_dir():
        for dirpath, _dirnames, filenames in os.walk(root):
            for filename in filenames:
                full = Path(dirpath) / filename
                if full.is_symlink():
                    continue
                rel = full.relative_to(root).as_posix()
                checksum = known.get(rel) or _sha1(full)
                files.append({"path": rel, "size": full.stat().st_size, "checksum": checksum})
    files.sort(key=lambda f: f["path"])
    return files


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return "sha1$" + digest.hexdigest()


def _relative_to(location: str, root: Path) -> str | None:
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path)).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None
