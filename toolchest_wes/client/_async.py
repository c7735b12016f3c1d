"""``AsyncWesClient`` and ``AsyncRun``: the ``asyncio`` twins of ``WesClient`` and ``Run``.

The operations themselves (retries, paging, waiting, downloads, following logs) are the
generators in ``_core``; this module only drives them with ``await``. The public methods and
their parameters are those of ``_sync``, which ``tests/client/test_faces.py`` checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

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
from toolchest_wes.client._handle import RunHandle, async_on_interrupt
from toolchest_wes.client._http import Fetch, Op, RetryPolicy, Sleep
from toolchest_wes.client._listing import StateSelector, ended
from toolchest_wes.client._submit import encode_fields, prepare_submission
from toolchest_wes.client.exceptions import WesApiError
from toolchest_wes.client.journal import Journal
from toolchest_wes.client.tables import Outputs
from toolchest_wes.client.tools import AsyncTools
from toolchest_wes.models import (
    OutputListResponse,
    RunLog,
    RunStatus,
    ServiceInfo,
    State,
    TaskLog,
)

__all__ = ["AsyncRun", "AsyncWesClient"]

T = TypeVar("T")


class AsyncWesClient:
    """``WesClient`` for ``asyncio``: the same arguments and method names, awaitable.

    Example:
        >>> async with AsyncWesClient("http://127.0.0.1:8080") as wes:
        ...     run = await wes.submit("hello.cwl", {"name": "world"})
        ...     log = await run.wait()
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
        http: httpx.AsyncClient | None = None,
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
        self.http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=True)
        self.journal = Journal.choose(journal)

    @property
    def url(self) -> str:
        """The API root, ``…/ga4gh/wes/v1``."""
        return self._core.base

    @property
    def tools(self) -> AsyncTools:
        """The server's catalog of named tools: ``await wes.tools.wc(inputs="data/")``."""
        return AsyncTools(self)

    async def aclose(self) -> None:
        """Close the connection pool (not an ``http=`` client given by the caller)."""
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncWesClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncWesClient({self.url!r})"

    async def _drive(self, op: Op[T]) -> T:
        """Run an operation with ``await``ed I/O."""
        try:
            effect = next(op)
            while True:
                if isinstance(effect, Sleep):
                    await asyncio.sleep(effect.seconds)
                    effect = op.send(None)
                    continue
                outcome: httpx.Response | httpx.RequestError
                try:
                    if isinstance(effect, Fetch):
                        outcome = await self._fetch(effect)
                    else:
                        outcome = await self.http.send(effect.request)
                except httpx.RequestError as error:
                    outcome = error
                effect = op.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _fetch(self, effect: Fetch) -> httpx.Response:
        response = await self.http.send(effect.request, stream=True)
        try:
            if effect.sink.start(response):
                async for chunk in response.aiter_bytes():
                    effect.sink.write(chunk)
            else:
                await response.aread()
        finally:
            await response.aclose()
            effect.sink.close()
        return response

    # -- WES operations (see WesClient for the documentation) -----------------------------

    async def get_service_info(self) -> ServiceInfo:
        """What the server runs. Implements GET /service-info."""
        return await self._drive(self._core.get_service_info())

    async def list_runs(
        self,
        *,
        state: StateSelector = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[AsyncRun]:
        """Every run, newest first, as handles, paging as the iteration goes. Implements GET /runs.

        See ``WesClient.list_runs``.
        """
        listing = RunListing(state, tags, limit, page_size)
        while not listing.done:
            for summary in await self._drive(self._core.runs_page(listing)):
                yield AsyncRun(self, summary.run_id, summary=summary)

    async def run_workflow(
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
        """Send one POST /runs exactly as given, without retries. Implements POST /runs."""
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
        return await self._drive(self._core.run_workflow(Submission(fields, files)))

    async def get_run_log(self, run_id: str) -> RunLog:
        """Everything about a run. Implements GET /runs/{run_id}."""
        return await self._drive(self._core.get_run_log(run_id))

    async def get_run_status(self, run_id: str) -> RunStatus:
        """A run's state. Implements GET /runs/{run_id}/status."""
        return await self._drive(self._core.get_run_status(run_id))

    async def cancel_run(self, run_id: str) -> str:
        """Ask the server to stop a run. Implements POST /runs/{run_id}/cancel."""
        return await self._drive(self._core.cancel_run(run_id))

    async def list_tasks(
        self, run_id: str, *, page_size: int | None = None
    ) -> AsyncIterator[TaskLog]:
        """Every task of a run, paging as needed. Implements GET /runs/{run_id}/tasks."""
        pager = Pager()
        while not pager.done:
            page = await self._drive(self._core.list_tasks_page(run_id, page_size, pager.token))
            pager.advance(page.next_page_token)
            for task in page.task_logs:
                yield task

    async def get_task(self, run_id: str, task_id: str) -> TaskLog:
        """One task of a run. Implements GET /runs/{run_id}/tasks/{task_id}."""
        return await self._drive(self._core.get_task(run_id, task_id))

    async def list_run_outputs(self, run_id: str) -> OutputListResponse:
        """A run's output files with sizes and checksums."""
        return await self._drive(self._core.list_run_outputs(run_id))

    async def delete_run(self, run_id: str) -> str:
        """Remove a finished run's record and files (toolchest-wes extension)."""
        return await self._drive(self._core.delete_run(run_id))

    # -- conveniences ---------------------------------------------------------------------

    async def submit(
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
    ) -> AsyncRun:
        """Submit a run and return at once; see ``WesClient.submit``.

        Raises:
            InputFileError: A referenced local file does not exist.
            InputTypeError: An input does not fit the type the workflow declares.
            BadRequestError: The server refused the request; ``msg`` says why.
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
        run_id = await self._drive(self._core.submit(submission))
        if self.journal:
            self.journal.record_run(submission.request_id, self.url, run_id)
        return AsyncRun(self, run_id)

    async def run(
        self,
        workflow: str | Path,
        inputs: Mapping[str, Any] | str | Path | None = None,
        *,
        timeout: float | None = None,
        download: str | Path | None = None,
        **submit_options: Any,
    ) -> AsyncRun:
        """Submit, wait and optionally download; see ``WesClient.run``."""
        run = await self.submit(workflow, inputs, **submit_options)
        await run.wait(timeout=timeout)
        if download is not None:
            await run.download(download)
        return run

    async def get_run(self, run_id: str) -> AsyncRun:
        """A handle on an existing run, after checking that the server has it."""
        await self.get_run_status(run_id)
        return AsyncRun(self, run_id)

    async def wait_for_run(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        initial_interval: float = 1.0,
        raise_on_failure: bool = True,
    ) -> RunLog:
        """Poll until the run ends; see ``Run.wait``."""
        policy = WaitPolicy(initial=initial_interval)
        return await self._drive(self._core.wait(run_id, timeout, policy, raise_on_failure))

    async def runs(
        self,
        last_n: int = 10,
        *,
        state: StateSelector = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[AsyncRun]:
        """The newest ``last_n`` runs (in ``state``, with ``tags``) as handles.

        Their RunLogs are read concurrently here (a table of them cannot await), and kept in
        the handles of finished runs.
        """
        found = [run async for run in self.list_runs(state=state, tags=tags, limit=last_n)]
        await asyncio.gather(*(self._read_log(run) for run in found))
        return found

    async def recover(self) -> list[AsyncRun]:
        """Find the runs of journal entries whose answer never arrived, and record them."""
        found: list[AsyncRun] = []
        if not self.journal:
            return found
        for entry in self.journal.pending(self.url):
            run_id = await self._drive(self._core.find_request(entry.request_id))
            if run_id:
                self.journal.record_run(entry.request_id, self.url, run_id)
                found.append(AsyncRun(self, run_id))
        return found

    async def _read_log(self, run: AsyncRun) -> None:
        # A run whose RunLog the server cannot give still belongs in the table.
        with contextlib.suppress(WesApiError):
            await run.log()


class AsyncRun(RunHandle[AsyncWesClient]):
    """``Run`` for ``asyncio``: the same methods, awaitable."""

    @classmethod
    def from_id(
        cls,
        run_id: str,
        client: AsyncWesClient | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> AsyncRun:
        """A handle on a run submitted earlier, without contacting the server.

        Without ``client``, the handle makes its own client and owns it: ``await
        run.aclose()`` or an ``async with`` block closes it (an async client cannot be
        closed from a garbage collector).

        Example:
            >>> async with AsyncRun.from_id("3f0c…", url="http://127.0.0.1:8080") as run:
            ...     await run.download("results/", wait=True)
        """
        if client is not None:
            return cls(client, run_id)
        run = cls(AsyncWesClient(url, token), run_id)
        run._owns_client = True
        return run

    async def aclose(self) -> None:
        """Close the client this handle made (``from_id`` without ``client=``); else nothing."""
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncRun:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _drive(self, op: Op[T]) -> T:
        return await self.client._drive(op)

    async def status(self) -> State:
        """The run's current state."""
        return (await self.client.get_run_status(self.run_id)).state

    async def wait(
        self,
        timeout: float | None = None,
        initial_interval: float = 1.0,
        *,
        max_interval: float = 30.0,
        raise_on_failure: bool = True,
    ) -> RunLog:
        """Wait until the run ends, with backoff; see ``Run.wait``."""
        policy = WaitPolicy(initial=initial_interval, maximum=max_interval)
        core = self.client._core
        log = await self._drive(core.wait(self.run_id, timeout, policy, raise_on_failure))
        return self._keep(log)

    async def cancel(self) -> bool:
        """Ask the server to stop the run unless it has ended; see ``Run.cancel``."""
        if ended(await self.status()):
            return False
        await self.client.cancel_run(self.run_id)
        return True

    async def delete(self) -> None:
        """Remove the finished run's record and files (toolchest-wes extension)."""
        await self.client.delete_run(self.run_id)

    async def log(self) -> RunLog:
        """Everything the server says about the run; kept once the run has ended."""
        if self._log is not None:
            return self._log
        return self._keep(await self.client.get_run_log(self.run_id))

    async def tasks(self) -> list[TaskLog]:
        """Every task of the run."""
        return [task async for task in self.client.list_tasks(self.run_id)]

    async def logs(self, stream: Stream = "stderr", *, task: str | None = None) -> str:
        """The run's (or one task's) stdout or stderr as it is now; see ``follow_logs``."""
        url = await self._log_url(stream, task)
        return await self._drive(self.client._core.read_log(url))

    async def follow_logs(
        self, stream: Stream = "stderr", *, task: str | None = None
    ) -> AsyncIterator[str]:
        """New log text as it is written, until the run ends (HTTP Range reads)."""
        follower = LogFollower(await self._log_url(stream, task))
        while not follower.done:
            text = await self._drive(self.client._core.follow_log(self.run_id, follower))
            if text:
                yield text

    async def _log_url(self, stream: Stream, task: str | None) -> str:
        if task is None:
            return stream_url((await self.log()).run_log, stream)
        return await self._drive(self.client._core.task_log_url(self.run_id, task, stream))

    async def outputs(
        self,
        include: Sequence[str] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Outputs:
        """The run's output files with path, size and checksum; see ``Run.outputs``.

        Raises:
            RunNotFinished: The run has not ended (and ``wait`` is false).
            NoMatchingOutputs: ``include`` matches none of the files.
        """
        core = self.client._core
        return await self._drive(core.outputs(self.run_id, include, wait=wait, timeout=timeout))

    async def download(
        self,
        dest: str | Path = ".",
        include: Sequence[str] | None = None,
        *,
        archive: bool = False,
        progress: bool | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> list[Path]:
        """Download output files into ``dest``, resuming and checking them; see ``Run.download``."""
        op = self.client._core.download(
            self.run_id,
            dest,
            include,
            archive=archive,
            progress=progress,
            wait=wait,
            timeout=timeout,
        )
        return await self._drive(op)

    @contextlib.asynccontextmanager
    async def cancel_on_interrupt(self) -> AsyncIterator[AsyncRun]:
        """Cancel the run if the block is left by Ctrl-C or SIGTERM (see ``Run``'s).

        Under ``asyncio.run`` Ctrl-C arrives as the task's cancellation, so that cancels the
        run too; ``WaitTimeout`` and other exceptions leave it going.
        """
        async with async_on_interrupt(self.cancel):
            yield self
