"""The embedded state store: one SQLite file shared by every process on the machine.

A file rather than an in-process dict because gunicorn runs several worker processes and each
would see its own dict. The file is in WAL mode, so status polls (readers) never wait for a
writer. Every write is either one statement or a ``BEGIN IMMEDIATE`` transaction: a writer that
meets another process's write lock waits out the busy timeout instead of failing with a stale
snapshot, which is what a deferred read-then-write transaction would do.

Each thread gets its own connection. ``:memory:`` is for unit tests only: every ``:memory:``
connection is a separate database, so that mode shares one connection behind a lock.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toolchest_wes.models import ACTIVE_STATES, LEASED_STATES, TERMINAL_STATES, RunSummary, State
from toolchest_wes.store import _page_token
from toolchest_wes.store._sqlite_schema import (
    RECORD_COLUMNS,
    RECORD_FIELDS,
    SCHEMA_VERSION,
    dumps_or_none,
    enable_wal,
    ensure_schema,
    from_row,
    to_row,
    transaction,
)
from toolchest_wes.store._state_waits import StateWaits
from toolchest_wes.store.base import (
    IdempotencyClaim,
    IdempotencyKeyReusedError,
    RunExistsError,
    RunPage,
    RunRecord,
    RunUpdate,
    StoreUnavailableError,
    iso_time,
)

__all__ = ["MEMORY", "SCHEMA_VERSION", "EmbeddedStateStore"]

logger = logging.getLogger(__name__)

#: The path that selects a private in-memory database.
MEMORY = ":memory:"

_BUSY_TIMEOUT_S = 10.0
_MAX_SEQ = _page_token.MAX_SEQ
# json_insert() takes at most 127 arguments (SQLITE_MAX_FUNCTION_ARG), two per appended line.
_LOG_LINES_PER_CALL = 60
_APPEND_ARGS = ", '$[#]', ?"
# Primary result codes that mean "the database cannot serve us now", as opposed to a bug in a
# statement: BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
_UNAVAILABLE_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
# The unary + keeps the planner off the state index: the walk must be the partial index on
# end_time, in order, whatever the statistics say.
_OUTPUTS_DUE_SQL = (
    "SELECT run_id FROM runs WHERE outputs_removed_at IS NULL AND end_time < ? "
    f"AND +state IN ({', '.join(repr(s.value) for s in sorted(TERMINAL_STATES))}) "
    "ORDER BY end_time LIMIT ?"
)

# Connections a forked child inherited. SQLite says a connection must not be used across
# fork(), and closing one is a use: it can act on lock state that belongs to the parent. So the
# child keeps them referenced and never touches them.
_INHERITED: list[sqlite3.Connection] = []


class EmbeddedStateStore:
    """A :class:`~toolchest_wes.store.base.StateStore` on a SQLite file.

    Nothing is opened until the first call; the first connection creates the file and schema.
    Several instances, in one process or many, may share a file. ``close()`` releases every
    connection; the store reopens on next use (a ``:memory:`` store then starts empty).

    Page tokens carry an HMAC under a key kept in the database, so a token from another
    database, or an edited one, raises ``InvalidPageTokenError``. A token holds only a position,
    not the filters: pass the same ``state`` and ``tag`` with it as with the first page.
    ``page_token=""`` means the first page, because clients send ``page_token=`` empty.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = _BUSY_TIMEOUT_S) -> None:
        self._path = os.fspath(path)
        self._memory = self._path == MEMORY
        self._busy_timeout_s = busy_timeout_s
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._local = threading.local()
        self._generation = 0
        self._conns: dict[threading.Thread, sqlite3.Connection] = {}
        # Connections inside a `_connection` block (with its depth: the block may nest), and
        # those of them that close() found in use, which their own thread closes on leaving.
        self._busy: dict[sqlite3.Connection, int] = {}
        self._closing: set[sqlite3.Connection] = set()
        self._shared: sqlite3.Connection | None = None
        self._token_key = b""
        # Another process (an API worker of the same server) may commit the change a
        # request waits for; SQLite's data_version tells this process of it.
        self._waits = StateWaits(version=None if self._memory else self._data_version)

    def __repr__(self) -> str:
        return f"EmbeddedStateStore({self._path!r})"

    @property
    def path(self) -> str:
        """The database file, or ``":memory:"``."""
        return self._path

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, record: RunRecord, *, claim: IdempotencyClaim | None = None) -> str:
        """Store a run, its tags and its idempotency key in one transaction.

        ``RunExistsError`` if the id is taken; see ``StateStore.create_run`` for ``claim``.
        """
        with self._connection() as conn, transaction(conn):
            if claim is not None:
                held = _held_claim(conn, record.owner, claim.key)
                if held is not None:
                    if held[0] != claim.fingerprint:
                        raise IdempotencyKeyReusedError(held[1])
                    return held[1]
            cur = conn.execute(
                f"INSERT INTO runs ({RECORD_COLUMNS}) "
                f"VALUES ({', '.join('?' * len(RECORD_FIELDS))}) ON CONFLICT (run_id) DO NOTHING",
                to_row(record),
            )
            if cur.rowcount != 1:
                raise RunExistsError(f"run {record.run_id} already exists")
            seq = cur.lastrowid
            conn.executemany(
                "INSERT INTO run_tags (run_id, key, value, seq) VALUES (?, ?, ?, ?)",
                [(record.run_id, key, value, seq) for key, value in record.request.tags.items()],
            )
            if claim is not None:
                _store_claim(conn, record, claim)
        return record.run_id

    def find_claim(self, owner: str | None, key: str) -> tuple[str, str] | None:
        """The fingerprint and run of ``owner``'s unexpired idempotency key, or ``None``."""
        with self._connection() as conn:
            return _held_claim(conn, owner, key)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The whole record, or ``None``."""
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else from_row(row)

    def get_state(self, run_id: str) -> State | None:
        """Only the state, or ``None``."""
        with self._connection() as conn:
            row = conn.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else State(row[0])

    def wait_for_state(
        self, run_id: str, done: Callable[[State | None], bool], timeout_s: float
    ) -> State | None:
        """See ``StateStore.wait_for_state``: woken by the transitions of this object, and
        within milliseconds by those other processes commit to the file."""
        return self._waits.wait(run_id, lambda: self.get_state(run_id), done, timeout_s)

    def list_runs(
        self,
        *,
        page_size: int,
        page_token: str | None = None,
        states: frozenset[State] | None = None,
        tag: tuple[str, str] | None = None,
        owner: str | None = None,
    ) -> RunPage:
        """Runs newest first; see the class docstring for the token rules."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        chosen = None if states is None else sorted(State(s).value for s in states)
        if chosen is not None and len(chosen) == len(State):
            chosen = None
        with self._connection() as conn:
            bound = _page_token.decode(self._token_key, page_token) if page_token else _MAX_SEQ
            if chosen == []:
                return RunPage(runs=[], next_page_token=None)
            # The extra row only tells whether another page exists.
            limit = min(page_size, _MAX_SEQ - 1) + 1
            sql, params = _list_query(bound, limit, states=chosen, tag=tag, owner=owner)
            rows = conn.execute(sql, params).fetchall()
            token: str | None = None
            if len(rows) > page_size:
                token = _page_token.encode(self._token_key, rows[page_size - 1][0])
        runs = [
            RunSummary(
                run_id=run_id,
                state=State(run_state),
                start_time=start_time,
                end_time=end_time,
                tags=json.loads(tags) if tags else {},
            )
            for _, run_id, run_state, start_time, end_time, tags in rows[:page_size]
        ]
        return RunPage(runs=runs, next_page_token=token)

    def transition(
        self,
        run_id: str,
        to: State,
        *,
        allowed_from: frozenset[State],
        update: RunUpdate | None = None,
        lease_ttl_s: float | None = None,
    ) -> bool:
        """Compare-and-set the state in one ``UPDATE``, with ``update`` and the lease in the
        same statement."""
        if not allowed_from:
            return False
        assignments, params = _assignments(update)
        if lease_ttl_s and lease_ttl_s > 0 and not State(to).is_terminal:
            assignments.append("lease_expires = ?")
            params.append(time.time() + lease_ttl_s)
        sources = sorted(State(s).value for s in allowed_from)
        sql = (
            f"UPDATE runs SET {', '.join(['state = ?', *assignments])} "
            f"WHERE run_id = ? AND state IN ({', '.join('?' * len(sources))})"
        )
        with self._connection() as conn:
            changed = conn.execute(sql, [State(to).value, *params, run_id, *sources]).rowcount
        logger.debug("transition run_id=%s to=%s applied=%s", run_id, to, changed == 1)
        if changed == 1:
            self._waits.changed(run_id)
        return bool(changed == 1)

    def update_run(self, run_id: str, update: RunUpdate) -> None:
        """Change fields other than the state; an unknown run is ignored."""
        assignments, params = _assignments(update)
        if not assignments:
            return
        with self._connection() as conn:
            conn.execute(
                f"UPDATE runs SET {', '.join(assignments)} WHERE run_id = ?", [*params, run_id]
            )

    def count_by_state(self) -> dict[State, int]:
        """How many runs are in each state that has any: the few rows of ``state_counts``."""
        with self._connection() as conn:
            rows = conn.execute("SELECT state, n FROM state_counts WHERE n > 0").fetchall()
        return {State(state): count for state, count in rows}

    def count_active(self, owner: str | None = None) -> int:
        """Unfinished runs of ``owner`` (everyone's for ``None``): one count on the state index.

        The state index, not the owner one: active runs are few, a user's runs may be many.
        """
        active = sorted(s.value for s in ACTIVE_STATES)
        sql = (
            "SELECT COUNT(*) FROM runs INDEXED BY ix_runs_state_seq "
            f"WHERE state IN ({', '.join('?' * len(active))})"
        )
        params: list[Any] = list(active)
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        with self._connection() as conn:
            (count,) = conn.execute(sql, params).fetchone()
        return int(count)

    def list_active(self) -> list[RunRecord]:
        """Every run not in a terminal state, oldest (first stored) first."""
        active = sorted(s.value for s in ACTIVE_STATES)
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM runs "
                f"WHERE state IN ({', '.join('?' * len(active))}) ORDER BY seq",
                active,
            ).fetchall()
        return [from_row(row) for row in rows]

    # -- leases ------------------------------------------------------------------------------

    def touch_lease(self, run_id: str, ttl_s: float) -> None:
        """Extend the lease to ``ttl_s`` from now (``ttl_s <= 0`` expires it at once)."""
        with self._connection() as conn:
            conn.execute(
                "UPDATE runs SET lease_expires = ? WHERE run_id = ?", (time.time() + ttl_s, run_id)
            )

    def expired_leases(self) -> list[str]:
        """Runs in INITIALIZING, RUNNING or CANCELING whose lease was set and has run out.

        A run that never got a lease is not reported: QUEUED runs have none by design, and a
        run that started without one predates leases or is in the hands of a caller that
        does not use them.
        """
        leased = sorted(s.value for s in LEASED_STATES)
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT run_id FROM runs WHERE state IN ({', '.join('?' * len(leased))}) "
                "AND lease_expires < ? ORDER BY seq",
                [*leased, time.time()],
            ).fetchall()
        return [run_id for (run_id,) in rows]

    # -- ownership ---------------------------------------------------------------------------

    def get_owner(self, run_id: str) -> str | None:
        """The run's owner, or ``None`` (unknown run, or a run without owner)."""
        with self._connection() as conn:
            row = conn.execute("SELECT owner FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else row[0]

    # -- retention and deletion --------------------------------------------------------------

    def outputs_due(self, ended_before_s: float, *, limit: int) -> list[str]:
        """Terminal runs that ended before ``now - ended_before_s`` with outputs still kept.

        One range scan of the partial index on ``end_time``; ISO 8601 times in one format
        sort as text in time order.
        """
        cutoff = iso_time(time.time() - ended_before_s)
        with self._connection() as conn:
            rows = conn.execute(_OUTPUTS_DUE_SQL, [cutoff, max(0, limit)]).fetchall()
        return [run_id for (run_id,) in rows]

    def mark_outputs_removed(self, run_id: str, removed_at: str) -> bool:
        """Set ``outputs_removed_at``, which also takes the run out of the sweep's index."""
        with self._connection() as conn:
            changed = conn.execute(
                "UPDATE runs SET outputs_removed_at = ? WHERE run_id = ?", (removed_at, run_id)
            ).rowcount
        return bool(changed == 1)

    def delete_run(self, run_id: str) -> State | None:
        """Delete the run and its tags in one transaction, if its state is terminal."""
        with self._connection() as conn, transaction(conn):
            row = conn.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            state = State(row[0])
            if state.is_terminal:
                conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
                conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        logger.debug("delete run_id=%s state=%s deleted=%s", run_id, state, state.is_terminal)
        if state.is_terminal:
            self._waits.changed(run_id)
        return state

    # -- health and shutdown -----------------------------------------------------------------

    def ping(self) -> None:
        """Run ``SELECT 1``; ``StoreUnavailableError`` on any SQLite error."""
        try:
            with self._connection() as conn:
                conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"state database {self._path}: {exc}") from exc

    def close(self) -> None:
        """Close every connection of this store, from all threads; later calls reopen them.

        A connection that another thread is using at that moment is closed by that thread
        when its call ends: closing it under a statement that runs without the GIL would free
        what the statement is still reading (a crash of the process, not an error).
        """
        self._check_fork()
        self._waits.stop_watching()
        with self._lock:
            self._generation += 1
            conns = list(self._conns.values())
            self._conns.clear()
            if self._shared is not None:
                conns.append(self._shared)
                self._shared = None
            idle = [conn for conn in conns if conn not in self._busy]
            self._closing.update(conn for conn in conns if conn in self._busy)
        for conn in idle:
            conn.close()

    def _data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on this thread's connection: it changes whenever
        another connection, of this process or another, has committed."""
        with self._connection() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        self._check_fork()
        try:
            if self._memory:
                with self._lock:
                    if self._shared is None:
                        self._shared = self._open()
                    yield self._shared
            else:
                conn = self._check_out()
                try:
                    yield conn
                finally:
                    self._check_in(conn)
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", -1) & 0xFF in _UNAVAILABLE_CODES:
                raise StoreUnavailableError(f"state database {self._path}: {exc}") from exc
            raise

    def _check_out(self) -> sqlite3.Connection:
        """This thread's connection (opened if it has none since the last close()), marked
        in use until ``_check_in``."""
        local = self._local
        with self._lock:
            conn: sqlite3.Connection | None = getattr(local, "conn", None)
            if conn is not None and local.generation == self._generation:
                self._busy[conn] = self._busy.get(conn, 0) + 1
                return conn
        conn = self._open()
        with self._lock:
            # Threads come and go (a gthread pool recycles them); their connections would
            # otherwise stay open until close().
            for thread in [t for t in self._conns if not t.is_alive()]:
                self._conns.pop(thread).close()
            self._conns[threading.current_thread()] = conn
            local.conn = conn
            local.generation = self._generation
            self._busy[conn] = 1
        return conn

    def _check_in(self, conn: sqlite3.Connection) -> None:
        """End a use of ``conn``; close it if close() came meanwhile and this was the last."""
        with self._lock:
            depth = self._busy.pop(conn, 1) - 1
            if depth:
                self._busy[conn] = depth
                return
            if conn not in self._closing:
                return
            self._closing.discard(conn)
        conn.close()

    def _open(self) -> sqlite3.Connection:
        # check_same_thread=False only so that close() can close other threads' connections;
        # each connection is otherwise used by its own thread (or under the lock for :memory:).
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            if not self._memory:
                # NORMAL is crash-safe in WAL mode; a power loss may drop the last commits.
                conn.execute("PRAGMA synchronous = NORMAL")
                enable_wal(conn, self._path, self._busy_timeout_s)
            self._token_key = ensure_schema(conn, self._path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_fork(self) -> None:
        if self._pid == os.getpid():
            return
        # A lock held by a parent thread at fork time would never be released here.
        self._lock = threading.RLock()
        self._local = threading.local()
        _INHERITED.extend(self._conns.values())
        _INHERITED.extend(self._closing)
        self._conns = {}
        self._busy = {}
        self._closing = set()
        self._pid = os.getpid()
        # A :memory: store keeps its connection: the child owns a private copy of that memory.

    # -- page tokens -------------------------------------------------------------------------

    def _mac(self, payload: str) -> str:
        """The MAC that makes ``payload`` a token of this database (tests forge with it)."""
        return _page_token.sign(self._token_key, payload)


def _claim_scope(owner: str | None) -> str:
    return "-" if owner is None else f"u:{owner}"


def _held_claim(conn: sqlite3.Connection, owner: str | None, key: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT fingerprint, run_id FROM idempotency_keys "
        "WHERE scope = ? AND key = ? AND expires_at > ?",
        (_claim_scope(owner), key, time.time()),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def _store_claim(conn: sqlite3.Connection, record: RunRecord, claim: IdempotencyClaim) -> None:
    now = time.time()
    # A bounded batch per create keeps the table to the keys of one window without a sweep of
    # its own: keys expire about as fast as new ones arrive.
    conn.execute(
        "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys "
        "WHERE expires_at <= ? ORDER BY expires_at LIMIT 16)",
        (now,),
    )
    conn.execute(
        "INSERT OR REPLACE INTO idempotency_keys (scope, key, fingerprint, run_id, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            _claim_scope(record.owner),
            claim.key,
            claim.fingerprint,
            record.run_id,
            now + claim.ttl_s,
        ),
    )


def _list_query(
    bound: int,
    limit: int,
    *,
    states: list[str] | None,
    tag: tuple[str, str] | None,
    owner: str | None,
) -> tuple[str, list[Any]]:
    """The listing's SQL and parameters: up to ``limit`` runs below seq ``bound``, newest first.

    Every form walks an index in seq order and stops after ``limit`` matches, never sorting
    the whole history.
    """
    columns = (
        "r.seq, r.run_id, r.state, r.start_time, r.end_time, json_extract(r.request, '$.tags')"
    )
    owner_sql, owner_params = ("", []) if owner is None else (" AND r.owner = ?", [owner])
    if tag is not None:
        # CROSS JOIN fixes the join order: walk the tag index in seq order, look up each run.
        # Ordering by t.seq, not the equal r.seq, is what lets the planner skip the sort.
        sql = (
            f"SELECT {columns} FROM run_tags AS t CROSS JOIN runs AS r ON r.seq = t.seq "
            "WHERE t.key = ? AND t.value = ? AND t.seq < ?"
        )
        params: list[Any] = [*tag, bound]
        if states is not None:
            sql += f" AND r.state IN ({', '.join('?' * len(states))})"
            params += states
        return f"{sql}{owner_sql} ORDER BY t.seq DESC LIMIT ?", [*params, *owner_params, limit]
    if states is None or len(states) == 1:
        state_sql = "" if states is None else " AND r.state = ?"
        sql = f"SELECT {columns} FROM runs AS r WHERE r.seq < ?{state_sql}{owner_sql}"
        return f"{sql} ORDER BY r.seq DESC LIMIT ?", [bound, *(states or []), *owner_params, limit]
    # One walk of an index per state, each stopping after `limit` rows: the newest `limit` runs
    # of the union are among them, and only those few rows are sorted. An IN list would make
    # SQLite sort every run in those states.
    part = (
        f"SELECT * FROM (SELECT {columns} FROM runs AS r "
        f"WHERE r.state = ? AND r.seq < ?{owner_sql} ORDER BY r.seq DESC LIMIT ?)"
    )
    params = []
    for state in states:
        params += [state, bound, *owner_params, limit]
    sql = " UNION ALL ".join([part] * len(states))
    return f"{sql} ORDER BY 1 DESC LIMIT ?", [*params, limit]


def _assignments(update: RunUpdate | None) -> tuple[list[str], list[Any]]:
    if update is None:
        return [], []
    assignments: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("start_time", update.start_time),
        ("end_time", update.end_time),
        ("exit_code", update.exit_code),
        ("cmd", dumps_or_none(update.cmd)),
        ("outputs", dumps_or_none(update.outputs)),
        ("output_files", dumps_or_none(update.output_files)),
    ):
        if value is not None:
            assignments.append(f"{column} = ?")
            params.append(value)
    lines = list(update.append_system_logs)
    if lines:
        # Appending inside the UPDATE keeps it one atomic statement; '$[#]' is the array end.
        expr = "system_logs"
        for start in range(0, len(lines), _LOG_LINES_PER_CALL):
            chunk = lines[start : start + _LOG_LINES_PER_CALL]
            expr = f"json_insert({expr}{_APPEND_ARGS * len(chunk)})"
            params += chunk
        assignments.append(f"system_logs = {expr}")
    return assignments, params
