"""The webhook outbox in the embedded store's SQLite file (two tables beside the runs)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from toolchest_wes.models import State
from toolchest_wes.store._sqlite_schema import transaction
from toolchest_wes.store.outbox import Builder, Delivery, RunHooks

__all__ = ["SqliteOutbox"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_runs (
    run_id TEXT PRIMARY KEY, owner TEXT, base_url TEXT NOT NULL, notify_url TEXT,
    notify_on TEXT NOT NULL, last_state TEXT, sequence INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT UNIQUE NOT NULL,
    event_id TEXT NOT NULL, url TEXT NOT NULL, subscriber TEXT NOT NULL, body TEXT NOT NULL,
    first_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (due_at, seq);
"""
_BUSY_TIMEOUT_S = 10.0


class SqliteOutbox:
    """An :class:`~toolchest_wes.store.outbox.Outbox` on the embedded store's file.

    Each thread has its own connection; every write is a ``BEGIN IMMEDIATE`` transaction, as
    in the embedded store, so several processes on one file take turns.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = os.fspath(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.executescript(_SCHEMA)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def register(self, hooks: RunHooks) -> None:
        """Keep ``hooks`` for the run."""
        self._conn().execute(
            "INSERT OR REPLACE INTO webhook_runs (run_id, owner, base_url, notify_url, "
            "notify_on) VALUES (?, ?, ?, ?, ?)",
            (hooks.run_id, hooks.owner, hooks.base_url, hooks.notify_url, hooks.notify_on),
        )

    def record(self, run_id: str, state: State, build: Builder) -> int:
        """Advance the run's last state and queue its deliveries, in one transaction."""
        conn = self._conn()
        with transaction(conn):
            row = conn.execute(
                "SELECT owner, base_url, notify_url, notify_on, last_state, sequence "
                "FROM webhook_runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                return 0
            hooks = RunHooks(
                run_id, row[0], row[1], row[2], row[3], State(row[4]) if row[4] else None, row[5]
            )
            deliveries = build(hooks, state)
            conn.execute(
                "UPDATE webhook_runs SET last_state = ?, sequence = sequence + 1 WHERE run_id = ?",
                (state.value, run_id),
            )
            conn.executemany(
                "INSERT INTO webhook_deliveries (delivery_id, event_id, url, subscriber, body, "
                "first_at, attempts, due_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                [
                    (d.delivery_id, d.event_id, d.url, d.subscriber, d.body, d.first_at, 0.0)
                    for d in deliveries
                ],
            )
        return len(deliveries)

    def claim_due(self, now: float, limit: int, hold_s: float) -> list[Delivery]:
        """Due deliveries in the order they were queued, held for ``hold_s``."""
        conn = self._conn()
        with transaction(conn):
            rows = conn.execute(
                "SELECT delivery_id, event_id, url, subscriber, body, first_at, attempts "
                "FROM webhook_deliveries WHERE due_at <= ? ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE webhook_deliveries SET due_at = ? WHERE delivery_id = ?",
                [(now + hold_s, row[0]) for row in rows],
            )
        return [Delivery(*row) for row in rows]

    def done(self, delivery_id: str) -> None:
        """Remove a delivery."""
        self._conn().execute("DELETE FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,))

    def retry_at(self, delivery_id: str, at: float, attempts: int) -> None:
        """Reschedule a delivery."""
        self._conn().execute(
            "UPDATE webhook_deliveries SET due_at = ?, attempts = ? WHERE delivery_id = ?",
            (at, attempts, delivery_id),
        )

    def forget(self, run_id: str) -> None:
        """Drop the run's hooks."""
        self._conn().execute("DELETE FROM webhook_runs WHERE run_id = ?", (run_id,))

    def pending(self) -> int:
        """How many deliveries are queued."""
        (count,) = self._conn().execute("SELECT COUNT(*) FROM webhook_deliveries").fetchone()
        return int(count)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
