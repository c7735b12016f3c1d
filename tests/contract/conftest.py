"""Fixtures of the state-store contract suite: every test runs once per store backend.

A backend is a factory in ``STORE_BACKENDS``: given the test's ``request`` (to pull in fixtures
such as a Redis server) and ``tmp_path``, it returns a function that opens a new store on one
shared database each time it is called. Several opened stores stand in for several processes.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord, StateStore
from toolchest_wes.store.embedded_store import EmbeddedStateStore
from toolchest_wes.store.redis_store import RedisStateStore

StoreOpener = Callable[[], StateStore]


def _embedded(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOpener:
    path = tmp_path / "state.db"
    return lambda: EmbeddedStateStore(path)


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOpener:
    # The session server (tests/redis_server.py, a plugin of tests/conftest.py); a fresh
    # prefix stands in for an empty database.
    server = request.getfixturevalue("redis_server")
    server.start()
    prefix = f"contract-{uuid.uuid4().hex[:12]}"
    return lambda: RedisStateStore(server.url, prefix=prefix)


STORE_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], StoreOpener]] = {
    "embedded": _embedded,
    "redis": _redis,
}


@pytest.fixture(params=sorted(STORE_BACKENDS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    """Open another store on the test's database; every store opened is closed afterwards."""
    connect = STORE_BACKENDS[request.param](request, tmp_path)
    opened: list[StateStore] = []

    def open_() -> StateStore:
        store = connect()
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreOpener) -> StateStore:
    """A store on an empty database."""
    return open_store()


_counter = itertools.count()


@pytest.fixture
def make_record() -> Callable[..., RunRecord]:
    """Build a ``RunRecord``: ``make_record(state=..., tags=..., **record_fields)``."""

    def make(
        run_id: str | None = None,
        *,
        state: State = State.QUEUED,
        tags: dict[str, str] | None = None,
        **fields: Any,
    ) -> RunRecord:
        request = RunRequest(
            workflow_url="hello.cwl",
            workflow_type="CWL",
            workflow_type_version="v1.2",
            workflow_params={"message": "hi"},
            tags=tags or {},
        )
        return RunRecord(
            run_id=run_id or f"run-{next(_counter):06d}",
            state=state,
            request=request,
            created_at=fields.pop("created_at", time.time()),
            **fields,
        )

    return make
