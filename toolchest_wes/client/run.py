"""``Run``: a handle on one run of a WES server."""

from __future__ import annotations

import codecs
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, overload

import httpx

from toolchest_wes.client._core import WaitPolicy
from toolchest_wes.client._download import (
    FileSink,
    Progress,
    select_outputs,
    target_path,
    zip_name,
)
from toolchest_wes.client._http import api_error
from toolchest_wes.client._listing import log_from_summary
from toolchest_wes.client.exceptions import (
    DownloadError,
    RunNotFinished,
    TransportError,
    WesApiError,
)
from toolchest_wes.client.tables import Outputs
from toolchest_wes.models import RunLog, RunSummary, State, TaskLog

if TYPE_CHECKING:
    from toolchest_wes.client._sync import WesClient

__all__ = ["Run", "RunHandle", "Stream", "Terminated", "on_interrupt", "sigterm_raises"]

Stream = Literal["stdout", "stderr"]

#: How often a followed log is read while nothing new arrives (seconds, from, to).
FOLLOW_INTERVAL = (0.5, 5.0)


class _HasUrl(Protocol):
    @property
    def url(self) -> str: ...


C = TypeVar("C", bound=_HasUrl)


class RunHandle(Generic[C]):
    """A run id and the client that reaches its server; equal when both are."""

    def __init__(self, client: C, run_id: str, *, summary: RunSummary | None = None) -> None:
        self.client = client
        self.run_id = run_id
        #: The listing item the handle came from (``list_runs``/``runs``), if any.
        self.summary = summary
        # A finished run's RunLog no longer changes, so it is read once.
        self._log: RunLog | None = None

    def _keep(self, log: RunLog) -> RunLog:
        if _ended(log.state):
            self._log = log
        return log

    def known_log(self) -> RunLog:
        """The RunLog as far as it is known without asking the server: the cached one once
        the run has ended, else one built from the listing item (state and times)."""
        if self._log is not None:
            return self._log
        if self.summary is not None:
            return log_from_summary(self.summary)
        return RunLog(run_id=self.run_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.run_id!r}, url={self.client.url!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunHandle):
            return NotImplemented
        other_handle: RunHandle[Any] = other
        return (self.run_id, self.client.url) == (other_handle.run_id, other_handle.client.url)

    def __hash__(self) -> int:
        return hash((self.run_id, self.client.url))


class Run(RunHandle["WesClient"]):
    """One run on a WES server: its id plus the client that reaches it.

    Get one from ``WesClient.submit``, ``WesClient.get_run`` or :meth:`from_id`.

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

        Args:
            run_id: The run's id.
            client: The client to use; one is made from ``url`` and ``token`` (or the
                environment and config file) when not given.
        """
        if client is None:
            from toolchest_wes.client._sync import WesClient

            client = WesClient(url, token)
        return cls(client, run_id)

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
        return self._keep(
            self.client._drive(
                self.client._core.wait(self.run_id, timeout, policy, raise_on_failure)
            )
        )

    def cancel(self) -> bool:
        """Ask the server to stop the run (POST /runs/{run_id}/cancel), unless it has ended.

        Returns:
            ``True`` when the cancel was sent; ``False`` when the run had already finished
            (``status()`` says in which state), which leaves it as it was.
        """
        if _ended(self.status()):
            return False
        self.client.cancel_run(self.run_id)
        return True

    def delete(self) -> None:
        """Remove the finished run's record and files (toolchest-wes extension)."""
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
        """The run's (or one task's) stdout or stderr.

        Args:
            stream: ``"stderr"`` (cwltool's log) or ``"stdout"``.
            follow: Return an iterator of new text as it is written, until the run ends;
                it asks only for the bytes it does not have yet (HTTP Range).
            task: A task id (or name): that task's stream instead of the run's.

        Example:
            >>> for text in run.logs(follow=True):
            ...     print(text, end="")
        """
        url = self._log_url(stream, task)
        if follow:
            return self._follow(url)
        if not url.startswith(("http://", "https://")):
            return url  # servers that put the log text itself in the RunLog
        return self.client._read_from(url, 0).decode("utf-8", "replace")

    def _log_url(self, stream: Stream, task: str | None) -> str:
        if task is None:
            log = self.log().run_log
        else:
            log = next(
                (t for t in self.tasks() if task in (t.id, t.name)), None
            ) or self.client.get_task(self.run_id, task)
        url = getattr(log, stream, None) if log else None
        return url or ""

    def _follow(self, url: str) -> Iterator[str]:
        if not url.startswith(("http://", "https://")):
            yield url
            return
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        offset = 0
        interval = FOLLOW_INTERVAL[0]
        while True:
            # Read after seeing the end, so the last bytes written are never missed.
            state = self.status()
            ended = state.is_terminal or state is State.PREEMPTED
            data = self.client._read_from(url, offset)
            if data:
                offset += len(data)
                interval = FOLLOW_INTERVAL[0]
                yield decoder.decode(data)
            elif ended:
                rest = decoder.decode(b"", final=True)
                if rest:
                    yield rest
                return
            else:
                time.sleep(interval)
                interval = min(FOLLOW_INTERVAL[1], interval * 1.5)

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
        state = self.status()
        if not (state.is_terminal or state is State.PREEMPTED):
            if not wait:
                raise RunNotFinished(self.run_id, state)
            self.wait(timeout=timeout)
        listing = self.client.list_run_outputs(self.run_id)
        return Outputs(select_outputs(listing.files, include, self.run_id), listing)

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
        files = self.outputs(include, wait=wait, timeout=timeout)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if archive:
            return [self._download_zip(dest, [f.path for f in files] if include else None)]
        written = []
        with Progress(files.total_size, progress, desc=self.run_id[:8]) as bar:
            for entry in files:
                sink = FileSink(entry, target_path(dest, entry.path), bar)
                if sink.done:
                    bar.update(entry.size)
                else:
                    self._fetch(entry.url, sink)
                written.append(sink.path)
        return written

    def _fetch(self, url: str, sink: FileSink) -> None:
        if not url.startswith(("http://", "https://")):
            raise DownloadError(f"{sink.entry.path}: the server gave no download URL ({url})")
        core = self.client._core
        for attempt in range(core.policy.retries + 1):
            request = core.build("GET", url, headers=sink.range_headers())
            try:
                response = self.client.http.send(request, stream=True)
                try:
                    if response.status_code >= 400 and response.status_code != 416:
                        response.read()
                        raise api_error(response)
                    if sink.start(response):
                        for chunk in response.iter_bytes():
                            sink.write(chunk)
                finally:
                    response.close()
                    sink.close()
            except httpx.RequestError as error:
                if attempt >= core.policy.retries:
                    raise TransportError(f"downloading {sink.entry.path}: {error}") from error
                time.sleep(core.policy.delay(attempt))
                continue
            sink.finish()
            return

    def _download_zip(self, dest: Path, paths: list[str] | None) -> Path:
        target = dest / zip_name(self.run_id)
        params: dict[str, object] = {"archive": "zip"}
        if paths:
            params["path"] = paths
        core = self.client._core
        request = core.build("GET", f"/runs/{self.run_id}/outputs", params=params)
        part = target.with_name(target.name + ".part")
        response = self.client.http.send(request, stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise api_error(response, run_url=True)
            with part.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        finally:
            response.close()
        part.replace(target)
        return target

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


def _ended(state: State) -> bool:
    return state.is_terminal or state is State.PREEMPTED


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread by :func:`sigterm_raises` (exit code 143)."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def on_interrupt(cancel: Callable[[], object]) -> Iterator[None]:
    """Call ``cancel`` (never raising) when the block is left by Ctrl-C or SIGTERM."""
    with sigterm_raises():
        try:
            yield
        except (KeyboardInterrupt, Terminated):
            with contextlib.suppress(Exception):
                cancel()
            raise
