"""``RunGroup`` and ``AsyncRunGroup``: many runs waited for together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from toolchest_wes.client._core import WaitPolicy
from toolchest_wes.client.exceptions import WaitTimeout
from toolchest_wes.client.run import RunHandle, on_interrupt
from toolchest_wes.models import RunLog, State

if TYPE_CHECKING:
    from toolchest_wes.client._async import AsyncRun, AsyncWesClient
    from toolchest_wes.client._sync import WesClient
    from toolchest_wes.client.run import Run

R = TypeVar("R", bound=RunHandle[Any])

__all__ = ["AsyncRunGroup", "RunGroup"]

_FORMAT = "toolchest-wes.run-group/1"


def _ended(state: State) -> bool:
    return state.is_terminal or state is State.PREEMPTED


class _Poller:
    """Which runs are still pending, and how long to sleep between rounds of status polls."""

    def __init__(self, run_ids: list[str], timeout: float | None, policy: WaitPolicy) -> None:
        self.pending = list(dict.fromkeys(run_ids))
        self.states: dict[str, State] = {}
        self.policy = policy
        self.interval = policy.initial
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout

    def observe(self, run_id: str, state: State) -> bool:
        """Record a state; ``True`` when the run has ended."""
        changed = self.states.get(run_id) not in (None, state)
        self.states[run_id] = state
        if changed:
            self.interval = self.policy.initial
        if _ended(state):
            self.pending.remove(run_id)
            return True
        return False

    def pause(self) -> float:
        """Seconds to sleep before the next round; raises ``WaitTimeout`` when time is up."""
        pause = self.interval
        self.interval = self.policy.next(self.interval, changed=False)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(
                    f"{len(self.pending)} of the runs still not finished after "
                    f"{self.timeout:g} s: {', '.join(self.pending[:5])}"
                )
            pause = min(pause, left)
        return pause


def _load(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a saved run group")
    return data


class _Group(Generic[R]):
    """Runs of one kind, in a fixed order."""

    def __init__(self, runs: Iterable[R]) -> None:
        self.runs = list(runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[R]:
        return iter(self.runs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.runs)} runs)"

    def save(self, path: str | Path) -> None:
        """Write the server URL and run ids to ``path`` (JSON; no token is written)."""
        urls = {run.client.url for run in self.runs}
        if len(urls) > 1:
            raise ValueError("a saved group holds runs of one server")
        data = {
            "format": _FORMAT,
            "url": urls.pop() if urls else "",
            "run_ids": [run.run_id for run in self.runs],
        }
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


class RunGroup(_Group["Run"]):
    """Several runs, waited for and collected together (ChemCloud's ``FutureOutput``).

    Example:
        >>> group = RunGroup([wes.submit("tool.cwl", {"n": n}) for n in range(10)])
        >>> group.save("batch.json")            # come back later: RunGroup.open("batch.json")
        >>> for run in group.as_completed(timeout=3600):
        ...     print(run.run_id, run.status())
    """

    @property
    def statuses(self) -> dict[str, State]:
        """Each run's current state, by run id."""
        return {run.run_id: run.status() for run in self.runs}

    @property
    def is_ready(self) -> bool:
        """Whether every run has ended."""
        return all(_ended(state) for state in self.statuses.values())

    def as_completed(
        self, timeout: float | None = None, initial_interval: float = 1.0
    ) -> Iterator[Run]:
        """Yield each run as it ends, in the order they end.

        Raises:
            WaitTimeout: ``timeout`` seconds passed before every run ended.
        """
        by_id = {run.run_id: run for run in self.runs}
        poller = _Poller(list(by_id), timeout, WaitPolicy(initial=initial_interval))
        while poller.pending:
            for run_id in list(poller.pending):
                if poller.observe(run_id, by_id[run_id].status()):
                    yield by_id[run_id]
            if poller.pending:
                time.sleep(poller.pause())

    def get(self, timeout: float | None = None, initial_interval: float = 1.0) -> list[RunLog]:
        """Wait for every run and return their RunLogs, in the group's order.

        Failed runs are returned too; check each ``RunLog.state``.

        Raises:
            WaitTimeout: ``timeout`` seconds passed before every run ended.
        """
        for _ in self.as_completed(timeout, initial_interval):
            pass
        return [run.log() for run in self.runs]

    def cancel(self) -> None:
        """Cancel every run that has not ended."""
        for run in self.runs:
            run.cancel()

    @contextlib.contextmanager
    def cancel_on_interrupt(self) -> Iterator[RunGroup]:
        """Cancel every unfinished run if the block is left by Ctrl-C or SIGTERM.

        Any other exception, ``WaitTimeout`` included, leaves the runs going.

        Example:
            >>> with group.cancel_on_interrupt():
            ...     group.get(timeout=3600)
        """
        with on_interrupt(self.cancel):
            yield self

    @classmethod
    def open(
        cls, path: str | Path, client: WesClient | None = None, *, token: str | None = None
    ) -> RunGroup:
        """The group saved in ``path``, on ``client`` or a new client for its server."""
        from toolchest_wes.client._sync import WesClient
        from toolchest_wes.client.run import Run

        data = _load(path)
        client = client or WesClient(data["url"], token)
        return cls(Run(client, run_id) for run_id in data["run_ids"])


class AsyncRunGroup(_Group["AsyncRun"]):
    """The ``asyncio`` twin of :class:`RunGroup`, over ``AsyncRun``s."""

    async def statuses(self) -> dict[str, State]:
        """Each run's current state, by run id (polled concurrently)."""
        states = await asyncio.gather(*(run.status() for run in self.runs))
        return {run.run_id: state for run, state in zip(self.runs, states, strict=True)}

    async def is_ready(self) -> bool:
        """Whether every run has ended."""
        return all(_ended(state) for state in (await self.statuses()).values())

    async def as_completed(
        self, timeout: float | None = None, initial_interval: float = 1.0
    ) -> AsyncIterator[AsyncRun]:
        """Yield each run as it ends; raises ``WaitTimeout`` when time runs out."""
        by_id = {run.run_id: run for run in self.runs}
        poller = _Poller(list(by_id), timeout, WaitPolicy(initial=initial_interval))
        while poller.pending:
            ids = list(poller.pending)
            states = await asyncio.gather(*(by_id[i].status() for i in ids))
            for run_id, state in zip(ids, states, strict=True):
                if poller.observe(run_id, state):
                    yield by_id[run_id]
            if poller.pending:
                await asyncio.sleep(poller.pause())

    async def get(
        self, timeout: float | None = None, initial_interval: float = 1.0
    ) -> list[RunLog]:
        """Wait for every run and return their RunLogs, in the group's order."""
        async for _ in self.as_completed(timeout, initial_interval):
            pass
        return list(await asyncio.gather(*(run.log() for run in self.runs)))

    async def cancel(self) -> None:
        """Cancel every run that has not ended."""
        await asyncio.gather(*(run.cancel() for run in self.runs))

    @contextlib.asynccontextmanager
    async def cancel_on_interrupt(self) -> AsyncIterator[AsyncRunGroup]:
        """Cancel every unfinished run if the block is left by Ctrl-C, SIGTERM or the task's
        cancellation (how ``asyncio.run`` delivers Ctrl-C)."""
        from toolchest_wes.client._async import async_on_interrupt

        async with async_on_interrupt(self.cancel):
            yield self

    @classmethod
    def open(
        cls, path: str | Path, client: AsyncWesClient | None = None, *, token: str | None = None
    ) -> AsyncRunGroup:
        """The group saved in ``path``, on ``client`` or a new client for its server."""
        from toolchest_wes.client._async import AsyncRun, AsyncWesClient

        data = _load(path)
        client = client or AsyncWesClient(data["url"], token)
        return cls(AsyncRun(client, run_id) for run_id in data["run_ids"])
