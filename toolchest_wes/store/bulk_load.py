"""Bulk loading of run records into a store: for migrations from another server, and benchmarks.

``create_run`` is one transaction (SQLite) or one script call (Redis) per run, which is right
for a server but makes a history of a million runs take minutes. These loaders write the same
rows, keys and indexes as ``create_run`` does, many runs per transaction or per pipeline:

- :func:`load_embedded` inserts ``batch`` runs and their tags per ``BEGIN IMMEDIATE``
  transaction, with the same statements and row mapping as the embedded store;
- :func:`load_redis` sends the store's own create script, ``batch`` calls per pipeline, and
  adds each terminal run whose outputs are kept to the retention sweep's index, as the
  transition script does when a run ends.

A run id that is already stored is skipped. Load into a store that no server is using.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from toolchest_wes.models import State
from toolchest_wes.store._sqlite_schema import RECORD_COLUMNS, RECORD_FIELDS, to_row, transaction
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore
from toolchest_wes.store.redis_store import RedisStateStore

__all__ = ["load_embedded", "load_redis", "load_runs"]

_INSERT_RUN = (
    f"INSERT INTO runs ({RECORD_COLUMNS}) VALUES ({', '.join('?' * len(RECORD_FIELDS))}) "
    "ON CONFLICT (run_id) DO NOTHING RETURNING seq"
)


def load_runs(store: EmbeddedStateStore | RedisStateStore, records: Iterable[RunRecord]) -> None:
    """Load ``records`` into ``store`` with the loader of its kind."""
    if isinstance(store, EmbeddedStateStore):
        load_embedded(store.path, records)
    else:
        load_redis(store, records)


def load_embedded(path: str | Path, records: Iterable[RunRecord], *, batch: int = 10_000) -> int:
    """Insert ``records`` into the SQLite store at ``path``; return how many were new."""
    store = EmbeddedStateStore(path)
    loaded = 0
    try:
        with store._connection() as conn:
            for chunk in _chunks(records, batch):
                with transaction(conn):
                    for record in chunk:
                        row = conn.execute(_INSERT_RUN, to_row(record)).fetchone()
                        if row is None:
                            continue
                        loaded += 1
                        conn.executemany(
                            "INSERT INTO run_tags (run_id, key, value, seq) VALUES (?, ?, ?, ?)",
                            [(record.run_id, k, v, row[0]) for k, v in record.request.tags.items()],
                        )
    finally:
        store.close()
    return loaded


def load_redis(store: RedisStateStore, records: Iterable[RunRecord], *, batch: int = 2000) -> None:
    """Create ``records`` in ``store`` with its create script, ``batch`` calls per pipeline."""
    client = store._client
    if not client.exists(store._key("runs")):
        # Every run loaded into an empty store is indexed for the sweep below, so the one-time
        # indexing of runs that ended before that index existed has nothing to do.
        client.set(store._key("outputs-kept-indexed"), "1", nx=True)
    for chunk in _chunks(records, batch):
        pipe = client.pipeline(transaction=False)
        kept: dict[str, float] = {}
        for record in chunk:
            state = State(record.state).value
            keys, args = store._create_call(record)
            store._create(keys=keys, args=args, client=pipe)
            if State(state).is_terminal and record.outputs_removed_at is None:
                kept[record.run_id] = _ended_ms(record)
        created = pipe.execute()
        # A run whose id was taken (the script answered 0) keeps the index entries it had.
        fresh = {r.run_id for r, seq in zip(chunk, created, strict=True) if seq}
        kept = {run_id: ms for run_id, ms in kept.items() if run_id in fresh}
        if kept:
            client.zadd(store._key("outputs-kept"), kept, nx=True)


def _ended_ms(record: RunRecord) -> float:
    try:
        ended = calendar.timegm(time.strptime(record.end_time or "", "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        ended = int(record.created_at)
    return ended * 1000.0


def _chunks(records: Iterable[RunRecord], size: int) -> Iterator[list[RunRecord]]:
    it = iter(records)
    while chunk := list(islice(it, max(1, size))):
        yield chunk
