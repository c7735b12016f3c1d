"""``WesClient`` and ``Run``: the blocking client and its run handle.

The operations themselves (retries, paging, waiting, downloads, following logs) are the
generators in ``_core``; this module only drives them with blocking calls. ``_async`` is its
``asyncio`` twin, method for method (``tests/client/test_faces.py`` holds them to it).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import httpx

from toolchest_wes.client._core import (
    Core,
    LogFollower,
    Pager,
    RunListing,
    Stream,
    Submission,
    WaitPolicy,
    stream_url,
)
from toolchest_wes.client._handle import RunHandle, on_interrupt
from toolchest_wes.client._http import Fetch, Op, RetryPolicy, Sleep
from toolchest_wes.client._listing import StateSelector, ended
from toolchest_wes.client._submit import encode_fields, prepare_submission
from toolchest_wes.client.exceptions import WesApiError
from toolchest_wes.client.journal import Journal
from toolchest_wes.client.tables import Outputs
from toolchest_wes.client.tools import Tools
from toolchest_wes.models import (
    OutputListResponse,
    RunLog,
    RunStatus,
    ServiceInfo,
    State,
    TaskLog,
)

__all__ = ["Run", "WesClient"]

T = TypeVar("T")


class WesClient:
    """A client for any GA4GH WES 1.0 or 1.1 server.

    Methods named after the spec's operationIds (``list_runs``, ``run_workflow``,
    ``get_run_log``, ``get_run_status``, ``cancel_run``, ``list_tasks``, ``get_task``,
    ``get_service_info``) do one operation each; ``submit``, ``run``, ``get_run`` and ``runs``
    are the conveniences on top. GETs and cancels are retried on connection errors and on
    429/502/503/504 (honouring ``Retry-After``); a submit is retried only in a way that can
    never create a second run. A 429 with ``Retry-After`` is waited out as the server asks,
    for up to ``rate_limit_wait`` seconds.

    Args:
        url: The server, such as ``http://127.0.0.1:8080`` (``/ga4gh/wes/v1`` is added when
            missing). Defaults to ``TOOLCHEST_WES_URL``, then the config file, then
            ``http://127.0.0.1:8080``.
        token: A bearer token. Defaults to ``TOOLCHEST_WES_TOKEN``, then the config file.
        timeout: Seconds to wait for the server on each request.
        retries: How many times a request is sent again after a retryable failure.
        retry_backoff: The first pause before a retry, in seconds; it doubles each time.
        rate_limit_wait: Seconds a request may spend in all waiting out 429 answers as their
            ``Retry-After`` asks, on top of ``retries`` (a submit is then safe to send again:
            the server stored nothing). ``None``: 600.
        http: An ``httpx.Client`` to send with (tests, proxies, custom TLS); the caller
            closes it.
        journal: Where submissions are recorded; ``False`` records nothing.

    Example:
        >>> with WesClient("http://127.0.0.1:8080") as wes:
        ...     run = wes.submit("examples/hello/hello.cwl", "examples/hello/hello.json")
        ...     run.wait().state
        <State.COMPLETE: 'COMPLETE'>
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        retry_backoff: float = 0.5,
        rate_limit_wait: float | None = None,
        http: httpx.Client | None = None,
        journal: Journal | bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._core = Core.configured(
            url,
            token,
            RetryPolicy(retries, retry_backoff, rate_limit_wait=rate_limit_wait),
            headers,
        )
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout, follow_redirects=True)
        self.journal = Journal.choose(journal)

    @property
    def url(self) -> str:
        """The API root, ``…/ga4gh/wes/v1``."""
        return self._core.base

    @property
    def tools(self) -> Tools:
        """The server's catalog of named tools (toolchest-wes, or any server with TRS at
        ``/ga4gh/trs/v2``): ``wes.tools.wc(inputs="data/", output_path="out/")``."""
        return Tools(self)

    def close(self) -> None:
        """Close the connection pool (not an ``http=`` client given by the caller)."""
        if self._own_http:
            self.http.close()

    def __enter__(self) -> WesClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WesClient({self.url!r})"

    def _drive(self, op: Op[T]) -> T:
        """Run an operation with blocking I/O."""
        try:
            effect = next(op)
            while True:
                if isinstance(effect, Sleep):
                    time.sleep(effect.seconds)
                    effect = op.send(None)
                    continue
                outcome: httpx.Response | httpx.RequestError
                try:
                    if isinstance(effect, Fetch):
                        outcome = self._fetch(effect)
                    else:
                        outcome = self.http.send(effect.request)
                except httpx.RequestError as error:
                    outcome = error
                effect = op.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _fetch(self, effect: Fetch) -> httpx.Response:
        response = self.http.send(effect.request, stream=True)
        try:
            if effect.sink.start(response):
                for chunk in response.iter_bytes():
                    effect.sink.write(chunk)
            else:
                response.read()
        finally:
            response.close()
            effect.sink.close()
        return response

    # -- WES operations -------------------------------------------------------------------

    def get_service_info(self) -> ServiceInfo:
        """What the server runs. Implements GET /service-info.

        Raises:
            TransportError: The server could not be reached.
            WesApiError: The server answered with an error.
        """
        return self._drive(self._core.get_service_info())

    def list_runs(
        self,
        *,
        state: StateSelector = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[Run]:
        """Every run, newest first, as handles, fetching pages as the iteration goes.
        Implements GET /runs.

        Each ``Run`` keeps its listing item in ``run.summary``; ``run.log()`` reads the
        RunLog when asked (once, for a finished run). Filters go to the server when it
        supports them and are applied here as well, so they work with any server.

        Args:
            state: Only runs in these states: a WES state, a group (``active``,
                ``finished``, ``failed`` = EXECUTOR_ERROR, SYSTEM_ERROR or PREEMPTED,
                ``canceled``), or several of them (a list, or comma-separated);
                case-insensitive.
            tags: Only runs carrying all these tags.
            limit: Stop after this many runs.
            page_size: Runs per request (the server's default if not given).

        Example:
            >>> failed = list(wes.list_runs(state="failed", limit=10))
        """
        listing = RunListing(state, tags, limit, page_size)
        while not listing.done:
            for summary in self._drive(self._core.runs_page(listing)):
                yield Run(self, summary.run_id, summary=summary)

    def run_workflow(
        self,
        workflow_url: str,
        workflow_params: Mapping[str, Any] | None = None,
        *,
        workflow_type: str = "CWL",
        workflow_type_version: str = "v1.2",
        tags: Mapping[str, str] | None = None,
        workflow_engine_parameters: Mapping[str, Any] | None = None,
        workflow_engine: str | None = None,
        workflow_engine_version: str | None = None,
        workflow_attachment: Sequence[tuple[str, str | Path]] = (),
    ) -> str:
        """Send one POST /runs exactly as given, without retries. Implements POST /runs.

        ``submit`` is the easier way: it finds the files to attach and retries safely.

        Args:
            workflow_url: The workflow, relative to the attachments or a URL.
            workflow_params: The inputs.
            workflow_type: ``CWL``.
            workflow_type_version: Such as ``v1.2``.
            tags: Tags to keep with the run.
            workflow_engine_parameters: Engine options.
            workflow_engine: Engine name, if the server offers several.
            workflow_engine_version: Engine version.
            workflow_attachment: ``(name, local path)`` pairs.

        Returns:
            The run id.
        """
        fields = encode_fields(
            workflow_url,
            workflow_params or {},
            workflow_type=workflow_type,
            workflow_type_version=workflow_type_version,
            tags=tags or {},
            engine_params=workflow_engine_parameters,
            engine=workflow_engine,
            engine_version=workflow_engine_version,
        )
        files = [(name, Path(path)) for name, path in workflow_attachment]
        return self._drive(self._core.run_workflow(Submission(fields, files)))

    def get_run_log(self, run_id: str) -> RunLog:
        """Everything about a run. Implements GET /runs/{run_id}.

        Raises:
            RunNotFoundError: The server has no such run.
        """
        return self._drive(self._core.get_run_log(run_id))

    def get_run_status(self, run_id: str) -> RunStatus:
        """A run's state. Implements GET /runs/{run_id}/status.

        Raises:
            RunNotFoundError: The server has no such run.
        """
        return self._drive(self._core.get_run_status(run_id))

    def cancel_run(self, run_id: str) -> str:
        """Ask the server to stop a run. Implements POST /runs/{run_id}/cancel.

        Returns:
            The run id.
        """
        return self._drive(self._core.cancel_run(run_id))

    def list_tasks(self, run_id: str, *, page_size: int | None = None) -> Iterator[TaskLog]:
        """Every task of a run, fetching pages as needed. Implements GET /runs/{run_id}/tasks.

        On a WES 1.0 server, which has no task endpoint, the RunLog's ``task_logs``.
        """
        pager = Pager()
        while not pager.done:
            page = self._drive(self._core.list_tasks_page(run_id, page_size, pager.token))
            pager.advance(page.next_page_token)
            yield from page.task_logs

    def get_task(self, run_id: str, task_id: str) -> TaskLog:
        """One task of a run. Implements GET /runs/{run_id}/tasks/{task_id}."""
        return self._drive(self._core.get_task(run_id, task_id))

    def list_run_outputs(self, run_id: str) -> OutputListResponse:
        """A run's output files with sizes and checksums.

        Uses this server's ``GET /runs/{run_id}/outputs``; on other servers, the File
        entries of the RunLog's ``outputs``.
        """
        return self._drive(self._core.list_run_outputs(run_id))

    def delete_run(self, run_id: str) -> str:
        """Remove a finished run's record and files (toolchest-wes ``DELETE /runs/{run_id}``).

        Raises:
            ConflictError: The run is still active; cancel it first.
        """
        return self._drive(self._core.delete_run(run_id))

    # -- conveniences ---------------------------------------------------------------------

    def submit(
        self,
        workflow: str | Path,
        inputs: Mapping[str, Any] | str | Path | None = None,
        *,
        attachments: Sequence[str | Path] = (),
        tags: Mapping[str, str] | None = None,
        engine_params: Mapping[str, Any] | None = None,
        workflow_type: str = "CWL",
        workflow_type_version: str | None = None,
        engine: str | None = None,
        engine_version: str | None = None,
    ) -> Run:
        """Submit a run and return at once, without waiting for it.

        The local files the workflow and its inputs reference (``run:`` steps, ``$import``,
        ``$include``, File and Directory inputs, ``secondaryFiles``) are attached with paths
        relative to their common folder. The submission is written to the journal before it
        is sent, and a retry after a lost answer never creates a second run.

        Args:
            workflow: A local CWL file or an http(s) URL; with another ``workflow_type``
                (``SMK``), a local file attached as it is, with ``attachments`` beside it.
            inputs: The inputs as a mapping, or a YAML/JSON job file.
            attachments: More files or folders to attach.
            tags: Tags to keep with the run.
            engine_params: ``workflow_engine_parameters``, such as ``{"--parallel": "true"}``.
            workflow_type: ``CWL``, or ``SMK`` for a Snakefile.
            workflow_type_version: Read from the workflow's ``cwlVersion`` when not given
                (``1.0`` for other types).
            engine: ``workflow_engine``.
            engine_version: ``workflow_engine_version``.

        Returns:
            A handle on the new run.

        Raises:
            InputFileError: A referenced local file does not exist.
            InputTypeError: An input does not fit the type the workflow declares.
            BadRequestError: The server refused the request; ``msg`` says why.

        Example:
            >>> run = wes.submit("hello.cwl", {"name": "world"}, tags={"project": "demo"})
            >>> run.run_id
            '3f0c…'
        """
        submission = prepare_submission(
            workflow,
            inputs,
            attachments=attachments,
            tags=tags,
            engine_params=engine_params,
            workflow_type=workflow_type,
            workflow_type_version=workflow_type_version,
            engine=engine,
            engine_version=engine_version,
        )
        if self.journal:
            self.journal.record_submit(
                submission.request_id, self.url, str(workflow), dict(tags or {})
            )
        run_id = self._drive(self._core.submit(submission))
        if self.journal:
            self.journal.record_run(submission.request_id, self.url, run_id)
        return Run(self, run_id)

    def run(
        self,
        workflow: str | Path,
        inputs: Mapping[str, Any] | str | Path | None = None,
        *,
        timeout: float | None = None,
        download: str | Path | None = None,
        **submit_options: Any,
    ) -> Run:
        """Submit, wait for the run to finish and, with ``download``, fetch its outputs.

        Args:
            workflow: As in ``submit``.
            inputs: As in ``submit``.
            timeout: Seconds to wait at most.
            download: A folder to download the outputs into.
            submit_options: More ``submit`` arguments (``tags=``, ``attachments=``, …).

        Returns:
            The finished run.

        Raises:
            RunFailed: The run ended in a state other than COMPLETE.
            WaitTimeout: ``timeout`` seconds passed first (the run goes on).
        """
        run = self.submit(workflow, inputs, **submit_options)
        run.wait(timeout=timeout)
        if download is not None:
            run.download(download)
        return run

    def get_run(self, run_id: str) -> Run:
        """A handle on an existing run, after checking that the server has it.

        Raises:
            RunNotFoundError: The server has no such run.
        """
        self.get_run_status(run_id)
        return Run(self, run_id)

    def wait_for_run(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        initial_interval: float = 1.0,
        raise_on_failure: bool = True,
    ) -> RunLog:
        """Poll until the run ends; see ``Run.wait``."""
        return self._drive(
            self._core.wait(run_id, timeout, WaitPolicy(initial=initial_interval), raise_on_failure)
        )

    def runs(
        self,
        last_n: int = 10,
        *,
        state: StateSelector = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[Run]:
        """The newest ``last_n`` runs (in ``state``, with ``tags``) as handles.

        ``state`` is as in ``list_runs``. ``print_runs`` reads each RunLog when it prints
        (once for a finished run); ``RunGroup(wes.runs(10, state="active"))`` waits for them.

        Example:
            >>> print_runs(wes.runs(10, state="failed"))
        """
        return list(self.list_runs(state=state, tags=tags, limit=last_n))

    def recover(self) -> list[Run]:
        """Find the runs of journal entries whose answer never arrived, and record them."""
        found: list[Run] = []
        if not self.journal:
            return found
        for entry in self.journal.pending(self.url):
            run_id = self._drive(self._core.find_request(entry.request_id))
            if run_id:
                self.journal.record_run(entry.request_id, self.url, run_id)
                found.append(Run(self, run_id))
        return found


class Run(RunHandle[WesClient]):
    """One run on a WES server: its id plus the client that reaches it.

    Get one from ``WesClient.submit``, ``WesClient.get_run``, ``WesClient.runs`` or
    :meth:`from_id`.

    Example:
        >>> run = wes.submit("hello.cwl", {"name": "world"})
        >>> with run.cancel_on_interrupt():
        ...     run.wait(timeout=600)
        >>> print(run.outputs())
        >>> run.download("results/")
    """

    @classmethod
    def from_id(
        cls,
        run_id: str,
        client: WesClient | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> Run:
        """A handle on a run submitted earlier, without contacting the server.

        Without ``client``, the handle makes its own client and owns it: ``close()`` or a
        ``with`` block closes it, as does the handle being garbage-collected.

        Args:
            run_id: The run's id.
            client: The client to use (it stays the caller's to close).
            url: The server, when no client is given; defaults as for ``WesClient``.
            token: Its token, when no client is given; defaults as for ``WesClient``.

        Example:
            >>> with Run.from_id("3f0c…", url="http://127.0.0.1:8080") as run:
            ...     run.download("results/", wait=True)
        """
        if client is not None:
            return cls(client, run_id)
        run = cls(WesClient(url, token), run_id)
        run._owns_client = True
        # Closed with the handle at the latest; the client holds no reference back to it.
        weakref.finalize(run, run.client.close)
        return run

    def close(self) -> None:
        """Close the client this handle made (``from_id`` without ``client=``); else nothing."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _drive(self, op: Op[T]) -> T:
        return self.client._drive(op)

    def status(self) -> State:
        """The run's current state (GET /runs/{run_id}/status)."""
        return self.client.get_run_status(self.run_id).state

    def wait(
        self,
        timeout: float | None = None,
        initial_interval: float = 1.0,
        *,
        max_interval: float = 30.0,
        raise_on_failure: bool = True,
    ) -> RunLog:
        """Wait until the run ends, polling with backoff.

        The poll interval starts at ``initial_interval``, grows by half each poll up to
        ``max_interval``, and starts over whenever the state changes. PREEMPTED also ends the
        wait.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.
            initial_interval: The first poll interval, in seconds.
            max_interval: The longest poll interval, in seconds.
            raise_on_failure: Raise ``RunFailed`` unless the run ends COMPLETE.

        Returns:
            The finished run's RunLog.

        Raises:
            WaitTimeout: ``timeout`` passed first; the run goes on.
            RunFailed: The run ended EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED or PREEMPTED;
                it names the failed task with its own exit code and stderr tail, and carries
                the state, the engine's exit code, system logs and the tail of its stderr.
        """
        policy = WaitPolicy(initial=initial_interval, maximum=max_interval)
        core = self.client._core
        return self._keep(self._drive(core.wait(self.run_id, timeout, policy, raise_on_failure)))

    def cancel(self) -> bool:
        """Ask the server to stop the run (POST /runs/{run_id}/cancel), unless it has ended.

        Returns:
            ``True`` when the cancel was sent; ``False`` when the run had already finished
            (``status()`` says in which state), which leaves it as it was.
        """
        if ended(self.status()):
            return False
        self.client.cancel_run(self.run_id)
        return True

    def delete(self) -> None:
        """Remove the finished run's record and files (toolchest-wes extension).

        Raises:
            ConflictError: The run is still active; cancel it first.
        """
        self.client.delete_run(self.run_id)

    def log(self) -> RunLog:
        """Everything the server says about the run (GET /runs/{run_id}).

        Read once the run has ended: a finished run's RunLog is kept and returned again.
        """
        if self._log is not None:
            return self._log
        return self._keep(self.client.get_run_log(self.run_id))

    def known_log(self) -> RunLog:
        """The RunLog (read from the server, or cached once the run has ended); one built from
        the listing item when the server cannot give it."""
        try:
            return self.log()
        except WesApiError:
            return super().known_log()

    def tasks(self) -> list[TaskLog]:
        """Every task of the run, in the server's order."""
        return list(self.client.list_tasks(self.run_id))

    @overload
    def logs(
        self, stream: Stream = ..., follow: Literal[False] = ..., *, task: str | None = ...
    ) -> str: ...

    @overload
    def logs(
        self, stream: Stream = ..., follow: Literal[True] = ..., *, task: str | None = ...
    ) -> Iterator[str]: ...

    def logs(
        self, stream: Stream = "stderr", follow: bool = False, *, task: str | None = None
    ) -> str | Iterator[str]:
        """The run's (or one task's) stdout or stderr as it is now.

        Args:
            stream: ``"stderr"`` (cwltool's log) or ``"stdout"``.
            follow: The same as :meth:`follow_logs` (kept for existing callers).
            task: A task id (or name): that task's stream instead of the run's.
        """
        if follow:
            return self.follow_logs(stream, task=task)
        return self._drive(self.client._core.read_log(self._log_url(stream, task)))

    def follow_logs(self, stream: Stream = "stderr", *, task: str | None = None) -> Iterator[str]:
        """New log text as it is written, until the run ends.

        Each read asks only for the bytes not read yet (HTTP Range).

        Args:
            stream: ``"stderr"`` (cwltool's log) or ``"stdout"``.
            task: A task id (or name): that task's stream instead of the run's.

        Example:
            >>> for text in run.follow_logs():
            ...     print(text, end="")
        """
        follower = LogFollower(self._log_url(stream, task))
        while not follower.done:
            text = self._drive(self.client._core.follow_log(self.run_id, follower))
            if text:
                yield text

    def _log_url(self, stream: Stream, task: str | None) -> str:
        if task is None:
            return stream_url(self.log().run_log, stream)
        return self._drive(self.client._core.task_log_url(self.run_id, task, stream))

    def outputs(
        self,
        include: Sequence[str] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Outputs:
        """The run's output files with path, size and checksum; ``print()`` shows a table.

        Args:
            include: Globs on the path or file name; all files without any.
            wait: Wait for an unfinished run to end first (raising ``RunFailed`` if it fails).
            timeout: With ``wait``, seconds to wait at most.

        Raises:
            RunNotFinished: The run has not ended (and ``wait`` is false).
            NoMatchingOutputs: ``include`` matches none of the files.
        """
        core = self.client._core
        return self._drive(core.outputs(self.run_id, include, wait=wait, timeout=timeout))

    def download(
        self,
        dest: str | Path = ".",
        include: Sequence[str] | None = None,
        *,
        archive: bool = False,
        progress: bool | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> list[Path]:
        """Download output files into ``dest``, keeping their relative paths.

        Files already there with the right size and checksum are skipped; a ``.part`` file
        left by an interrupted download is resumed with an HTTP Range request. Every file is
        checked against the listed size and checksum.

        Args:
            dest: The folder to write into (made if missing).
            include: Globs on the path or file name; all files without any.
            archive: Fetch one zip of the (selected) outputs instead (this server only).
            progress: Show a progress bar; by default only when stderr is a terminal.
            wait: Wait for an unfinished run to end first.
            timeout: With ``wait``, seconds to wait at most.

        Returns:
            The files written (or found complete).

        Raises:
            RunNotFinished: The run has not ended (and ``wait`` is false).
            NoMatchingOutputs: ``include`` matches none of the files.
            DownloadError: A file's size or checksum does not match.
            GoneError: The server removed the outputs after its retention period.
        """
        op = self.client._core.download(
            self.run_id,
            dest,
            include,
            archive=archive,
            progress=progress,
            wait=wait,
            timeout=timeout,
        )
        return self._drive(op)

    @contextlib.contextmanager
    def cancel_on_interrupt(self) -> Iterator[Run]:
        """Cancel the run if the block is left by Ctrl-C (KeyboardInterrupt) or SIGTERM.

        Any other exception, ``WaitTimeout`` included, leaves the run going. SIGTERM is caught
        only in the main thread (where Python delivers signals); it then ends the program
        with exit code 143 once the cancel is sent.

        Example:
            >>> with run.cancel_on_interrupt():
            ...     run.wait()
        """
        with on_interrupt(self.cancel):
            yield self
