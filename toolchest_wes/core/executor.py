"""execute_run: the worker side of a run's life, from QUEUED to a terminal state.

The same function runs in the embedded server's thread pool and (in distributed mode) in a
Celery task. Every state change is a compare-and-set in the store, so a cancel that arrives at
any moment, a duplicate delivery or a racing reconcile can never produce two endings.

This module takes the run as far as its engine's start. What follows (the wait for the engine,
the limits, the recording of the ending) is ``run_end``, which ``adoption.adopt_run`` shares
for the engines an earlier process started.
"""

from __future__ import annotations

import logging

from toolchest_wes.core.executor_deps import ExecutorDeps, patiently, with_storage_patience
from toolchest_wes.core.run_end import (
    conclude,
    end_run,
    fail_outside_engine,
    refuse,
    wait_for_engine,
)
from toolchest_wes.core.workspace import RunDir
from toolchest_wes.engines.base import PreparedRun, ProcessHandle, Resources
from toolchest_wes.models import State
from toolchest_wes.storage.base import StorageError
from toolchest_wes.store.base import (
    RunRecord,
    RunUpdate,
    StateStore,
    StoreUnavailableError,
    iso_now,
)

# ExecutorDeps lives in executor_deps (which adopt_run shares); it is named here too, next
# to the function it is for.
__all__ = ["ExecutorDeps", "execute_run", "prepare_run"]

logger = logging.getLogger(__name__)


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
        started = patiently(
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
            patiently(lambda: _finish_cancel_before_start(store, run_id), run_id)
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
        record = patiently(lambda: store.get_run(run_id), run_id)
        if record is None:
            return
        engine = deps.engine_for(record)
        run_dir = deps.workspace.run_dir(run_id)
        files = deps.files
        if files is not None:
            try:
                with_storage_patience(deps, run_id, lambda: files.fetch_inputs(run_id))
            except (StorageError, OSError) as exc:
                refuse(
                    store,
                    run_id,
                    f"the run's files could not be fetched from {files.url}: {exc}; "
                    "submit it again once the storage is back",
                )
                return
        if not run_dir.params_file.exists():
            # A submission whose answer was an error (the store timed out, then applied the
            # write) leaves a record without files: it can never run, so it ends at once.
            refuse(
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
        if not patiently(
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
            end_run(store, run_id, State.CANCELED, frozenset({State.CANCELING}))
            return
        handle = deps.launcher.start(spec)
        logger.info("run started run_id=%s pid=%s", run_id, handle.pid)
        exit_code, stopped = wait_for_engine(handle, deps, run_id, resources)
        handle = None
        conclude(deps, engine, prepared, run_dir, exit_code, stopped)
    except Exception as exc:
        fail_outside_engine(
            deps,
            run_id,
            handle,
            exc,
            log_line="run failed in the server",
            reason="the server failed to run the workflow",
        )
    finally:
        deps.forget_engine(run_id)
        if deps.files is not None:
            # The files are in storage (or the run failed): the worker's disk keeps nothing.
            deps.files.discard_scratch(run_id)


def _finish_cancel_before_start(store: StateStore, run_id: str) -> None:
    """The run was not QUEUED: a cancel (or a duplicate delivery) got there first."""
    if store.get_state(run_id) is State.CANCELING:
        end_run(store, run_id, State.CANCELED, frozenset({State.CANCELING}))


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
