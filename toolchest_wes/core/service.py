"""RunService: the WES operations as domain logic, with no knowledge of HTTP or queues."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchest_wes import __version__
from toolchest_wes.core.caller import ANONYMOUS, Caller
from toolchest_wes.core.errors import (
    BadRequestError,
    ConflictError,
    GoneError,
    NotFoundError,
    RunNotFoundError,
)
from toolchest_wes.core.idempotency import DEFAULT_WINDOW_S, IdempotencyKeys
from toolchest_wes.core.limits import SubmitLimits
from toolchest_wes.core.params import REMOTE_SCHEMES, localise_params
from toolchest_wes.core.resources import ResourcePolicy
from toolchest_wes.core.retention import OutputsExpiry, describe_period, outputs_expiry
from toolchest_wes.core.run_files import RunFiles, StoredFile, StoredFolder, storage_wes_error
from toolchest_wes.core.status_waits import StatusWaits
from toolchest_wes.core.submission import (
    RunSubmission,
    check_input_types,
    check_workflow_url,
    resolve_engine,
    unique_attachments,
)
from toolchest_wes.core.tasks import (
    decode_offset_token,
    encode_offset_token,
    parse_tasks,
    read_tasks,
)
from toolchest_wes.core.tools import ToolResolver
from toolchest_wes.core.urls import UrlPolicy
from toolchest_wes.core.webhooks import Webhooks, check_webhook_tags
from toolchest_wes.core.workspace import (
    RunDir,
    Workspace,
)
from toolchest_wes.engines.base import InvalidEngineParameterError
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.models import RunRequest, ServiceInfo, State, WorkersInfo, parse_state_names
from toolchest_wes.runner.base import TaskRunner
from toolchest_wes.storage.base import StorageError
from toolchest_wes.store.base import (
    IdempotencyKeyReusedError,
    InvalidPageTokenError,
    RunPage,
    RunRecord,
    RunUpdate,
    StateStore,
    iso_now,
)

__all__ = ["Page", "RunService", "RunSubmission", "ServiceConfig"]

logger = logging.getLogger(__name__)

#: Run owners one process remembers; the oldest entry goes first when it is full.
_OWNER_CACHE_SIZE = 10_000


@dataclass
class ServiceConfig:
    """Service-wide choices that come from settings."""

    default_page_size: int = 50
    max_page_size: int = 1000
    auth_instructions_url: str = ""
    service_id: str = "org.toolchest.wes"
    #: Engine versions the executing workers report (distributed mode); ``None``: this
    #: process executes runs itself, so its own engines' versions are the truth.
    worker_engine_versions: Callable[[], dict[str, list[str]]] | None = None
    #: The workers and their heartbeats (distributed mode); ``None``: no separate workers.
    worker_status: Callable[[], WorkersInfo] | None = None
    #: How long a finished run's outputs are kept, in seconds; ``None``: forever.
    retention_s: float | None = None
    #: The hosts http(s) URLs of a submission may name.
    url_policy: UrlPolicy = field(default_factory=UrlPolicy)
    #: Per-user submit rate and unfinished-run cap (none by default).
    limits: SubmitLimits = field(default_factory=SubmitLimits)
    #: Extension fields of service-info, by name (what a run can reach, for one).
    extensions: dict[str, Any] = field(default_factory=dict)
    #: Turns a workflow_url that names a catalog or TRS tool into its files; ``None``: such
    #: URLs are not understood.
    tools: ToolResolver | None = None
    #: The operator's defaults and limits for each run's cores, memory and runtime.
    resources: ResourcePolicy = field(default_factory=ResourcePolicy)
    #: The server's webhooks; ``None``: it sends none, and refuses runs that ask for them.
    webhooks: Webhooks | None = None
    #: How long an ``Idempotency-Key`` stands for the run it made, in seconds.
    idempotency_window_s: float = DEFAULT_WINDOW_S
    #: How many status requests of this process may wait for a change at once (each holds
    #: a request thread); 0: none waits.
    status_waits: int = 8


@dataclass
class Page:
    """Items of one page plus the token of the next (``""`` at the end, as the spec says)."""

    items: list[dict[str, Any]]
    next_page_token: str


class RunService:
    """Validates, creates, lists, inspects and cancels runs."""

    def __init__(
        self,
        store: StateStore,
        runner: TaskRunner,
        registry: EngineRegistry,
        workspace: Workspace,
        config: ServiceConfig | None = None,
        files: RunFiles | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.registry = registry
        self.workspace = workspace
        self.config = config or ServiceConfig()
        #: Where run files are kept (``--storage``); ``None``: in ``workspace``, shared.
        self.files = files
        self._owners: dict[str, str] = {}
        self._owners_lock = threading.Lock()
        self._keys = IdempotencyKeys(
            store, workspace, self.config.idempotency_window_s, files=files
        )
        self._waits = StatusWaits(store, self.config.status_waits)

    # -- submit ---------------------------------------------------------------------------

    def submit(
        self, sub: RunSubmission, *, owner: str | None = None, caller: Caller = ANONYMOUS
    ) -> str:
        """Check a submission, stage its files, record it QUEUED and hand it to the runner.

        The run belongs to ``owner``, or else to ``caller`` (no one when authentication is off).
        With ``sub.idempotency_key``, a key the owner already used within the window returns
        that run's id and makes no second run; used for another request, it is a 422.

        Once the run is recorded the submission succeeds, whatever fails after: an error
        answer would tell the client that no run was made.
        """
        owner = owner if owner is not None else caller.user
        claim = self._keys.claim(sub)
        if claim is not None:
            # Before any limit: answering with an earlier run makes nothing new.
            earlier = self._keys.earlier_run(owner, claim)
            if earlier is not None:
                return earlier
        limits = self.config.limits
        limits.check_rate(owner)
        if self.config.tools is not None:
            # First: a named tool sets the workflow type and the attachments checked below.
            self.config.tools.apply(sub)
        engine, type_version = resolve_engine(self.registry, sub)
        sub.attachments = unique_attachments(sub.attachments)
        names = [a.name for a in sub.attachments]
        workflow_url = check_workflow_url(sub.workflow_url, names)
        if "://" in workflow_url:
            self.config.url_policy.check(workflow_url)
        self.config.url_policy.check_params(sub.workflow_params)
        check_webhook_tags(self.config.webhooks, sub.tags)
        staged_params = localise_params(sub.workflow_params, names)
        try:
            # Resources first: every engine shares their names, and the policy is the server's.
            _, engine_params = self.config.resources.resolve(sub.workflow_engine_parameters)
            params = engine.check_parameters(engine_params)
        except InvalidEngineParameterError as exc:
            raise BadRequestError(str(exc)) from exc
        request = RunRequest(
            workflow_params=sub.workflow_params,
            workflow_type=engine.workflow_type,
            workflow_type_version=type_version,
            tags=sub.tags,
            workflow_engine_parameters={
                k: str(v) for k, v in sub.workflow_engine_parameters.items() if v is not None
            },
            workflow_engine=engine.name,
            workflow_engine_version=sub.workflow_engine_version,
            workflow_url=workflow_url,
        )
        run_id = str(uuid.uuid4())
        # Checked before staging too, so that a user at the limit costs no copying.
        self._check_active(owner)
        run_dir = self.workspace.stage(run_id, sub.attachments, staged_params)
        record = RunRecord(
            run_id=run_id,
            state=State.QUEUED,
            request=request,
            created_at=time.time(),
            engine_args=params.args,
            system_logs=params.notes,
            owner=owner,
        )
        try:
            if engine.workflow_type == "CWL":
                # A wrong input is reported now, by name, rather than by the engine later.
                check_input_types(run_dir.attachments, workflow_url, staged_params)
            if self.files is not None:
                self._upload_inputs(run_id)
            # Under the user's lock, so that concurrent submissions (in any API process)
            # cannot all pass the check and overshoot the limit together.
            with limits.hold(owner):
                self._check_active(owner)
                if self.config.webhooks is not None:
                    self.config.webhooks.register(run_id, request.tags, owner)
                held = self.store.create_run(record, claim=claim)
        except BaseException as exc:
            # A StoreUnavailableError goes on to the server's one 503 handler. The store may
            # have applied the create all the same (Redis died before it answered): without
            # its files such a run can never execute, and ends SYSTEM_ERROR saying why when
            # the reconcile loop queues it; a retry with the same key gives it these files.
            self.workspace.remove(run_id)
            if self.files is not None:
                self._forget_uploads(run_id)
            if isinstance(exc, IdempotencyKeyReusedError) and claim is not None:
                raise self._keys.reused(claim, exc.run_id) from None
            raise
        if held != run_id:
            # Another submission with the same key was recorded first.
            if self._keys.join(held, run_id):
                self._queue(held)
            self._forget_hooks(run_id)
            return held
        if self.files is not None:
            # The files are in storage now; a worker fetches them.
            self.workspace.remove(run_id)
        logger.info("run accepted run_id=%s type=%s", run_id, request.workflow_type)
        self._queue(run_id)
        return run_id

    def _queue(self, run_id: str) -> None:
        try:
            self.runner.submit(run_id)
        except Exception:
            # The run is recorded QUEUED, and a run that never started is not failed for a
            # queue that did not answer: the reconcile loop sends a QUEUED run without a
            # message again (distributed mode), and a restarting server queues it again.
            logger.warning(
                "could not queue run_id=%s; it is sent again later", run_id, exc_info=True
            )

    def _forget_hooks(self, run_id: str) -> None:
        """Drop the webhooks registered for a run that was not created after all."""
        if self.config.webhooks is None:
            return
        try:
            self.config.webhooks.outbox.forget(run_id)
        except Exception:  # the hooks of a run that does not exist only cost a little space
            logger.warning("could not drop the hooks of run_id=%s", run_id, exc_info=True)

    def _upload_inputs(self, run_id: str) -> None:
        """Put the staged files in storage (the API's copy goes once the run is recorded)."""
        assert self.files is not None
        try:
            self.files.upload_inputs(run_id)
        except StorageError as exc:
            raise storage_wes_error(exc, "this run's files") from exc

    def _forget_uploads(self, run_id: str) -> None:
        """Remove what a refused submission uploaded (best effort: it is never read)."""
        assert self.files is not None
        try:
            self.files.remove(run_id)
        except StorageError as exc:
            logger.warning("could not remove the files of refused run_id=%s: %s", run_id, exc)

    def _check_active(self, owner: str | None) -> None:
        if self.config.limits.max_active_runs:
            active = self.store.count_active(owner)
            self.config.limits.check_active(owner, active)

    # -- read -----------------------------------------------------------------------------

    def get_run(self, run_id: str, *, caller: Caller = ANONYMOUS) -> RunRecord:
        """The run's record. Raises ``RunNotFoundError``."""
        self._check_owned(run_id, caller)
        record = self.store.get_run(run_id)
        if record is None:
            raise RunNotFoundError(run_id)
        return record

    def get_state(
        self,
        run_id: str,
        *,
        caller: Caller = ANONYMOUS,
        wait_s: float = 0.0,
        changed_from: State | None = None,
    ) -> State:
        """The run's state. Raises ``RunNotFoundError``.

        With ``wait_s``, the answer waits up to that long for the run to end, or to leave
        ``changed_from`` (``core.status_waits``).
        """
        self._check_owned(run_id, caller)
        state = self._waits.state(run_id, wait_s, changed_from)
        if state is None:
            raise RunNotFoundError(run_id)
        return state

    def release_waits(self) -> None:
        """Answer the status requests that wait, now and from now on (the server stops)."""
        self._waits.release()

    def list_runs(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        state: str | Sequence[str] | None = None,
        tag: str | None = None,
        caller: Caller = ANONYMOUS,
    ) -> RunPage:
        """A page of runs, newest first, optionally filtered by state and by ``key:value``.

        ``state`` names WES states (case-insensitive) and groups of ``models.STATE_GROUPS``,
        one per item or several comma-separated; a run in any of them is listed.

        Only the caller's own runs, unless the caller sees all (an admin, or no authentication).
        """
        size = self._page_size(page_size)
        names = [state] if isinstance(state, str) else list(state or [])
        try:
            state_filter = parse_state_names(names) or None
        except ValueError as err:
            raise BadRequestError(f"state: {err}") from None
        tag_filter: tuple[str, str] | None = None
        if tag:
            key, sep, value = tag.partition(":")
            if not sep or not key:
                raise BadRequestError(f"tag {tag!r} must be written key:value")
            tag_filter = (key, value)
        try:
            return self.store.list_runs(
                page_size=size,
                page_token=page_token or None,
                states=state_filter,
                tag=tag_filter,
                owner=None if caller.sees_all else caller.user,
            )
        except InvalidPageTokenError:
            raise BadRequestError(
                f"page_token {page_token!r} is not valid; use the next_page_token of the "
                "previous page"
            ) from None

    def _page_size(self, page_size: int | None) -> int:
        if page_size is None:
            return self.config.default_page_size
        if not 1 <= page_size < 2**63:
            raise BadRequestError(f"page_size must be a whole number from 1 up, not {page_size}")
        return min(page_size, self.config.max_page_size)

    def run_dir(self, run_id: str, *, caller: Caller = ANONYMOUS) -> RunDir:
        """The directory of an existing run. Raises ``RunNotFoundError``."""
        self.get_state(run_id, caller=caller)
        return self.workspace.run_dir(run_id)

    def list_tasks(
        self,
        run_id: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        caller: Caller = ANONYMOUS,
    ) -> Page:
        """A page of the run's tasks in start order."""
        size = self._page_size(page_size)
        start = decode_offset_token(page_token)
        tasks = self._tasks(run_id, caller)
        items = tasks[start : start + size]
        more = start + size < len(tasks)
        return Page(items, encode_offset_token(start + size) if more else "")

    def get_task(self, run_id: str, task_id: str, *, caller: Caller = ANONYMOUS) -> dict[str, Any]:
        """One task. Raises ``NotFoundError``."""
        for task in self._tasks(run_id, caller):
            if task["id"] == task_id:
                return task
        raise NotFoundError(f"run {run_id!r} has no task {task_id!r}")

    def _tasks(self, run_id: str, caller: Caller) -> list[dict[str, Any]]:
        run_dir = self.run_dir(run_id, caller=caller)
        if self.files is None:
            return read_tasks(run_dir.task_index)
        rel = run_dir.task_index.relative_to(run_dir.root).as_posix()
        with self._storage("the run's tasks"):
            return parse_tasks(self.files.read_text(run_id, rel))

    def log_file(
        self, run_id: str, stream: str, *, caller: Caller = ANONYMOUS
    ) -> Path | StoredFile:
        """The engine's ``stdout`` or ``stderr`` of an existing run (which may not exist yet)."""
        run_dir = self.run_dir(run_id, caller=caller)
        path = run_dir.stdout if stream == "stdout" else run_dir.stderr
        if self.files is None:
            return path
        return StoredFile(f"{run_id}/{path.name}", path.name, log=True)

    def task_log(
        self, run_id: str, task_id: str, stream: str, *, caller: Caller = ANONYMOUS
    ) -> Path | StoredFile:
        """The stdout or stderr file of one task (which may not exist yet while the run goes
        on). Raises ``NotFoundError``, also for a finished run's task without that log."""
        task = self.get_task(run_id, task_id, caller=caller)
        path = self.workspace.run_dir(run_id).task_log(task["id"], stream)
        target: Path | StoredFile = path
        if self.files is not None:
            rel = path.relative_to(self.workspace.run_dir(run_id).root).as_posix()
            target = StoredFile(f"{run_id}/{rel}", stream, log=True)
            with self._storage("the task's log"):
                if self.files.look_log(target.key) is not None:
                    return target
        elif path.is_file():
            return path
        # A task is listed as soon as it starts, before its log's first part reaches the
        # storage: until the run ends its log is empty, as the run's own logs are.
        if not self.get_run(run_id, caller=caller).state.is_terminal:
            return target
        raise NotFoundError(f"task {task_id!r} of run {run_id!r} has no {stream}")

    def output_path(
        self, run_id: str, rel: str, *, caller: Caller = ANONYMOUS
    ) -> Path | StoredFile | StoredFolder:
        """An output file or folder of the run. Raises ``NotFoundError``, ``GoneError``."""
        self.check_outputs_kept(self.get_run(run_id, caller=caller))
        if self.files is not None:
            with self._storage("the run's outputs"):
                return self.files.output(run_id, rel)
        return self.workspace.run_dir(run_id).output_file(rel)

    @contextmanager
    def _storage(self, what: str) -> Iterator[None]:
        """Turn a storage failure into the WES error that says so (503 or 507)."""
        try:
            yield
        except StorageError as exc:
            raise storage_wes_error(exc, what) from exc

    def outputs_expiry(self, record: RunRecord) -> OutputsExpiry:
        """When the run's outputs expire under the retention period, and whether they have."""
        return outputs_expiry(record, self.config.retention_s, time.time())

    def check_outputs_kept(self, record: RunRecord) -> None:
        """Raise ``GoneError`` if the run's outputs were removed after the retention period."""
        expiry = self.outputs_expiry(record)
        if expiry.expired:
            period = describe_period(self.config.retention_s)
            raise GoneError(
                f"the outputs of run {record.run_id} were removed after the retention period "
                f"({period} after the run ended) on {expiry.expire_at}; the run record and its "
                "logs are kept"
            )

    # -- cancel ---------------------------------------------------------------------------

    def cancel(self, run_id: str, *, caller: Caller = ANONYMOUS) -> State:
        """Ask the run to stop; returns the state after the request.

        Idempotent: cancelling a cancelled or finished run changes nothing. A QUEUED run is
        cancelled on the spot and never starts.
        """
        self._check_owned(run_id, caller)
        for _ in range(10):
            state = self.get_state(run_id)
            if state.is_terminal or state is State.CANCELING:
                return state
            if state is State.QUEUED:
                target = State.CANCELED
                update = RunUpdate(
                    end_time=iso_now(), append_system_logs=["cancelled before it started"]
                )
            else:
                target, update = State.CANCELING, None
            if self.store.transition(
                run_id, target, allowed_from=frozenset({state}), update=update
            ):
                logger.info("cancel requested run_id=%s was=%s now=%s", run_id, state, target)
                if target is State.CANCELED:
                    # Only a queued run needs the runner: a started one watches its state
                    # and stops itself on CANCELING.
                    self.runner.cancel(run_id)
                return target
        # Ten lost races in a row means the run keeps changing; report where it is now.
        return self.get_state(run_id)

    # -- delete ---------------------------------------------------------------------------

    def delete(self, run_id: str, *, caller: Caller = ANONYMOUS) -> None:
        """Remove a finished run: its whole directory, then its record.

        The one entry point for deleting a run, so a check of who may delete belongs here.
        The store deletes the record only if the run is still terminal, which it is for good
        once it got there. A file that cannot be removed is logged, not reported: the run is
        gone for the user either way.

        Raises:
            RunNotFoundError: No such run.
            ConflictError: The run is still active; cancel it first.
        """
        record = self.get_run(run_id, caller=caller)
        self._check_deletable(record.run_id, record.state)
        errors: list[str] = []
        if self.files is not None:
            # First, so that a storage that is down leaves the run for a retry, not its files
            # without a record.
            with self._storage("deleting the run's files"):
                errors += self.files.remove(run_id)
        errors += self.workspace.remove_run_dir(run_id)
        if errors:
            logger.warning("could not remove every file of run_id=%s errors=%s", run_id, errors[:5])
        found = self.store.delete_run(run_id)
        if found is None:
            raise RunNotFoundError(run_id)
        self._check_deletable(run_id, found)
        logger.info("run deleted run_id=%s state=%s", run_id, found)

    @staticmethod
    def _check_deletable(run_id: str, state: State) -> None:
        if not state.is_terminal:
            raise ConflictError(
                f"run {run_id} is {state}; cancel it first (POST /runs/{run_id}/cancel)"
            )

    # -- service-info ---------------------------------------------------------------------

    def service_info(self) -> ServiceInfo:
        """What this server runs, and how many runs are in each state."""
        counts = self.store.count_by_state()
        engines = self.registry.engines
        return ServiceInfo(
            id=self.config.service_id,
            name="toolchest-wes",
            type={"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
            description="GA4GH Workflow Execution Service running "
            + "; ".join(
                f"{t} with {', '.join(self.registry.engine_names(t))}"
                for t in self.registry.supported()
            ),
            organization={
                "name": "toolchest-wes",
                "url": "https://pypi.org/project/toolchest-wes/",
            },
            version=__version__,
            workflow_type_versions={
                e.workflow_type: {"workflow_type_version": list(e.type_versions)} for e in engines
            },
            supported_wes_versions=["1.0.0", "1.1.0"],
            # Inputs are attachments or URLs the engine fetches; no server path is accepted.
            supported_filesystem_protocols=list(REMOTE_SCHEMES),
            workflow_engine_versions=self._engine_versions(),
            default_workflow_engine_parameters=[
                *self.config.resources.default_parameters(),
                *(p for e in engines for p in e.default_parameters()),
            ],
            system_state_counts={s.value: counts.get(s, 0) for s in State},
            auth_instructions_url=self.config.auth_instructions_url,
            tags={},
            workers=self._workers(),
            **{
                "toolchest_wes_run_parameters": self.config.resources.describe(),
                "toolchest_wes_engines": self._engines(),
                **self.config.extensions,
            },
        )

    def _workers(self) -> WorkersInfo | None:
        if self.config.worker_status is None:
            return None
        try:
            return self.config.worker_status()
        except Exception:  # informative, like the engine versions: never fail service-info
            logger.warning("could not read the workers' heartbeats", exc_info=True)
            return None

    def _engines(self) -> dict[str, dict[str, Any]]:
        """Each engine's workflow types and versions, and the parameters every run gets."""
        result: dict[str, dict[str, Any]] = {}
        for engine in self.registry.engines:
            entry = result.setdefault(engine.name, {"workflow_types": {}, "default_parameters": []})
            entry["workflow_types"][engine.workflow_type] = list(engine.type_versions)
            defaults = [p.model_dump() for p in engine.default_parameters()]
            entry["default_parameters"].extend(
                p for p in defaults if p not in entry["default_parameters"]
            )
        for name, types in self._default_engines().items():
            result[name]["default_for"] = types
        return result

    def _default_engines(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for workflow_type in self.registry.supported():
            engine = self.registry.for_type(workflow_type)
            if engine is not None:
                result.setdefault(engine.name, []).append(workflow_type)
        return result

    def _engine_versions(self) -> dict[str, dict[str, list[str]]]:
        local = {e.name: [e.version()] for e in self.registry.engines}
        reported: dict[str, list[str]] = {}
        if self.config.worker_engine_versions is not None:
            try:
                reported = self.config.worker_engine_versions()
            except Exception:  # the versions are informative; never fail service-info on them
                logger.warning("could not read the workers' engine versions", exc_info=True)
        # Before any worker has reported, fall back to the versions installed here.
        versions = {name: reported.get(name) or found for name, found in local.items()}
        return {name: {"workflow_engine_version": found} for name, found in versions.items()}

    # -- ownership ------------------------------------------------------------------------

    def _check_owned(self, run_id: str, caller: Caller) -> None:
        """Raise ``RunNotFoundError`` unless ``caller`` may see run ``run_id``.

        The one gate of every per-run operation. Someone else's run answers exactly like a
        missing one, so run ids of other users cannot be probed. A caller who sees all
        passes without a store call; the operation itself then finds out whether the run
        exists.
        """
        if caller.sees_all:
            return
        if self._owner_of(run_id) != caller.user:
            raise RunNotFoundError(run_id)

    def _owner_of(self, run_id: str) -> str | None:
        # A run's owner never changes, so the answer is cached for the life of the process;
        # status polls then cost no more with authentication than without. Only found runs
        # are cached: a missing id may be created later (never, with uuid4, but cheap).
        owner = self._owners.get(run_id)
        if owner is None:
            owner = self.store.get_owner(run_id)
            if owner is not None:
                with self._owners_lock:
                    if len(self._owners) >= _OWNER_CACHE_SIZE:
                        self._owners.pop(next(iter(self._owners)))
                    self._owners[run_id] = owner
        return owner
