"""The WES operations as sans-I/O generators (see ``_http``), shared by both clients."""

from __future__ import annotations

import codecs
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol
from urllib.parse import quote, urlsplit

import httpx

from toolchest_wes import __version__
from toolchest_wes.client import exceptions as exc
from toolchest_wes.client._config import resolve
from toolchest_wes.client._download import (
    ArchiveSink,
    FileSink,
    Progress,
    is_http,
    outputs_from_cwl,
    select_outputs,
    target_path,
    zip_name,
)
from toolchest_wes.client._http import (
    RETRY_STATUSES,
    Fetch,
    Op,
    RetryPolicy,
    Send,
    Sink,
    Sleep,
    api_error,
    api_url,
    decode,
    request,
)
from toolchest_wes.client._listing import RunFilter, StateSelector, ended
from toolchest_wes.client.tables import Outputs
from toolchest_wes.models import (
    Log,
    OutputListResponse,
    RunId,
    RunLog,
    RunStatus,
    RunSummary,
    ServiceInfo,
    State,
    TaskListResponse,
    TaskLog,
)

__all__ = [
    "REQUEST_ID_TAG",
    "Core",
    "LogFollower",
    "Pager",
    "RunListing",
    "Stream",
    "Submission",
    "WaitPolicy",
    "stream_url",
]

Stream = Literal["stdout", "stderr"]

#: The tag every submission carries, so a retried submit can find the run its first try made.
REQUEST_ID_TAG = "client_request_id"
#: The header that carries the same request id, for servers that keep one run per key.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
#: The service-info field of a server that honours ``Idempotency-Key`` (this server).
IDEMPOTENCY_EXTENSION = "toolchest_wes_idempotency"

#: The service-info field of a server whose status requests can wait for the run to end.
STATUS_WAIT_EXTENSION = "toolchest_wes_status_wait"
#: How long one status request of a wait asks such a server to hold its answer (seconds).
STATUS_WAIT_S = 20.0
#: What the HTTP read timeout of such a request allows beyond its wait (seconds).
STATUS_WAIT_SLACK_S = 30.0

#: How many of the newest runs a retried submit looks through for its request id.
LOOKUP_DEPTH = 200

#: Bytes of stderr that ``RunFailed`` carries.
STDERR_TAIL_BYTES = 4000

#: How often a followed log is read while nothing new arrives (seconds, from, to).
FOLLOW_INTERVAL = (0.5, 5.0)


@dataclass
class Submission:
    """The form fields and files of one POST /runs."""

    fields: dict[str, str]
    files: list[tuple[str, Path]] = field(default_factory=list)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class WaitPolicy:
    """How a wait polls: from ``initial`` seconds, times ``factor`` up to ``maximum``.

    The interval goes back to ``initial`` whenever the state changes, so a run that moves is
    watched closely and one that sits still is asked rarely.
    """

    initial: float = 1.0
    factor: float = 1.5
    maximum: float = 30.0

    def next(self, interval: float, changed: bool) -> float:
        """The interval after one poll."""
        return self.initial if changed else min(self.maximum, interval * self.factor)


class Pager:
    """Walks a paged listing: follows ``next_page_token`` until it is empty.

    A short page does not end the listing (servers may return fewer than ``page_size``); a
    token seen twice does, since a server that repeats itself would loop forever.
    """

    def __init__(self) -> None:
        self.token: str | None = None
        self.done = False
        self._seen: set[str] = set()

    def advance(self, next_token: str | None) -> None:
        """Record the token of the page just read."""
        if not next_token or next_token in self._seen:
            self.done = True
            return
        self._seen.add(next_token)
        self.token = next_token


class RunListing:
    """Where a filtered listing of runs is: its pages, its filter and how many runs it gave.

    Filters go to the server when it supports them and are applied here as well (see
    :class:`RunFilter`), so they work with any server.
    """

    def __init__(
        self,
        state: StateSelector,
        tags: Mapping[str, str] | None,
        limit: int | None,
        page_size: int | None,
    ) -> None:
        self.filter = RunFilter.of(state, tags)
        self.limit = limit
        self.page_size = page_size
        self.pager = Pager()
        self.count = 0
        #: The server refused several states in one ``state=``: send at most one from now on.
        self.one_state_only = False

    @property
    def done(self) -> bool:
        """No more pages, or ``limit`` runs given."""
        return self.pager.done or (self.limit is not None and self.count >= self.limit)


class LogFollower:
    """Where a followed log is: the bytes read so far, and how long to wait for more."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.offset = 0
        self.interval = FOLLOW_INTERVAL[0]
        #: The run has ended and every byte of the log was read.
        self.done = False
        # A character may be split between two reads.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def decode(self, data: bytes, final: bool = False) -> str:
        """The text of the next bytes."""
        return self._decoder.decode(data, final=final)


class _DownloadSink(Sink, Protocol):
    name: str

    def range_headers(self) -> dict[str, str]: ...

    def finish(self) -> Path: ...


def stream_url(log: Log | TaskLog | None, stream: Stream) -> str:
    """The ``stdout`` or ``stderr`` of a run's or task's log (a URL, or the text itself)."""
    url = getattr(log, stream, None) if log else None
    return url or ""


class Core:
    """Builds requests for one server and decodes its answers."""

    def __init__(
        self,
        url: str,
        token: str | None,
        policy: RetryPolicy,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base = api_url(url)
        self.token = token
        self.policy = policy
        self.headers = {"User-Agent": f"toolchest-wes/{__version__}", **(headers or {})}
        parts = urlsplit(self.base)
        self._origin = (parts.scheme, parts.netloc)
        #: Whether the server honours Idempotency-Key; ``None`` until a retry needs to know.
        self._honours_keys: bool | None = None
        self._waits_on_status: bool | None = None

    @classmethod
    def configured(
        cls,
        url: str | None,
        token: str | None,
        policy: RetryPolicy,
        headers: Mapping[str, str] | None = None,
    ) -> Core:
        """A core for ``url`` and ``token``, or those of the environment or config file."""
        return cls(*resolve(url, token), policy, headers)

    # -- building -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (under the API root) or a URL the server gave."""
        if "://" in path:
            return path
        return self.base + path

    def _headers(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(self.headers)
        parts = urlsplit(url)
        # Credentials go only to the server they are for, never to a URL on another host
        # that a server put in a RunLog.
        if self.token and (parts.scheme, parts.netloc) == self._origin:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def build(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Request:
        """An ``httpx.Request`` with the client's headers and, for this server, its token."""
        url = self.url(path)
        return httpx.Request(
            method, url, params=params, headers=self._headers(url, headers), **kwargs
        )

    def get(
        self, path: str, *, run_url: bool = False, accept: frozenset[int] = frozenset(), **kw: Any
    ) -> Op[httpx.Response]:
        """GET with retries."""
        return request(
            lambda: self.build("GET", path, **kw),
            self.policy,
            retry=True,
            run_url=run_url,
            accept=accept,
        )

    # -- WES operations -------------------------------------------------------------------

    def get_service_info(self) -> Op[ServiceInfo]:
        """GET /service-info."""
        return decode((yield from self.get("/service-info")), ServiceInfo)

    def list_runs_page(
        self, page_size: int | None, page_token: str | None, state: str | None, tag: str | None
    ) -> Op[tuple[list[RunSummary], str]]:
        """GET /runs: one page, from ``runs`` or the ``workflows`` key older servers send."""
        params = _params(page_size=page_size, page_token=page_token, state=state, tag=tag)
        response = yield from self.get("/runs", params=params)
        data = _json_object(response)
        items = data.get("runs")
        if items is None:
            items = data.get("workflows", [])
        if not isinstance(items, list):
            raise exc.UnexpectedResponseError(f"GET /runs answered a non-list of runs: {items!r}")
        runs = [RunSummary.model_validate(item) for item in items if isinstance(item, dict)]
        return runs, str(data.get("next_page_token") or "")

    def run_workflow(self, submission: Submission) -> Op[str]:
        """POST /runs once, without retries; returns the run id."""
        with ExitStack() as stack:
            response = yield Send(self._submit_request(submission, stack))
        if isinstance(response, httpx.RequestError):
            raise exc.TransportError(f"POST {self.base}/runs failed: {response}") from response
        if response.status_code >= 400:
            raise api_error(response)
        return decode(response, RunId).run_id

    def submit(self, submission: Submission) -> Op[str]:
        """POST /runs, retried without ever creating a second run.

        Every try carries the submission's request id, as the ``Idempotency-Key`` header and
        as the ``client_request_id`` tag. After an ambiguous failure (the connection broke,
        the answer timed out, 502/503/504), a server that honours the header (its
        service-info says so) answers the resend with the run of the first try, if any; on
        other servers the runs are searched for the tag before sending again. A 429 stored
        nothing, so it is simply sent again when ``Retry-After`` says (see
        ``RateLimitBudget``).
        """
        attempt = 0
        budget = self.policy.rate_limit_budget()
        unsure = False  # an earlier try may have created the run
        while True:
            if unsure:
                try:
                    found = yield from self._earlier_run(submission.request_id)
                except (exc.TransportError, exc.ServerError) as lookup_error:
                    # Sending again without knowing could make a second run: wait instead.
                    attempt = yield from self._pause(attempt, lookup_error, None)
                    continue
                if found:
                    return found
            with ExitStack() as stack:
                outcome = yield Send(self._submit_request(submission, stack))
            if isinstance(outcome, httpx.Response) and outcome.status_code not in RETRY_STATUSES:
                if outcome.status_code >= 400:
                    raise api_error(outcome)
                return decode(outcome, RunId).run_id
            if isinstance(outcome, httpx.Response) and outcome.status_code == 429:
                # Refused before anything was stored: sending again can make no second run.
                pause = budget.pause_for(outcome)
                if pause is not None:
                    yield Sleep(pause)
                    continue
                attempt = yield from self._pause(attempt, None, outcome)
                continue
            # A refused connection never reached the server; anything else may have.
            unsure = unsure or not isinstance(outcome, httpx.ConnectError)
            response = outcome if isinstance(outcome, httpx.Response) else None
            failed = outcome if isinstance(outcome, httpx.RequestError) else None
            attempt = yield from self._pause(attempt, failed, response)

    def _earlier_run(self, request_id: str) -> Op[str | None]:
        """The run an earlier try made, when only a search can tell; ``None`` when the server
        honours Idempotency-Key, whose answer to the resend is the one to trust (it may also
        complete a run that the failed try left without its files)."""
        if self._honours_keys is None:
            try:
                info = yield from self.get_service_info()
            except (exc.TransportError, exc.ServerError):
                raise  # unknown yet: the caller waits and asks again
            except exc.WesClientError:
                # A server without service-info (WES 1.0 has one, some servers answer 404).
                self._honours_keys = False
            else:
                self._honours_keys = IDEMPOTENCY_EXTENSION in (info.model_extra or {})
        if self._honours_keys:
            return None
        return (yield from self.find_request(request_id))

    def _pause(
        self, attempt: int, error: Exception | None, response: httpx.Response | None
    ) -> Op[int]:
        """Sleep before try ``attempt + 1``, or raise when the tries are used up."""
        if attempt >= self.policy.retries:
            if response is not None:
                raise api_error(response)
            if isinstance(error, exc.WesClientError):
                raise error
            raise exc.TransportError(
                f"POST {self.base}/runs failed after {attempt + 1} tries: {error}"
            ) from error
        yield Sleep(self.policy.delay(attempt, response))
        return attempt + 1

    def find_request(self, request_id: str) -> Op[str | None]:
        """The run a submission with this request id created, if any (newest runs first)."""
        tag = f"{REQUEST_ID_TAG}:{request_id}"
        pager = Pager()
        seen = 0
        while not pager.done and seen < LOOKUP_DEPTH:
            runs, next_token = yield from self.list_runs_page(100, pager.token, None, tag)
            for run in runs:
                seen += 1
                tags = run.tags
                if "tags" not in run.model_fields_set:
                    # WES 1.0 listings carry no tags; the RunLog's request has them.
                    try:
                        log = yield from self.get_run_log(run.run_id)
                    except exc.WesApiError:
                        continue
                    tags = log.request.tags if log.request else {}
                if tags.get(REQUEST_ID_TAG) == request_id:
                    return run.run_id
                if seen >= LOOKUP_DEPTH:
                    break
            pager.advance(next_token)
        return None

    def _submit_request(self, submission: Submission, stack: ExitStack) -> httpx.Request:
        files: list[tuple[str, tuple[str, IO[bytes], str]]] = []
        for name, path in submission.files:
            try:
                handle = stack.enter_context(path.open("rb"))
            except OSError as error:
                raise exc.InputFileError(f"cannot read attachment {path}: {error}") from error
            files.append(("workflow_attachment", (name, handle, "application/octet-stream")))
        # Without files httpx sends the fields form-urlencoded, which servers built on
        # Flask/connexion read the same way as multipart.
        return self.build(
            "POST",
            "/runs",
            data=submission.fields,
            files=files or None,
            headers={IDEMPOTENCY_KEY_HEADER: f'"{submission.request_id}"'},
        )

    def get_run_log(self, run_id: str) -> Op[RunLog]:
        """GET /runs/{run_id}."""
        response = yield from self.get(f"/runs/{_q(run_id)}", run_url=True)
        return decode(response, RunLog)

    def get_run_status(self, run_id: str, wait_s: float = 0.0) -> Op[RunStatus]:
        """GET /runs/{run_id}/status; with ``wait_s``, asking the server to hold the answer
        up to that long until the run ends (only for a server that says it can)."""
        path = f"/runs/{_q(run_id)}/status"
        if wait_s <= 0:
            response = yield from self.get(path, run_url=True)
        else:
            timeout = httpx.Timeout(STATUS_WAIT_SLACK_S, read=wait_s + STATUS_WAIT_SLACK_S)
            response = yield from self.get(
                path,
                run_url=True,
                params={"wait": f"{wait_s:g}"},
                extensions={"timeout": timeout.as_dict()},
            )
        return decode(response, RunStatus)

    def _status_waits(self) -> Op[bool]:
        """Whether the server's status requests can wait for the run to end (service-info
        names ``toolchest_wes_status_wait``); asked once per client."""
        if self._waits_on_status is None:
            try:
                info = yield from self.get_service_info()
            except exc.WesClientError:
                return False  # ask again at the next wait; this one polls
            self._waits_on_status = STATUS_WAIT_EXTENSION in (info.model_extra or {})
        return self._waits_on_status

    def cancel_run(self, run_id: str) -> Op[str]:
        """POST /runs/{run_id}/cancel (safe to repeat, so retried)."""
        return self._run_action("POST", f"/runs/{_q(run_id)}/cancel")

    def delete_run(self, run_id: str) -> Op[str]:
        """DELETE /runs/{run_id} (a toolchest-wes extension; safe to repeat, so retried)."""
        return self._run_action("DELETE", f"/runs/{_q(run_id)}")

    def _run_action(self, method: str, path: str) -> Op[str]:
        response = yield from request(
            lambda: self.build(method, path), self.policy, retry=True, run_url=True
        )
        return decode(response, RunId).run_id

    def list_tasks_page(
        self, run_id: str, page_size: int | None, page_token: str | None
    ) -> Op[TaskListResponse]:
        """GET /runs/{run_id}/tasks; a WES 1.0 server has no such path, so its RunLog serves."""
        try:
            response = yield from self.get(
                f"/runs/{_q(run_id)}/tasks",
                params=_params(page_size=page_size, page_token=page_token),
            )
        except exc.NotFoundError:
            log = yield from self.get_run_log(run_id)
            return TaskListResponse(task_logs=list(log.task_logs or []))
        return decode(response, TaskListResponse)

    def get_task(self, run_id: str, task_id: str) -> Op[TaskLog]:
        """GET /runs/{run_id}/tasks/{task_id}."""
        response = yield from self.get(f"/runs/{_q(run_id)}/tasks/{_q(task_id)}")
        return decode(response, TaskLog)

    def list_run_outputs(self, run_id: str) -> Op[OutputListResponse]:
        """GET /runs/{run_id}/outputs (extension), or the File entries of the RunLog's outputs
        on servers without it."""
        try:
            response = yield from self.get(f"/runs/{_q(run_id)}/outputs")
        except (exc.NotFoundError, exc.BadRequestError):
            # No such path on this server, or no such run: the RunLog tells which, raising
            # RunNotFoundError for a run that does not exist.
            log = yield from self.get_run_log(run_id)
            files = list(outputs_from_cwl(log.outputs or {}))
            return OutputListResponse(
                run_id=run_id,
                files=files,
                total_size=sum(f.size for f in files),
                state=log.state,
                complete=ended(log.state),
            )
        return decode(response, OutputListResponse)

    def runs_page(self, listing: RunListing) -> Op[list[RunSummary]]:
        """The runs of the listing's next page that match its filter, up to its limit."""
        wanted = listing.filter
        state = wanted.single_server_state if listing.one_state_only else wanted.server_state
        try:
            runs, token = yield from self.list_runs_page(
                listing.page_size, listing.pager.token, state, wanted.server_tag
            )
        except exc.BadRequestError:
            if state == wanted.single_server_state:
                raise
            # A server that filters on one state only refuses groups and lists: ask it for
            # that one state, or for every run, and filter here.
            listing.one_state_only = True
            state = wanted.single_server_state
            runs, token = yield from self.list_runs_page(
                listing.page_size, listing.pager.token, state, wanted.server_tag
            )
        listing.pager.advance(token)
        found = []
        for run in runs:
            if listing.limit is not None and listing.count >= listing.limit:
                break
            tags = None
            if wanted.needs_tags(run):
                # WES 1.0 listings carry no tags; the RunLog's request has them.
                log = yield from self.get_run_log(run.run_id)
                tags = dict(log.request.tags) if log.request else {}
            if wanted.matches(run, tags):
                found.append(run)
                listing.count += 1
        return found

    # -- a run's outputs and logs ---------------------------------------------------------

    def outputs(
        self,
        run_id: str,
        include: Sequence[str] | None,
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Op[Outputs]:
        """The run's output files (those ``include`` matches), once the run has ended.

        The listing says whether it is final (``complete``, this server); on a server that
        does not, the run's status says it.

        Raises:
            RunNotFinished: The run has not ended, and ``wait`` is false.
            RunFailed: With ``wait``, the run failed.
            NoMatchingOutputs: ``include`` matches none of the files.
        """
        listing = yield from self.list_run_outputs(run_id)
        if listing.complete is None:
            state = (yield from self.get_run_status(run_id)).state
            if ended(state):
                # The listing may predate the end; a final one is asked for again.
                listing = yield from self.list_run_outputs(run_id)
            finished = ended(state)
        else:
            state = listing.state or State.UNKNOWN
            finished = listing.complete
        if not finished:
            if not wait:
                raise exc.RunNotFinished(run_id, state)
            yield from self.wait(run_id, timeout, WaitPolicy(), raise_on_failure=True)
            listing = yield from self.list_run_outputs(run_id)
        return Outputs(select_outputs(listing.files, include, run_id), listing)

    def download(
        self,
        run_id: str,
        dest: str | Path,
        include: Sequence[str] | None,
        *,
        archive: bool = False,
        progress: bool | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Op[list[Path]]:
        """Download the run's output files into ``dest`` (see ``Run.download``)."""
        files = yield from self.outputs(run_id, include, wait=wait, timeout=timeout)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if archive:
            params: dict[str, Any] = {"archive": "zip"}
            if include:
                params["path"] = [f.path for f in files]
            sink = ArchiveSink(dest / zip_name(run_id))
            url = self.url(f"/runs/{_q(run_id)}/outputs")
            return [(yield from self.fetch_into(url, sink, params=params, run_url=True))]
        written = []
        with Progress(files.total_size, progress, desc=run_id[:8]) as bar:
            for entry in files:
                file_sink = FileSink(entry, target_path(dest, entry.path), bar)
                if file_sink.done:
                    bar.update(entry.size)
                elif not is_http(entry.url):
                    raise exc.DownloadError(
                        f"{entry.path}: the server gave no download URL ({entry.url})"
                    )
                else:
                    yield from self.fetch_into(entry.url, file_sink)
                written.append(file_sink.path)
        return written

    def fetch_into(
        self,
        url: str,
        sink: _DownloadSink,
        *,
        params: Mapping[str, Any] | None = None,
        run_url: bool = False,
    ) -> Op[Path]:
        """GET ``url`` into ``sink``, resuming it (where it can) after a broken connection.

        Connection errors and 429/502/503/504 are retried as ``policy`` says; each try asks
        only for what the sink still lacks.
        """
        attempt = 0
        while True:
            built = self.build("GET", url, params=params, headers=sink.range_headers())
            outcome = yield Fetch(built, sink)
            if isinstance(outcome, httpx.RequestError):
                if attempt >= self.policy.retries:
                    raise exc.TransportError(f"downloading {sink.name}: {outcome}") from outcome
                yield Sleep(self.policy.delay(attempt))
            elif outcome.status_code in RETRY_STATUSES and attempt < self.policy.retries:
                yield Sleep(self.policy.delay(attempt, outcome))
            elif outcome.status_code >= 400 and outcome.status_code != 416:
                raise api_error(outcome, run_url=run_url)
            else:
                return sink.finish()
            attempt += 1

    def read_log(self, url: str) -> Op[str]:
        """The text of a log as it is now."""
        if not is_http(url):
            return url  # servers that put the log text itself in the RunLog
        return (yield from self.read_from(url, 0)).decode("utf-8", "replace")

    def follow_log(self, run_id: str, follower: LogFollower) -> Op[str]:
        """The next new text of a followed log, waiting for it to be written.

        Returns ``""`` or the last text with ``follower.done`` set once the run has ended and
        the log has been read to its end.
        """
        if not is_http(follower.url):
            follower.done = True
            return follower.url
        while True:
            # The state is read before the log, so the last bytes written are never missed.
            state = (yield from self.get_run_status(run_id)).state
            data = yield from self.read_from(follower.url, follower.offset)
            if data:
                follower.offset += len(data)
                follower.interval = FOLLOW_INTERVAL[0]
                return follower.decode(data)
            if ended(state):
                follower.done = True
                return follower.decode(b"", final=True)
            yield Sleep(follower.interval)
            follower.interval = min(FOLLOW_INTERVAL[1], follower.interval * 1.5)

    def task_log_url(self, run_id: str, task: str, stream: Stream) -> Op[str]:
        """The ``stream`` URL of the task whose id or name is ``task``."""
        pager = Pager()
        while not pager.done:
            page = yield from self.list_tasks_page(run_id, None, pager.token)
            pager.advance(page.next_page_token)
            for found in page.task_logs:
                if task in (found.id, found.name):
                    return stream_url(found, stream)
        return stream_url((yield from self.get_task(run_id, task)), stream)

    # -- helpers over several requests ----------------------------------------------------

    def read_from(self, url: str, offset: int) -> Op[bytes]:
        """The bytes of ``url`` after ``offset``, by a Range request when the server does them."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = yield from self.get(url, headers=headers, accept=frozenset({416}))
        if response.status_code == 416:
            return b""
        if response.status_code == 206:
            return response.content
        return response.content[offset:]

    def stderr_tail(self, log: RunLog) -> Op[str]:
        """The last part of a run's stderr, or ``""`` when it cannot be read."""
        return self.tail_of(log.run_log.stderr if log.run_log else None)

    def tail_of(self, url: str | None) -> Op[str]:
        """The last part of the log at ``url``, or ``""`` when it cannot be read."""
        if not url or not is_http(url):
            return ""
        try:
            data = yield from self.get(url)
        except exc.WesClientError:
            return ""
        text = data.content[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
        return text

    def failed_task(self, run_id: str) -> Op[TaskLog | None]:
        """The last task that exited non-zero, or ``None`` (none did, or no task listing)."""
        failed: TaskLog | None = None
        pager = Pager()
        try:
            while not pager.done:
                page = yield from self.list_tasks_page(run_id, None, pager.token)
                pager.advance(page.next_page_token)
                for task in page.task_logs:
                    if task.exit_code not in (None, 0):
                        failed = task
        except exc.WesClientError:
            # The task listing only adds detail to a failure that is reported anyway.
            return failed
        return failed

    def wait(
        self, run_id: str, timeout: float | None, policy: WaitPolicy, raise_on_failure: bool
    ) -> Op[RunLog]:
        """Poll the status until the run ends; return its RunLog, or raise ``RunFailed``.

        A server whose status requests can wait (this one) is asked to hold each answer
        until the run ends, so the end is seen the moment it comes and no request is spent
        in between; others are polled with ``policy``'s backoff.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = policy.initial
        last: State | None = None
        waits = yield from self._status_waits()
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            hold = 0.0
            if waits:
                hold = STATUS_WAIT_S if left is None else max(0.0, min(STATUS_WAIT_S, left))
            asked = time.monotonic()
            state = (yield from self.get_run_status(run_id, hold)).state
            if ended(state):
                log = yield from self.get_run_log(run_id)
                if raise_on_failure and not state.is_success:
                    raise (yield from self.failure(log, state))
                return log
            interval = policy.next(interval, changed=last is not None and state != last)
            last = state
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise exc.WaitTimeout(
                        f"run {run_id} is still {state} after {timeout:g} s", run_id, state
                    )
            # A server that held the answer as asked needs no pause before the next request;
            # one that answered early (all its waiting slots taken) gets the usual backoff.
            if hold > 0 and time.monotonic() - asked >= hold / 2:
                continue
            yield Sleep(interval if left is None else min(interval, left))

    def failure(self, log: RunLog, state: State) -> Op[exc.RunFailed]:
        """The ``RunFailed`` for a run that ended in ``state``.

        A cancelled run carries no logs: its engine was stopped on purpose, so what it wrote
        on the way out explains nothing. A failed one names the task that failed, with the
        task's own exit code and stderr, since the engine's exit code and log only say that
        some task failed.
        """
        run_log = log.run_log
        exit_code = run_log.exit_code if run_log else None
        if state in (State.CANCELED, State.CANCELING):
            return exc.RunFailed(log.run_id, state, exit_code=exit_code)
        tail = yield from self.stderr_tail(log)
        task = yield from self.failed_task(log.run_id)
        task_tail = (yield from self.tail_of(task.stderr)) if task else ""
        return exc.RunFailed(
            log.run_id,
            state,
            exit_code=exit_code,
            system_logs=run_log.system_logs if run_log else None,
            stderr_tail=_last_lines(tail),
            task=task,
            task_stderr_tail=_last_lines(task_tail),
        )


def _last_lines(text: str, count: int = 20) -> str:
    return "\n".join(text.splitlines()[-count:])


def _q(value: str) -> str:
    return quote(value, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError) as error:
        raise exc.UnexpectedResponseError(
            f"{response.request.url} answered a body that is not JSON"
        ) from error
    if not isinstance(data, dict):
        raise exc.UnexpectedResponseError(f"{response.request.url} answered {data!r}")
    return data
