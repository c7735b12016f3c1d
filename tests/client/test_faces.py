"""One client, two faces: the blocking and the asyncio classes offer the same methods, and a
handle that makes its own client closes it."""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.client import (
    AsyncRun,
    AsyncRunGroup,
    AsyncWesClient,
    Run,
    RunGroup,
    RunNotFoundError,
    WesClient,
)

PAIRS = [(WesClient, AsyncWesClient), (Run, AsyncRun), (RunGroup, AsyncRunGroup)]

#: Public names one face has and the other has not, on purpose.
ONLY_ONE_FACE = {
    # Closing an async client is awaited; the names follow httpx.Client/AsyncClient.
    "WesClient.close",
    "AsyncWesClient.aclose",
    "Run.close",
    "AsyncRun.aclose",
    "RunGroup.close",
    "AsyncRunGroup.aclose",
}

#: Parameters one face's method has and the other's has not, on purpose.
ONLY_ONE_FACE_PARAMETERS = {
    # logs(follow=True) returned an iterator before follow_logs() existed; it stays for the
    # callers of the blocking client. An awaited method cannot return an async iterator
    # usefully, so the async face has follow_logs() only.
    "Run.logs": {"follow"},
}

#: Members that are properties in the blocking face and methods in the async face: a
#: property cannot await.
PROPERTY_OR_COROUTINE = {"statuses", "is_ready"}


def _public(cls: type) -> dict[str, Any]:
    return {
        name: inspect.getattr_static(cls, name)
        for name in dir(cls)
        if not name.startswith("_")
        and (
            callable(getattr(cls, name)) or isinstance(inspect.getattr_static(cls, name), property)
        )
    }


def _parameters(function: Any) -> dict[str, tuple[Any, Any]]:
    """Each parameter's kind and default; the annotations name each face's own classes."""
    signature = inspect.signature(function)
    return {p.name: (p.kind, p.default) for p in signature.parameters.values()}


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda cls: cls.__name__)
def test_both_faces_have_the_same_public_methods(sync: type, async_: type) -> None:
    ours, theirs = _public(sync), _public(async_)
    only_sync = {f"{sync.__name__}.{n}" for n in set(ours) - set(theirs)}
    only_async = {f"{async_.__name__}.{n}" for n in set(theirs) - set(ours)}
    assert only_sync <= ONLY_ONE_FACE, only_sync - ONLY_ONE_FACE
    assert only_async <= ONLY_ONE_FACE, only_async - ONLY_ONE_FACE


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda cls: cls.__name__)
def test_both_faces_take_the_same_parameters(sync: type, async_: type) -> None:
    ours, theirs = _public(sync), _public(async_)
    for name in sorted(set(ours) & set(theirs)):
        mine, other = ours[name], theirs[name]
        if isinstance(mine, property) or isinstance(other, property):
            assert isinstance(mine, property) == isinstance(other, property) or (
                name in PROPERTY_OR_COROUTINE
            ), name
            continue
        a, b = _parameters(getattr(sync, name)), _parameters(getattr(async_, name))
        allowed = ONLY_ONE_FACE_PARAMETERS.get(f"{sync.__name__}.{name}", set())
        a = {k: v for k, v in a.items() if k not in allowed}
        assert a == b, f"{sync.__name__}.{name} and {async_.__name__}.{name} differ"


def test_the_async_faces_methods_are_awaited() -> None:
    """Every method of the async face that talks to the server is a coroutine or an async
    iterator; the only plain ones work without the network."""
    plain = {"from_id", "known_log", "open", "save", "cancel_on_interrupt"}
    for _, async_ in PAIRS:
        for name, member in _public(async_).items():
            if isinstance(member, property) or name in plain:
                continue
            function = getattr(async_, name)
            assert inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function), (
                f"{async_.__name__}.{name}"
            )


# -- a handle that makes its own client closes it ------------------------------------------


def test_from_id_without_a_client_owns_and_closes_it(live: Any) -> None:
    with Run.from_id("no-such-run", url=live.url) as run, pytest.raises(RunNotFoundError):
        run.status()
    assert run.client.http.is_closed

    # Without a with block: closed when the handle goes, so no socket is left to the
    # garbage collector (which warns about it).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropped = Run.from_id("no-such-run", url=live.url)
        with pytest.raises(RunNotFoundError):
            dropped.status()
        del dropped
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_from_id_with_a_client_leaves_it_to_the_caller(wes: WesClient) -> None:
    with Run.from_id("no-such-run", wes) as run:
        assert run.client is wes
    assert not wes.http.is_closed


def test_an_opened_group_owns_and_closes_its_client(live: Any, tmp_path: Path) -> None:
    with WesClient(live.url) as saver:
        path = RunGroup([Run(saver, "no-such-run")]).save(tmp_path / "g.json")
    with RunGroup.open(path) as group:
        client = group.runs[0].client
    assert client.http.is_closed
    with WesClient(live.url) as wes:
        with RunGroup.open(path, wes):
            pass
        assert not wes.http.is_closed

    async def main() -> None:
        async with AsyncRunGroup.open(path) as agroup:
            aclient = agroup.runs[0].client
        assert aclient.http.is_closed

    asyncio.run(main())


def test_async_from_id_owns_and_closes_its_client(live: Any) -> None:
    async def main() -> None:
        async with AsyncRun.from_id("no-such-run", url=live.url) as run:
            with pytest.raises(RunNotFoundError):
                await run.status()
        assert run.client.http.is_closed
        async with AsyncWesClient(live.url) as wes:
            async with AsyncRun.from_id("no-such-run", wes):
                pass
            assert not wes.http.is_closed

    asyncio.run(main())
