"""The webhook outbox in the embedded store's SQLite file, beside the runs table.

Two triggers on ``runs`` write each new run and each change of state into
``webhook_transitions`` inside the store's own transaction: a state change that is stored has
its event stored too, whichever process made it. The delivery loop then drains that table into
``webhook_deliveries``, one delivery per receiver, reading what the run asked for from
``webhook_runs``. A run's deliveries to one URL go out one at a time, in order. When the
server sends no webhooks, :func:`disable` drops the triggers.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from toolchest_wes.models import TERMINAL_STATES, State
from toolchest_wes.store._sqlite_schema import enable_wal, ensure_schema, transaction
from toolchest_wes.store.outbox import Builder, Delivery, RunHooks

__all__ = ["SqliteOutbox", "disable"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_runs (
    run_id TEXT PRIMARY KEY, owner TEXT, base_url TEXT NOT NULL, notify_url TEXT,
    notify_on TEXT NOT NULL, last_state TEXT, sequence INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT UNIQUE NOT NULL,
    event_id TEXT NOT NULL, url TEXT NOT NULL, subscriber TEXT NOT NULL, body TEXT NOT NULL,
    first_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL,
    run_id TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (due_at, seq);
CREATE TABLE IF NOT EXISTS webhook_transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, state TEXT NOT NULL,
    previous TEXT, at REAL NOT NULL
);
"""
_NOW = "(julianday('now') - 2440587.5) * 86400.0"
_TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS webhook_run_created AFTER INSERT ON runs BEGIN
    INSERT INTO webhook_transitions (run_id, state, previous, at)
    VALUES (NEW.run_id, NEW.state, NULL, {_NOW});
END;
CREATE TRIGGER IF NOT EXISTS webhook_run_changed AFTER UPDATE OF state ON runs
WHEN OLD.state IS NOT NEW.state BEGIN
    INSERT INTO webhook_transitions (run_id, state, previous, at)
    VALUES (NEW.run_id, NEW.state, OLD.state, {_NOW});
END;
"""
_BUSY_TIMEOUT_S = 10.0

logger = logging.getLogger(__name__)


def disable(path: str | Path) -> None:
    """Stop recording transitions in the file at ``path`` (if it has the triggers)."""
    if not Path(path).exists():
        return
    conn = sqlite3.connect(os.fspath(path), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    try:
        found = conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'webhook_%'"
        ).fetchone()[0]
        if found:
            conn.executescript(
                "DROP TRIGGER IF EXISTS webhook_run_created;"
                "DROP TRIGGER IF EXISTS webhook_run_changed;"
                "DROP TABLE IF EXISTS webhook_transitions;"
            )
    except sqlite3.Error:
        # The store reports a database it cannot use; this is only housekeeping.
        logger.warning("could not remove the webhook triggers of %s", path, exc_info=True)
    finally:
        conn.close()


class SqliteOutbox:
    """An :class:`~toolchest_wes.store.outbox.Outbox` on the embedded store's file.

    Each thread has its own connection; every write is a ``BEGIN IMMEDIATE`` transaction, as
    in the embedded store, so several processes on one file take turns.
    """

    records_creations = True

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
            enable_wal(conn, self._path, _BUSY_TIMEOUT_S)
            # The store's own schema first: the triggers need its runs table.
            ensure_schema(conn, self._path)
            conn.executescript(_SCHEMA + _TRIGGERS)
            _add_run_column(conn)
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

    def record_created(self, run_id: str, state: State, at: float) -> bool:
        """Record the event of the run's creation, unless one is recorded already.

        The trigger records it with the run; this records one only for a run whose hooks
        were kept in a file without the store's runs (as in tests).
        """
        conn = self._conn()
        with transaction(conn):
            row = conn.execute(
                "SELECT sequence FROM webhook_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            logged = conn.execute(
                "SELECT 1 FROM webhook_transitions WHERE run_id = ? LIMIT 1", (run_id,)
            ).fetchone()
            if row is None or row[0] or logged is not None:
                return False
            conn.execute(
                "INSERT INTO webhook_transitions (run_id, state, previous, at) "
                "VALUES (?, ?, NULL, ?)",
                (run_id, state.value, at),
            )
        return True

    def drain(self, build: Builder, limit: int = 100) -> int:
        """Turn the transitions the triggers wrote into deliveries, in one transaction."""
        conn = self._conn()
        with transaction(conn):
            rows = conn.execute(
                "SELECT seq, run_id, state, previous, at FROM webhook_transitions "
                "ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            for seq, run_id, state, previous, at in rows:
                before = State(previous) if previous else None
                _record(conn, run_id, State(state), before, at, build)
                conn.execute("DELETE FROM webhook_transitions WHERE seq = ?", (seq,))
        return len(rows)

    def claim_due(self, now: float, limit: int, hold_s: float) -> list[Delivery]:
        """Due deliveries in the order they were queued, held for ``hold_s``; one that waits
        for an earlier one of its run to the same URL is not due."""
        conn = self._conn()
        with transaction(conn):
            rows = conn.execute(
                "SELECT delivery_id, event_id, url, subscriber, body, first_at, attempts "
                "FROM webhook_deliveries AS d WHERE due_at <= ? AND NOT EXISTS ("
                "SELECT 1 FROM webhook_deliveries AS e "
                "WHERE e.run_id = d.run_id AND e.url = d.url AND e.seq < d.seq"
                ") ORDER BY seq LIMIT ?",
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


def _add_run_column(conn: sqlite3.Connection) -> None:
    """Give a file from before deliveries were kept in order per run their run column."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(webhook_deliveries)")}
    if "run_id" not in columns:
        with transaction(conn):
            columns = {row[1] for row in conn.execute("PRAGMA table_info(webhook_deliveries)")}
            if "run_id" not in columns:
                conn.execute("ALTER TABLE webhook_deliveries ADD COLUMN run_id TEXT")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_run ON webhook_deliveries (run_id, url, seq)"
    )


def _record(
    conn: sqlite3.Connection,
    run_id: str,
    state: State,
    previous: State | None,
    at: float,
    build: Builder,
) -> int:
    """Queue the deliveries of one event, inside the caller's transaction.

    ``previous`` is the state the trigger saw (``None`` at creation).
    """
    row = conn.execute(
        "SELECT owner, base_url, notify_url, notify_on, sequence "
        "FROM webhook_runs WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        return 0
    hooks = RunHooks(run_id, row[0], row[1], row[2], row[3], previous, row[4])
    deliveries = build(hooks, state, at)
    if state in TERMINAL_STATES:
        # A terminal state is final: the run has no more events, so its hooks can go.
        conn.execute("DELETE FROM webhook_runs WHERE run_id = ?", (run_id,))
    else:
        conn.execute(
            "UPDATE webhook_runs SET last_state = ?, sequence = sequence + 1 WHERE run_id = ?",
            (state.value, run_id),
        )
    conn.executemany(
        "INSERT INTO webhook_deliveries (delivery_id, event_id, url, subscriber, body, "
        "first_at, attempts, due_at, run_id) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
        [
            (d.delivery_id, d.event_id, d.url, d.subscriber, d.body, d.first_at, 0.0, run_id)
            for d in deliveries
        ],
    )
    return len(deliveries)
