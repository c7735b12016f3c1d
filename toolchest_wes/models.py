"""Typed models of the WES 1.1 schemas, shared by the server and the client.

Every model tolerates unknown fields (``extra="allow"``) so a client built on them keeps working
against servers that send more than the spec names. Field names follow the spec exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "ACTIVE_STATES",
    "FAILED_STATES",
    "LEASED_STATES",
    "STATE_GROUPS",
    "TERMINAL_STATES",
    "DefaultWorkflowEngineParameter",
    "ErrorResponse",
    "Log",
    "OutputFile",
    "OutputListResponse",
    "RunId",
    "RunListResponse",
    "RunLog",
    "RunRequest",
    "RunStatus",
    "RunSummary",
    "ServiceInfo",
    "State",
    "StateField",
    "TaskListResponse",
    "TaskLog",
    "WorkerStatus",
    "WorkersInfo",
    "parse_state_names",
]


class State(StrEnum):
    """The 11 run states of WES 1.1.

    A ``StrEnum``, so ``State.COMPLETE == "COMPLETE"`` holds and values serialise as plain strings.
    """

    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    CANCELING = "CANCELING"
    PREEMPTED = "PREEMPTED"

    @property
    def is_terminal(self) -> bool:
        """True when the run will not change state again."""
        return self in TERMINAL_STATES

    @property
    def is_success(self) -> bool:
        """True only for COMPLETE."""
        return self is State.COMPLETE


#: States a run never leaves. PREEMPTED is not here: WES 1.1 lets a preempted run be resumed.
TERMINAL_STATES: frozenset[State] = frozenset(
    {State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.CANCELED}
)

#: Non-terminal states: a run in one of these still owes the user an ending.
ACTIVE_STATES: frozenset[State] = frozenset(State) - TERMINAL_STATES

#: States in which an executor holds the run and must keep its lease fresh; a run in one of
#: them whose lease ran out lost its executor (see ``StateStore.expired_leases``).
LEASED_STATES: frozenset[State] = frozenset({State.INITIALIZING, State.RUNNING, State.CANCELING})

#: States of a run that went wrong: the workflow failed, the server failed, or it was preempted.
FAILED_STATES: frozenset[State] = frozenset(
    {State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.PREEMPTED}
)

#: The names a run listing's state filter takes besides the WES states (server ``state=``
#: query parameter, client ``state=`` argument, dashboard menu), and the states each stands for.
#: Lowercase only, so ``canceled`` is the group and ``CANCELED`` the state.
STATE_GROUPS: dict[str, frozenset[State]] = {
    "active": ACTIVE_STATES,
    "finished": TERMINAL_STATES,
    "failed": FAILED_STATES,
    "canceled": frozenset({State.CANCELED, State.CANCELING}),
}


def parse_state_names(names: Iterable[str]) -> frozenset[State]:
    """The states that ``names`` stand for, each a WES state (case-insensitive) or a group of
    :data:`STATE_GROUPS`, or several of them comma-separated; blank names are skipped.

    Raises:
        ValueError: A name is neither; the message names it and lists the valid names.
    """
    states: set[State] = set()
    for item in names:
        for name in (n.strip() for n in item.split(",")):
            if not name:
                continue
            group = STATE_GROUPS.get(name)
            if group is not None:
                states |= group
            elif name.upper() in State.__members__:
                states.add(State(name.upper()))
            else:
                raise ValueError(
                    f"{name!r} is not a WES state or a group; use one of {', '.join(State)}, "
                    f"or {', '.join(STATE_GROUPS)}"
                )
    return frozenset(states)


def _lenient_state(value: Any) -> Any:
    """Read a state a newer or non-conforming server sends that this version does not know as
    UNKNOWN, instead of failing the whole document."""
    if isinstance(value, str) and value not in State.__members__:
        upper = value.strip().upper()
        return upper if upper in State.__members__ else State.UNKNOWN
    return value


#: A ``State`` field of a document received from a server: unknown values read as UNKNOWN.
StateField = Annotated[State, BeforeValidator(_lenient_state)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RunRequest(_Model):
    """What a client asks to run (spec ``RunRequest``)."""

    workflow_params: dict[str, Any] = Field(default_factory=dict)
    workflow_type: str
    workflow_type_version: str
    tags: dict[str, str] = Field(default_factory=dict)
    workflow_engine_parameters: dict[str, str] = Field(default_factory=dict)
    workflow_engine: str | None = None
    workflow_engine_version: str | None = None
    workflow_url: str


class RunId(_Model):
    """The id of a run (spec ``RunId``)."""

    run_id: str


class RunStatus(_Model):
    """A run's id and state (spec ``RunStatus``)."""

    run_id: str
    state: StateField = State.UNKNOWN


class RunSummary(RunStatus):
    """One item of a run listing (spec ``RunSummary``)."""

    start_time: str | None = None
    end_time: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class RunListResponse(_Model):
    """One page of runs (spec ``RunListResponse``); ``next_page_token`` is ``""`` at the end."""

    runs: list[RunSummary] = Field(default_factory=list)
    next_page_token: str = ""


class Log(_Model):
    """Log and timing of a run or a task (spec ``Log``); ``stdout``/``stderr`` are URLs."""

    name: str | None = None
    cmd: list[str] | None = None
    start_time: str | None = None
    end_time: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    system_logs: list[str] | None = None


class TaskLog(Log):
    """One task of a run: a CWL job (spec ``TaskLog``)."""

    # Required by WES 1.1; WES 1.0 servers send task logs without an id.
    id: str = ""
    name: str = ""  # required here, optional on Log
    tes_uri: str | None = None


class TaskListResponse(_Model):
    """One page of task logs (spec ``TaskListResponse``)."""

    task_logs: list[TaskLog] = Field(default_factory=list)
    next_page_token: str = ""


class RunLog(_Model):
    """Everything about one run (spec ``RunLog``)."""

    run_id: str
    request: RunRequest | None = None
    state: StateField = State.UNKNOWN
    run_log: Log | None = None
    task_logs_url: str | None = None
    task_logs: list[TaskLog] | None = None
    outputs: dict[str, Any] | None = None
    #: Extension: when the server accepted the run (``run_log.start_time`` is when it started).
    submitted_time: str | None = None


class DefaultWorkflowEngineParameter(_Model):
    """An engine parameter and its default (spec ``DefaultWorkflowEngineParameter``)."""

    name: str | None = None
    type: str | None = None
    default_value: str | None = None


class WorkerStatus(_Model):
    """One worker's last heartbeat (extension, in service-info ``workers``)."""

    name: str
    #: ISO 8601 UTC, on the Redis server's clock.
    last_heartbeat: str
    seconds_since_heartbeat: float
    #: Whether the worker's consumer was connected to the queue and taking runs.
    consuming: bool
    engines: dict[str, str] = Field(default_factory=dict)


class WorkersInfo(_Model):
    """The executing workers of a distributed server (extension field of service-info)."""

    #: Workers seen within ``heartbeat_timeout_s`` whose consumer takes runs.
    live: int
    heartbeat_timeout_s: float
    workers: list[WorkerStatus] = Field(default_factory=list)


class ServiceInfo(_Model):
    """What this service supports (spec ``ServiceInfo``, which extends GA4GH ``Service``)."""

    # The GA4GH Service fields are required by WES 1.1; defaults let the client read WES 1.0
    # servers, which send none of them. This server always sends them.
    id: str = ""
    name: str = ""
    type: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    organization: dict[str, str] = Field(default_factory=dict)
    contactUrl: str | None = None  # spec field names
    documentationUrl: str | None = None
    environment: str | None = None
    version: str = ""
    workflow_type_versions: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    supported_wes_versions: list[str] = Field(default_factory=list)
    supported_filesystem_protocols: list[str] = Field(default_factory=list)
    # {engine: {"workflow_engine_version": [...]}} in WES 1.1; WES 1.0 servers send
    # {engine: "version"}.
    workflow_engine_versions: dict[str, Any] = Field(default_factory=dict)
    default_workflow_engine_parameters: list[DefaultWorkflowEngineParameter] = Field(
        default_factory=list
    )
    system_state_counts: dict[str, int] = Field(default_factory=dict)
    auth_instructions_url: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    #: Extension: the workers and their heartbeats (distributed mode only).
    workers: WorkersInfo | None = None


class ErrorResponse(_Model):
    """The body of every error (spec ``ErrorResponse``); ``status_code`` equals the HTTP status."""

    msg: str
    status_code: int


class OutputFile(_Model):
    """One output file of a run (extension ``GET /runs/{run_id}/outputs``)."""

    path: str
    size: int
    checksum: str | None = None
    url: str


class OutputListResponse(_Model):
    """Every output file of a run (extension ``GET /runs/{run_id}/outputs``)."""

    run_id: str
    files: list[OutputFile] = Field(default_factory=list)
    total_size: int = 0
    #: When the outputs are (or were) removed by the retention policy, ISO 8601 UTC.
    outputs_expire_at: str | None = None
    #: Whether they were; the listing is then empty and downloads answer 410.
    outputs_expired: bool = False
    #: The run's state when the listing was made (toolchest-wes; absent from other servers).
    state: StateField | None = None
    #: Whether the listing is final: ``False`` while the run is active, whose outputs are
    #: not collected yet (toolchest-wes; absent from other servers).
    complete: bool | None = None
