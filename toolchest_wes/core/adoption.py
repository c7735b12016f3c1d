"""adopt_run: follow a run whose engine an earlier process of this server started.

In embedded mode a gunicorn worker that dies leaves the engines it forked from the warm zygote
running (``toolchest_wes.engines.adopted``); the worker that replaces it hands each one's run
to ``adopt_run`` on its pool, which takes the run from RUNNING to a terminal state as
``execute_run`` would have.
"""

from __future__ import annotations

import logging

from toolchest_wes.core.executor import prepare_run
from toolchest_wes.core.executor_deps import ExecutorDeps, patiently
from toolchest_wes.core.run_end import conclude, end_run, fail_outside_engine, wait_for_engine
from toolchest_wes.core.states import allowed_from
from toolchest_wes.engines.base import ProcessHandle
from toolchest_wes.engines.process import ProcessLostError
from toolchest_wes.models import State
from toolchest_wes.store.base import RunUpdate

__all__ = ["adopt_run"]

logger = logging.getLogger(__name__)

#: How an adopted run's system logs begin.
_RESTARTED = "the server's worker process restarted while the run was RUNNING"


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
        record = patiently(lambda: store.get_run(run_id), run_id)
        if record is None or record.state.is_terminal:
            handle.kill_tree(deps.cancel_grace_s)
            return
        engine = deps.engine_for(record)
        run_dir = deps.workspace.run_dir(run_id)
        resources, _ = deps.resources.resolve(
            record.request.workflow_engine_parameters, strict=False
        )
        prepared = prepare_run(record, run_dir, resources)
        deps.leases.renew_now(run_id)
        logger.info("run adopted run_id=%s pid=%s", run_id, handle.pid)
        try:
            exit_code, stopped = wait_for_engine(handle, deps, run_id, resources, running_for_s)
        except ProcessLostError as exc:
            adopted = None
            end_run(
                store,
                run_id,
                State.SYSTEM_ERROR,
                allowed_from(State.SYSTEM_ERROR),
                lines=[f"{_RESTARTED}; {exc}"],
            )
            return
        adopted = None
        line = f"{_RESTARTED}; the new one took over its engine process (pid {handle.pid})"
        patiently(lambda: store.update_run(run_id, RunUpdate(append_system_logs=[line])), run_id)
        conclude(deps, engine, prepared, run_dir, exit_code, stopped)
    except Exception as exc:
        fail_outside_engine(
            deps,
            run_id,
            adopted,
            exc,
            log_line="adopted run failed in the server",
            reason="the server failed to follow the workflow",
        )
    finally:
        deps.forget_engine(run_id)
