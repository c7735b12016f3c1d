"""``RunGroup`` and ``AsyncRunGroup``: many runs waited for together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from toolchest_wes.client._async import AsyncRun, AsyncWesClient
from toolchest_wes.client._core import WaitPolicy
from toolchest_wes.client._handle import RunHandle, async_on_interrupt, on_interrupt
from toolchest_wes.client._listing import ended
from toolchest_wes.client._sync import Run, WesClient
from toolchest_wes.client.exceptions import WaitTimeout
from toolchest_wes.client.journal import default_journal_path
from toolchest_wes.models import RunLog, State

R = TypeVar("R", bound=RunHandle[Any])

__all__ = ["AsyncRunGroup", "RunGroup"]

_FORMAT = "toolchest-wes.run-group/1"


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
        if ended(state):
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


def default_group_path(journal_path: Path | None, run_ids: list[str]) -> Path:
    """Where ``save()`` without a path writes: ``groups/`` beside the journal (the client's
    state folder), named by the time and the first run id."""
    folder = (journal_path or default_journal_path()).parent / "groups"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    first = run_ids[0][:8] if run_ids else "empty"
    return folder / f"{stamp}-{first}-{len(run_ids)}.json"


class _Group(Generic[R]):
    """Runs of one kind, in a fixed order, with the last state seen of each."""

    def __init__(self, runs: Iterable[R]) -> None:
        self.runs = list(runs)
        # The client ``open`` made for the group, which the group closes.
        self._own_client: Any = None
        # A run that has ended stays so, so its state is never asked for again.
        self._states: dict[str, State] = {}

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[R]:
        return iter(self.runs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.runs)} runs)"

    @property
    def run_ids(self) -> list[str]:
        """The runs' ids, in the group's order."""
        return [run.run_id for run in self.runs]

    def _unfinished(self) -> list[R]:
        return [run for run in self.runs if not ended(self._states.get(run.run_id, State.UNKNOWN))]

    def _known(self) -> dict[str, State]:
        return {run.run_id: self._states.get(run.run_id, State.UNKNOWN) for run in self.runs}

    def save(self, path: str | Path | None = None) -> Path:
        """Write the server URL and run ids to ``path`` as JSON (no token is written).

        Args:
            path: The file; by default a new file in ``groups/`` of the client's state
                folder (beside its journal). Missing folders are made.

        Returns:
            The file written, for ``open()``.
        """
        urls = {run.client.url for run in self.runs}
        if len(urls) > 1:
            raise ValueError("a saved group holds runs of one server")
        if path is None:
            journal = next((run.client.journal for run in self.runs if run.client.journal), None)
            path = default_group_path(journal.path if journal else None, self.run_ids)
        data = {
            "format": _FORMAT,
            "url": urls.pop() if urls else "",
            "run_ids": self.run_ids,
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return target


class RunGroup(_Group["Run"]):
    """Several runs, waited for and collected together (ChemCloud's ``FutureOutput``).

    Example:
        >>> group = RunGroup([wes.submit("tool.cwl", {"n": n}) for n in range(10)])
        >>> path = group.save()                 # come back later: RunGroup.open(path)
        >>> for run in group.as_completed(timeout=3600):
        ...     print(run.run_id, run.status())
    """

    def refresh(self) -> dict[str, State]:
        """Ask the server for the state of each run not yet seen to end; every state, by run id."""
        for run in self._unfinished():
            self._states[run.run_id] = run.status()
        return self._known()

    @property
    def statuses(self) -> dict[str, State]:
        """Each run's current state, by run id; only runs not yet seen to end are asked for."""
        return self.refresh()

    @property
    def is_ready(self) -> bool:
        """Whether every run has ended."""
        return all(ended(state) for state in self.statuses.values())

    def as_completed(
        self, timeout: float | None = None, initial_interval: float = 1.0
    ) -> Iterator[Run]:
        """Yield each run as it ends, in the order they end (those already seen to end first).

        Raises:
            WaitTimeout: ``timeout`` seconds passed before every run ended.
        """
        by_id = {run.run_id: run for run in self.runs}
        poller = _Poller(list(by_id), timeout, WaitPolicy(initial=initial_interval))
        for run_id, state in self._known().items():
            if ended(state) and poller.observe(run_id, state):
                yield by_id[run_id]
        while poller.pending:
            for run_id in list(poller.pending):
                state = self._states[run_id] = by_id[run_id].status()
                if poller.observe(run_id, state):
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
        for run in self._unfinished():
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

    def download(
        self, dest: str | Path = ".", include: Sequence[str] | None = None, **options: Any
    ) -> dict[str, list[Path]]:
        """Download each run's outputs into its own folder, ``dest/<run_id>/``.

        Args:
            dest: The parent folder.
            include: Globs, as in ``Run.download`` (each run must have a matching file).
            options: More ``Run.download`` options (``wait=True``, ``progress=``, …).

        Returns:
            The files written, by run id.

        Raises:
            RunNotFinished: A run has not ended (pass ``wait=True`` to wait for it).
        """
        return {
            run.run_id: run.download(Path(dest) / run.run_id, include, **options)
            for run in self.runs
        }

    @classmethod
    def open(
        cls, path: str | Path, client: WesClient | None = None, *, token: str | None = None
    ) -> RunGroup:
        """The group saved in ``path``, on ``client`` or a new client for its server.

        Without ``client``, the group owns the client it makes: ``close()`` or a ``with`` block
        closes it, as does the group being garbage-collected.
        """
        data = _load(path)
        if client is not None:
            return cls(Run(client, run_id) for run_id in data["run_ids"])
        own = WesClient(data["url"], token)
        group = cls(Run(own, run_id) for run_id in data["run_ids"])
        group._own_client = own
        # Closed with the group at the latest; the client holds no reference back to it.
        weakref.finalize(group, own.close)
        return group

    def close(self) -> None:
        """Close the client this group made (``open`` without ``client=``); else nothing."""
        if self._own_client is not None:
            self._own_client.close()

    def __enter__(self) -> RunGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRunGroup(_Group["AsyncRun"]):
    """The ``asyncio`` twin of :class:`RunGroup`, over ``AsyncRun``s."""

    async def refresh(self) -> dict[str, State]:
        """Ask for the state of each run not yet seen to end (concurrently); every state."""
        pending = self._unfinished()
        states = await asyncio.gather(*(run.status() for run in pending))
        for run, state in zip(pending, states, strict=True):
            self._states[run.run_id] = state
        return self._known()

    async def statuses(self) -> dict[str, State]:
        """Each run's current state, by run id; only runs not yet seen to end are asked for."""
        return await self.refresh()

    async def is_ready(self) -> bool:
        """Whether every run has ended."""
        return all(ended(state) for state in (await self.statuses()).values())

    async def as_completed(
        self, timeout: float | None = None, initial_interval: float = 1.0
    ) -> AsyncIterator[AsyncRun]:
        """Yield each run as it ends; raises ``WaitTimeout`` when time runs out."""
        by_id = {run.run_id: run for run in self.runs}
        poller = _Poller(list(by_id), timeout, WaitPolicy(initial=initial_interval))
        for run_id, state in self._known().items():
            if ended(state) and poller.observe(run_id, state):
                yield by_id[run_id]
        while poller.pending:
            ids = list(poller.pending)
            states = await asyncio.gather(*(by_id[i].status() for i in ids))
            for run_id, state in zip(ids, states, strict=True):
                self._states[run_id] = state
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
        await asyncio.gather(*(run.cancel() for run in self._unfinished()))

    @contextlib.asynccontextmanager
    async def cancel_on_interrupt(self) -> AsyncIterator[AsyncRunGroup]:
        """Cancel every unfinished run if the block is left by Ctrl-C, SIGTERM or the task's
        cancellation (how ``asyncio.run`` delivers Ctrl-C)."""
        async with async_on_interrupt(self.cancel):
            yield self

    async def download(
        self, dest: str | Path = ".", include: Sequence[str] | None = None, **options: Any
    ) -> dict[str, list[Path]]:
        """Download each run's outputs into ``dest/<run_id>/``; see ``RunGroup.download``."""
        written = {}
        for run in self.runs:
            written[run.run_id] = await run.download(Path(dest) / run.run_id, include, **options)
        return written

    @classmethod
    def open(
        cls, path: str | Path, client: AsyncWesClient | None = None, *, token: str | None = None
    ) -> AsyncRunGroup:
        """The group saved in ``path``, on ``client`` or a new client for its server.

        Without ``client``, the group owns the client it makes: ``aclose()`` or an
        ``async with`` block closes it.
        """
        data = _load(path)
        if client is not None:
            return cls(AsyncRun(client, run_id) for run_id in data["run_ids"])
        own = AsyncWesClient(data["url"], token)
        group = cls(AsyncRun(own, run_id) for run_id in data["run_ids"])
        group._own_client = own
        return group

    async def aclose(self) -> None:
        """Close the client this group made (``open`` without ``client=``); else nothing."""
        if self._own_client is not None:
            await self._own_client.aclose()

    async def __aenter__(self) -> AsyncRunGroup:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
