"""The embedded store's SQLite schema: tables, creation and upgrade, and row mapping.

``ensure_schema`` brings a new connection's database to ``SCHEMA_VERSION`` (kept in
``PRAGMA user_version``) and returns the page-token key stored with it. ``to_row`` and
``from_row`` map a ``RunRecord`` to the ``runs`` columns in ``RECORD_FIELDS`` order and back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store import _page_token
from toolchest_wes.store.base import RunRecord, StoreError

__all__ = [
    "RECORD_COLUMNS",
    "RECORD_FIELDS",
    "SCHEMA_VERSION",
    "dumps_or_none",
    "enable_wal",
    "ensure_schema",
    "from_row",
    "to_row",
    "transaction",
]

logger = logging.getLogger(__name__)

#: The ``PRAGMA user_version`` this code writes and reads; bump it with a migration.
SCHEMA_VERSION = 4
# Version 2 adds ix_runs_owner_seq (in _SCHEMA: its statements are IF NOT EXISTS and run again
# on every upgrade) and the outputs_removed_at column with its index (in _MIGRATIONS).
# Version 3 adds the idempotency_keys table (in _MIGRATIONS).
# Version 4 adds the state_counts table and the triggers that keep it (in _MIGRATIONS).

_SQLITE_BUSY = 5

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT UNIQUE NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        request TEXT NOT NULL,
        engine_args TEXT NOT NULL DEFAULT '[]',
        start_time TEXT,
        end_time TEXT,
        exit_code INTEGER,
        cmd TEXT,
        system_logs TEXT NOT NULL DEFAULT '[]',
        outputs TEXT,
        output_files TEXT,
        owner TEXT,
        lease_expires REAL
    )""",
    "CREATE INDEX IF NOT EXISTS ix_runs_state_seq ON runs (state, seq)",
    # seq is copied here so that a tag-filtered page is one range scan of the index, already
    # in listing order, with a rowid lookup per returned run.
    """CREATE TABLE IF NOT EXISTS run_tags (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS ix_run_tags_key_value_seq ON run_tags (key, value, seq)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # A user's listing is one range scan of this index, however many users there are.
    "CREATE INDEX IF NOT EXISTS ix_runs_owner_seq ON runs (owner, seq)",
)

#: Statements that bring a database from the version before each key to that version. A new
#: database gets ``_SCHEMA`` (version 1) and then every migration, so both paths meet.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE runs ADD COLUMN outputs_removed_at TEXT",
        # Only runs whose outputs are still kept, by end time: what the retention sweep
        # reads. A run leaves it when its outputs are removed, so the index stays small.
        "CREATE INDEX IF NOT EXISTS ix_runs_outputs_kept ON runs (end_time) "
        "WHERE outputs_removed_at IS NULL",
    ),
    3: (
        # The Idempotency-Key of a POST /runs, per user ("-" without one, else "u:<user>"),
        # and the run it stands for until expires_at (seconds since the epoch).
        """CREATE TABLE IF NOT EXISTS idempotency_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            run_id TEXT NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        )""",
        # Expired keys are removed a few at a time by each create that claims a key.
        "CREATE INDEX IF NOT EXISTS ix_idempotency_keys_expires ON idempotency_keys (expires_at)",
    ),
    # How many runs are in each state, kept by triggers on every write to runs, so that
    # service-info's counts are a read of a few rows instead of a scan of the whole history.
    # Triggers rather than code in each write: no statement that changes a state can miss it.
    4: (
        "CREATE TABLE IF NOT EXISTS state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) "
        "WITHOUT ROWID",
        "INSERT OR REPLACE INTO state_counts (state, n) "
        "SELECT state, COUNT(*) FROM runs GROUP BY state",
        """CREATE TRIGGER IF NOT EXISTS tr_runs_count_insert AFTER INSERT ON runs BEGIN
            INSERT OR IGNORE INTO state_counts (state, n) VALUES (NEW.state, 0);
            UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
        END""",
        """CREATE TRIGGER IF NOT EXISTS tr_runs_count_update AFTER UPDATE OF state ON runs
        WHEN OLD.state IS NOT NEW.state BEGIN
            UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
            INSERT OR IGNORE INTO state_counts (state, n) VALUES (NEW.state, 0);
            UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
        END""",
        """CREATE TRIGGER IF NOT EXISTS tr_runs_count_delete AFTER DELETE ON runs BEGIN
            UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
        END""",
    ),
}

#: RunRecord fields, which are also the column names.
RECORD_FIELDS = (
    "run_id",
    "state",
    "request",
    "created_at",
    "engine_args",
    "start_time",
    "end_time",
    "exit_code",
    "cmd",
    "system_logs",
    "outputs",
    "output_files",
    "owner",
    "outputs_removed_at",
)
RECORD_COLUMNS = ", ".join(RECORD_FIELDS)
_JSON_FIELDS = frozenset({"engine_args", "cmd", "system_logs", "outputs", "output_files"})


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction, committed unless the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def enable_wal(conn: sqlite3.Connection, path: str, busy_timeout_s: float) -> None:
    """Switch the database file to WAL mode, retrying while another process holds it."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            break
        except sqlite3.OperationalError as exc:
            # Switching a new file to WAL takes an exclusive lock without calling the busy
            # handler, so processes starting together on a new file must retry themselves.
            if exc.sqlite_errorcode & 0xFF != _SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    if mode != "wal":
        logger.warning("state database not in WAL mode path=%s mode=%s", path, mode)


def ensure_schema(conn: sqlite3.Connection, path: str) -> bytes:
    """Create the schema if ``conn``'s database has none; return its page-token key.

    ``StoreError`` if the database has a newer schema than this code knows.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        with transaction(conn):
            # Read again under the write lock: another process may have just created it.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"state database {path} has schema version {version}; "
                    f"this toolchest-wes supports up to {SCHEMA_VERSION}"
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    conn.execute(statement)
                for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target]:
                        conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('page_token_key', ?)",
                    (_page_token.new_key(),),
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                logger.info(
                    "state store schema ready path=%s from_version=%s version=%s",
                    path,
                    version,
                    SCHEMA_VERSION,
                )
    (key,) = conn.execute("SELECT value FROM meta WHERE key = 'page_token_key'").fetchone()
    return bytes.fromhex(key)


def to_row(record: RunRecord) -> list[Any]:
    """``record``'s column values, in ``RECORD_FIELDS`` order."""
    row: list[Any] = []
    for name in RECORD_FIELDS:
        value = getattr(record, name)
        if name == "state":
            value = State(value).value
        elif name == "request":
            value = _dumps(value.model_dump(mode="json"))
        elif name in _JSON_FIELDS:
            value = dumps_or_none(value)
        row.append(value)
    return row


def from_row(row: tuple[Any, ...]) -> RunRecord:
    """The record whose ``RECORD_FIELDS`` columns are ``row``."""
    fields = dict(zip(RECORD_FIELDS, row, strict=True))
    for name in _JSON_FIELDS:
        fields[name] = _loads_or_none(fields[name])
    fields["state"] = State(fields["state"])
    fields["request"] = RunRequest.model_validate_json(fields["request"])
    return RunRecord(**fields)


def dumps_or_none(value: Any) -> str | None:
    """Compact JSON for a JSON column, or ``None`` (SQL NULL) for ``None``."""
    return None if value is None else _dumps(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
