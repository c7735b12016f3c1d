"""What ``Run`` and ``AsyncRun`` share: identity, the cached RunLog, and Ctrl-C/SIGTERM handling.

The handles themselves sit beside their clients (``Run`` in ``_sync``, ``AsyncRun`` in
``_async``): a handle makes a client in ``from_id`` and a client makes handles, so they live
in one module each and neither module imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, Generic, Protocol, TypeVar

from toolchest_wes.client._listing import ended, log_from_summary
from toolchest_wes.models import RunLog, RunSummary

__all__ = [
    "RunHandle",
    "Terminated",
    "async_on_interrupt",
    "on_interrupt",
    "sigterm_raises",
]


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
        #: Whether the handle made its client (``from_id``), and so closes it.
        self._owns_client = False

    def _keep(self, log: RunLog) -> RunLog:
        if ended(log.state):
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


@contextlib.asynccontextmanager
async def async_on_interrupt(cancel: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """Await ``cancel`` (never raising) when the block is left by Ctrl-C, SIGTERM or the
    task's cancellation (how ``asyncio.run`` delivers Ctrl-C)."""
    with sigterm_raises():
        try:
            yield
        except (KeyboardInterrupt, Terminated, asyncio.CancelledError):
            with contextlib.suppress(Exception):
                await asyncio.shield(cancel())
            raise
