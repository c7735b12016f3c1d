"""The Redis state store: one hash per run, sorted-set indexes, transitions in Lua.

Every write that touches more than one key is a Lua script (``_redis_scripts``), so it is
atomic and costs one round trip; reads of a single key are plain commands. Key layout, all
under the prefix ``p`` (default ``toolchest-wes``):

========================== ====== ==============================================================
``p:run:<run_id>``         HASH   the record: state, request, tags, created_at, engine_args,
                                  start_time, end_time, exit_code, cmd, system_logs, outputs,
                                  output_files, owner, seq (JSON for structured values; a field
                                  that is ``None`` is absent)
``p:seq``                  STRING the last ``seq`` handed out (``INCR``); listings order by it
``p:runs``                 ZSET   every run id, scored by seq
``p:state:<STATE>``        ZSET   the runs in that state, scored by seq
``p:tag:<json [k, v]>``    ZSET   the runs tagged ``k=v``, scored by seq; JSON keeps any key
                                  and value apart unambiguously
``p:owner:<user>``         ZSET   the runs of one user, scored by seq (runs with an owner only)
``p:counts``               HASH   state -> number of runs, kept by the scripts (no scans)
``p:leases``               ZSET   run ids scored by lease expiry (ms, Redis server clock)
``p:lease:<run_id>``       STRING present while the lease is fresh (``PX`` TTL)
``p:idem:<json [u, k]>``   HASH   idempotency key ``k`` of user ``u`` (``null`` without
                                  authentication): ``fp`` the request's fingerprint, ``run``
                                  the run it stands for; expires with the key's window
``p:token-key``            STRING the page-token HMAC key (hex), created once with ``SET NX``
``p:outputs-kept``         ZSET   terminal runs whose outputs are still kept, scored by end
                                  time (ms, Redis server clock): the retention sweep's index
``p:outputs-kept-indexed`` STRING set once the runs that ended before that index existed
                                  were added to it
``p:webhooks:...``                the webhook outbox (``redis_outbox``); the transition script
                                  appends each event of a run with webhooks to its log
========================== ====== ==============================================================

Listing semantics match the embedded store: newest first by ``seq``, keyset pagination with
the same signed tokens (``_page_token``), ``""`` meaning the first page. A page is one script
call that walks the index from the token's position, so it costs O(page size) however many
runs are stored. Several states are walked as one set, their ZSETs merged by seq a slice at
a time (never a ``ZUNIONSTORE`` of the history). With two or more of the states, ``tag`` and
``owner`` the smallest set is walked and each entry checked against the others, which costs
O(entries walked), up to the size of that smallest set when few runs match all; one script
call walks at most ``_SCAN_SLICE`` entries, so that it never blocks the server for long, and a
sparse walk takes several calls.

Not for Redis Cluster: the transition script derives index key names from the run's current
state, which is known only inside the script.
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.retry import Retry

from toolchest_wes.models import ACTIVE_STATES, LEASED_STATES, TERMINAL_STATES, RunSummary, State
from toolchest_wes.store import _page_token, _redis_scripts
from toolchest_wes.store._redis_schema import dumps, flatten, from_hash, to_hash, update_args
from toolchest_wes.store._redis_state_cache import DELETED, StateCache
from toolchest_wes.store._state_waits import StateWaits
from toolchest_wes.store.base import (
    IdempotencyClaim,
    IdempotencyKeyReusedError,
    RunExistsError,
    RunPage,
    RunRecord,
    RunUpdate,
    StoreUnavailableError,
)
from toolchest_wes.store.redis_outbox import hooks_key, log_key

__all__ = ["DEFAULT_PREFIX", "REDIS_TIMEOUT_S", "RedisStateStore", "connect"]

logger = logging.getLogger(__name__)

#: The key prefix when none is given.
DEFAULT_PREFIX = "toolchest-wes"
#: Connect and read timeout of every Redis connection of the server, so that a Redis that
#: hangs (frozen, or a network that drops packets) costs a request at most this long before
#: it answers 503, well within what an HTTP client waits. Each command here is small (one
#: run, one page); a ``socket_timeout`` in the URL's query string overrides it.
REDIS_TIMEOUT_S = 2.0


#: Connections one client's pool may open (redis-server accepts 10,000 clients by default).
_MAX_CONNECTIONS = 10_000


def connect(url: str, *, decode_responses: bool = False, **options: Any) -> redis.Redis:
    """A client for ``url`` with the server's timeouts and no retries (see the store).

    Options in the URL's query string win over these defaults, as in redis-py.
    """
    timeout = options.setdefault("socket_timeout", REDIS_TIMEOUT_S)
    # redis-py 8 caps a pool at 100 connections and fails the 101st at once ("Too many
    # connections"); a worker with a thousand runs needs as many as it has threads. Connections
    # are still opened only when needed.
    options.setdefault("max_connections", _MAX_CONNECTIONS)
    options.setdefault("socket_connect_timeout", timeout or REDIS_TIMEOUT_S)
    return redis.Redis.from_url(
        url, decode_responses=decode_responses, retry=Retry(NoBackoff(), 0), **options
    )


# The state groups as the values the Lua scripts and the counts hash take, in a fixed order.
_ACTIVE_VALUES = sorted(s.value for s in ACTIVE_STATES)
_TERMINAL_VALUES = sorted(s.value for s in TERMINAL_STATES)
_LEASED_VALUES = sorted(s.value for s in LEASED_STATES)
#: Index entries one script call of a state-and-tag listing walks at most.
_SCAN_SLICE = 1000
_SUMMARY_WIDTH = 6
# Errors that mean "Redis cannot serve us now" rather than a bug in a command: no connection
# (including LOADING after a restart), a timeout, a replica that a failover has not promoted
# yet, and a server out of memory.
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError, OutOfMemoryError)


class RedisStateStore:
    """A :class:`~toolchest_wes.store.base.StateStore` on Redis (see the module docstring).

    The constructor does no network I/O; redis-py connects on first use and reconnects after
    ``close()`` or a server restart. Several instances (processes, hosts) may share one prefix.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://...``; also names the
            server in error messages (without credentials) when ``client`` is given.
        prefix: Every key starts with ``prefix + ":"``.
        client: A client to use instead of one made from ``url``; it must have
            ``decode_responses=True``, and ``close()`` leaves it open (the caller owns it).
        socket_timeout_s: Connect and read timeout of the clients made from ``url``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        client: redis.Redis | None = None,
        socket_timeout_s: float = REDIS_TIMEOUT_S,
        cache_states: bool = False,
    ) -> None:
        if not prefix:
            raise ValueError("the Redis key prefix must not be empty")
        self._where = _describe(url)
        self._owns_client = client is None
        if client is None:
            # No retries: a command that timed out may have run, and running a create or a
            # transition twice would report a run we created as taken, or a won race as lost.
            # The pool already replaces connections a server restart broke before using them.
            client = connect(url, decode_responses=True, socket_timeout=socket_timeout_s)
        elif not client.get_encoder().decode_responses:
            raise ValueError("RedisStateStore needs a client with decode_responses=True")
        # Responses are str, not bytes (decode_responses=True); the casts below rely on it.
        self._client = client
        self._prefix = prefix
        self._token_key: bytes | None = None
        self._create = client.register_script(_redis_scripts.CREATE)
        self._transition = client.register_script(_redis_scripts.TRANSITION)
        self._update = client.register_script(_redis_scripts.UPDATE)
        self._touch_lease = client.register_script(_redis_scripts.TOUCH_LEASE)
        self._expired_leases = client.register_script(_redis_scripts.EXPIRED_LEASES)
        self._page = client.register_script(_redis_scripts.PAGE)
        self._outputs_due = client.register_script(_redis_scripts.OUTPUTS_DUE)
        self._mark_outputs_removed = client.register_script(_redis_scripts.MARK_OUTPUTS_REMOVED)
        self._delete = client.register_script(_redis_scripts.DELETE)
        self._kept_indexed = False
        self._waits = StateWaits()
        self._cache: StateCache | None = None
        if cache_states:
            self._cache = StateCache(
                # No read timeout: the subscriber waits for messages on this connection.
                lambda: connect(
                    url,
                    socket_timeout=None,
                    socket_connect_timeout=socket_timeout_s,
                    health_check_interval=5,
                ),
                self._key("events"),
                on_change=self._waits.changed,
            )
            self._cache.start()

    def __repr__(self) -> str:
        return f"RedisStateStore({self._where!r}, prefix={self._prefix!r})"

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, record: RunRecord, *, claim: IdempotencyClaim | None = None) -> str:
        """Store a run, index it and hold its idempotency key in one script.

        ``RunExistsError`` if the id is taken; see ``StateStore.create_run`` for ``claim``.
        """
        keys, args = self._create_call(record, claim)
        with self._errors():
            result = self._create(keys=keys, args=args)
        if isinstance(result, list):
            matches, held = int(result[0]), str(result[1])
            if not matches:
                raise IdempotencyKeyReusedError(held)
            return held
        if not result:
            raise RunExistsError(f"run {record.run_id} already exists")
        return record.run_id

    def _create_call(
        self, record: RunRecord, claim: IdempotencyClaim | None = None
    ) -> tuple[list[str], list[str | int]]:
        """The ``KEYS`` and ``ARGV`` of the create script for ``record`` (a bulk loader sends
        the same, pipelined)."""
        state = State(record.state).value
        keys = [
            self._run_key(record.run_id),
            self._key("seq"),
            self._key("counts"),
            self._claim_key(record.owner, claim.key if claim else ""),
            self._key("runs"),
            self._state_key(state),
            *(self._tag_key(k, v) for k, v in record.request.tags.items()),
            *([self._owner_key(record.owner)] if record.owner is not None else []),
        ]
        args: list[str | int] = [
            record.run_id,
            state,
            claim.fingerprint if claim else "",
            max(1, round(claim.ttl_s * 1000)) if claim else 0,
            *flatten(to_hash(record)),
        ]
        return keys, args

    def find_claim(self, owner: str | None, key: str) -> tuple[str, str] | None:
        """The fingerprint and run of ``owner``'s unexpired idempotency key (one ``HMGET``)."""
        with self._errors():
            fingerprint, run_id = cast(
                "list[str | None]", self._client.hmget(self._claim_key(owner, key), "fp", "run")
            )
        if fingerprint is None or run_id is None:
            return None
        return fingerprint, run_id

    def get_run(self, run_id: str) -> RunRecord | None:
        """The whole record (one ``HGETALL``), or ``None``."""
        with self._errors():
            fields = cast("dict[str, str]", self._client.hgetall(self._run_key(run_id)))
        return from_hash(run_id, fields) if fields else None

    def get_state(self, run_id: str) -> State | None:
        """Only the state: from the change-fed cache if enabled, else one ``HMGET``."""
        if self._cache is not None:
            cached = self._cache.get(run_id)
            if cached is not None:
                return cached
        with self._errors():
            raw, version = cast(
                "list[str | None]", self._client.hmget(self._run_key(run_id), "state", "v")
            )
        if raw is None:
            return None
        state = State(raw)
        if self._cache is not None:
            self._cache.offer(run_id, int(version or 0), state)
        return state

    def wait_for_state(
        self, run_id: str, done: Callable[[State | None], bool], timeout_s: float
    ) -> State | None:
        """See ``StateStore.wait_for_state``: woken by the change feed, where states are
        cached, and by the transitions of this object."""
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
        """Runs newest first; a token holds only a position, so repeat the filters with it."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        # The extra run only tells whether another page exists. No ZSET holds 2**32 members,
        # and up to 2**53 the count stays exact as a Lua number.
        want = min(page_size, 2**53 - 1) + 1
        state_keys: list[str] = []
        if states is not None and len(states) < len(State):
            state_keys = [self._state_key(value) for value in sorted(State(s) for s in states)]
        filters = []
        if tag is not None:
            filters.append(self._tag_key(*tag))
        if owner is not None:
            filters.append(self._owner_key(owner))
        with self._errors():
            bound = "+inf"
            if page_token:
                bound = f"({_page_token.decode(self._page_token_key(), page_token)}"
            if states is not None and not states:
                rows: list[Any] = []
            elif len(state_keys) + len(filters) >= 2:
                rows = self._walk(state_keys, filters, bound, want)
            else:
                walked = state_keys or filters or [self._key("runs")]
                rows = self._page(keys=walked, args=[self._key("run:"), bound, want, want])[2]
            token: str | None = None
            if len(rows) > page_size * _SUMMARY_WIDTH:
                last_seq = int(rows[(page_size - 1) * _SUMMARY_WIDTH + 1])
                token = _page_token.encode(self._page_token_key(), last_seq)
        runs = [
            RunSummary(
                run_id=run_id,
                state=State(run_state),
                start_time=start_time,
                end_time=end_time,
                tags=json.loads(tags) if tags else {},
            )
            for run_id, _, run_state, start_time, end_time, tags in _groups(
                rows[: page_size * _SUMMARY_WIDTH], _SUMMARY_WIDTH
            )
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
        """Compare-and-set the state, move the indexes, apply ``update``, set the lease
        (``lease_ttl_s``, for a non-terminal ``to``) and record the webhook event (a run with
        webhooks) in one script."""
        if not allowed_from:
            return False
        to = State(to)
        sources = sorted(State(s).value for s in allowed_from)
        keys = [
            self._run_key(run_id),
            self._key("counts"),
            self._key("leases"),
            self._key("lease", run_id),
            self._key("events"),
            self._key("outputs-kept"),
            hooks_key(self._prefix, run_id),
            log_key(self._prefix),
        ]
        args = [
            self._key("state:"),
            run_id,
            to.value,
            "1" if to.is_terminal else "0",
            len(sources),
            *sources,
            max(0, round((lease_ttl_s or 0) * 1000)),
            *update_args(update),
        ]
        with self._errors():
            version = int(self._transition(keys=keys, args=args))
        if version and self._cache is not None:
            self._cache.offer(run_id, version, to)
        logger.debug("transition run_id=%s to=%s version=%s", run_id, to, version)
        if version:
            self._waits.changed(run_id)
        return version > 0

    def update_run(self, run_id: str, update: RunUpdate) -> None:
        """Change fields other than the state; an unknown run is ignored."""
        args = update_args(update)
        if args == [0]:
            return
        with self._errors():
            self._update(keys=[self._run_key(run_id)], args=args)

    def count_by_state(self) -> dict[State, int]:
        """How many runs are in each state that has any: one ``HGETALL`` of the counts hash."""
        with self._errors():
            counts = cast("dict[str, str]", self._client.hgetall(self._key("counts")))
        return {State(state): int(n) for state, n in counts.items() if int(n) > 0}

    def count_active(self, owner: str | None = None) -> int:
        """Unfinished runs of ``owner`` (everyone's for ``None``), in one ``MULTI``.

        Everyone's is the per-state counts; a user's is ``ZINTERCARD`` (Redis 7) of each
        unfinished state's index with the user's, which walks the smaller set: the state
        index, as unfinished runs are few.
        """
        with self._errors():
            if owner is None:
                counts = self._client.hmget(self._key("counts"), _ACTIVE_VALUES)
                return sum(int(n or 0) for n in counts)
            pipe = self._client.pipeline(transaction=True)
            for state in _ACTIVE_VALUES:
                pipe.zintercard(2, [self._state_key(state), self._owner_key(owner)])
            return sum(int(n) for n in pipe.execute())

    def list_active(self) -> list[RunRecord]:
        """Every run not in a terminal state, oldest (first stored) first.

        The non-terminal state indexes are read in one ``MULTI``, the records in one pipeline;
        a run that ended in between is left out.
        """
        with self._errors():
            pipe = self._client.pipeline(transaction=True)
            for state in _ACTIVE_VALUES:
                pipe.zrange(self._state_key(state), 0, -1, withscores=True)
            entries = sorted(
                (float(seq), run_id) for index in pipe.execute() for run_id, seq in index
            )
            pipe = self._client.pipeline(transaction=False)
            for _, run_id in entries:
                pipe.hgetall(self._run_key(run_id))
            hashes = pipe.execute()
        records = [
            from_hash(run_id, fields)
            for (_, run_id), fields in zip(entries, hashes, strict=True)
            if fields
        ]
        return [record for record in records if not record.state.is_terminal]

    # -- leases ------------------------------------------------------------------------------

    def touch_lease(self, run_id: str, ttl_s: float) -> None:
        """Extend the lease to ``ttl_s`` from now (``ttl_s <= 0`` expires it at once)."""
        keys = [self._run_key(run_id), self._key("lease", run_id), self._key("leases")]
        with self._errors():
            self._touch_lease(keys=keys, args=[run_id, round(ttl_s * 1000), *_TERMINAL_VALUES])

    def expired_leases(self) -> list[str]:
        """Runs in INITIALIZING, RUNNING or CANCELING whose lease was set and has run out.

        Ordered by seq, as in the embedded store. Costs O(expired entries of ``p:leases``):
        the transition script drops a run from it when the run ends.
        """
        with self._errors():
            flat = self._expired_leases(
                keys=[self._key("leases")], args=[self._key("run:"), *_LEASED_VALUES]
            )
        return [run_id for run_id, _ in sorted(_groups(flat, 2), key=lambda p: int(p[1]))]

    # -- ownership ---------------------------------------------------------------------------

    def get_owner(self, run_id: str) -> str | None:
        """The run's owner (one ``HGET``), or ``None`` (unknown run, or no owner)."""
        with self._errors():
            return cast("str | None", self._client.hget(self._run_key(run_id), "owner"))

    # -- retention and deletion --------------------------------------------------------------

    def outputs_due(self, ended_before_s: float, *, limit: int) -> list[str]:
        """Runs that ended more than ``ended_before_s`` ago (Redis clock) with outputs kept.

        One ``ZRANGEBYSCORE`` of ``p:outputs-kept``, which the transition script fills as runs
        end and :meth:`mark_outputs_removed` empties.
        """
        if limit < 1:
            return []
        with self._errors():
            self._index_kept_outputs()
            ids = self._outputs_due(
                keys=[self._key("outputs-kept")], args=[round(ended_before_s * 1000), limit]
            )
        return [str(run_id) for run_id in ids]

    def mark_outputs_removed(self, run_id: str, removed_at: str) -> bool:
        """Set ``outputs_removed_at`` and drop the run from ``p:outputs-kept``, in one script."""
        keys = [self._run_key(run_id), self._key("outputs-kept")]
        with self._errors():
            return bool(self._mark_outputs_removed(keys=keys, args=[run_id, removed_at]))

    def delete_run(self, run_id: str) -> State | None:
        """Delete the run's hash and index entries in one script, if its state is terminal.

        The change feed carries the deletion, so every process's state cache forgets the run.
        """
        record = self.get_run(run_id)
        if record is None:
            return None
        keys = [
            self._run_key(run_id),
            self._key("counts"),
            self._key("runs"),
            self._key("outputs-kept"),
            self._key("leases"),
            self._key("lease", run_id),
            self._key("events"),
            # Tags and owner never change after creation, so the record read above names
            # every index the run is in.
            *(self._tag_key(k, v) for k, v in record.request.tags.items()),
            *([self._owner_key(record.owner)] if record.owner else []),
        ]
        args = [self._key("state:"), run_id, DELETED, *_TERMINAL_VALUES]
        with self._errors():
            found = self._delete(keys=keys, args=args)
        if found is None:
            return None
        state, version = State(found[0]), int(found[1])
        if version and self._cache is not None:
            # This process answers 404 at once, without waiting for its own feed message.
            self._cache.offer(run_id, version, None)
        logger.debug("delete run_id=%s state=%s deleted=%s", run_id, state, bool(version))
        if version:
            self._waits.changed(run_id)
        return state

    # -- health and shutdown -----------------------------------------------------------------

    def ping(self) -> None:
        """Send ``PING``; ``StoreUnavailableError`` unless Redis answers."""
        with self._errors():
            self._client.ping()

    def close(self) -> None:
        """Stop the state feed and disconnect a client this store made; calls reconnect."""
        if self._cache is not None:
            self._cache.stop()
        if self._owns_client:
            self._client.close()

    # -- helpers -----------------------------------------------------------------------------

    def _index_kept_outputs(self) -> None:
        """Add runs that ended before ``p:outputs-kept`` existed to it, once per database."""
        if self._kept_indexed:
            return
        if self._client.set(self._key("outputs-kept-indexed"), "1", nx=True):
            pipe = self._client.pipeline(transaction=False)
            for state in _TERMINAL_VALUES:
                pipe.zrange(self._state_key(state), 0, -1)
            ids = [run_id for index in pipe.execute() for run_id in index]
            pipe = self._client.pipeline(transaction=False)
            for run_id in ids:
                pipe.hmget(self._run_key(run_id), "end_time", "created_at", "outputs_removed_at")
            scores: dict[str, float] = {}
            for run_id, (end_time, created_at, removed) in zip(ids, pipe.execute(), strict=True):
                if removed is None and created_at is not None:
                    scores[run_id] = _epoch_ms(end_time, float(created_at))
            if scores:
                self._client.zadd(self._key("outputs-kept"), scores, nx=True)
            logger.info("indexed kept outputs of runs=%d prefix=%s", len(scores), self._prefix)
        self._kept_indexed = True

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"Redis state store at {self._where}: {exc}") from exc

    def _walk(self, states: list[str], filters: list[str], bound: str, want: int) -> list[Any]:
        """Runs below ``bound``, newest first, in one of the ``states`` ZSETs (any state when
        empty) and in every ``filters`` ZSET: walk the smallest of the filters and the union of
        the states, and check the others."""
        pipe = self._client.pipeline(transaction=False)
        for index in (*states, *filters):
            pipe.zcard(index)
        sizes = pipe.execute()
        groups = [
            (size, [index]) for size, index in zip(sizes[len(states) :], filters, strict=True)
        ]
        if states:
            groups.append((sum(sizes[: len(states)]), states))
        groups.sort(key=lambda group: group[0])
        walked = groups[0][1]
        # A single state is checked like a filter; several, as a set the run is in one of.
        alls = [keys[0] for _, keys in groups[1:] if len(keys) == 1]
        anys = next((keys for _, keys in groups[1:] if len(keys) > 1), [])
        keys = [*walked, *alls, *anys]
        budget = max(want, _SCAN_SLICE)
        rows: list[Any] = []
        while True:
            ran_out, last, found = self._page(
                keys=keys,
                args=[
                    self._key("run:"),
                    bound,
                    budget,
                    want - len(rows) // _SUMMARY_WIDTH,
                    len(walked),
                    len(anys),
                ],
            )
            rows += found
            if ran_out or len(rows) >= want * _SUMMARY_WIDTH:
                return rows
            bound = f"({last}"

    def _page_token_key(self) -> bytes:
        if self._token_key is None:
            key = self._key("token-key")
            pipe = self._client.pipeline(transaction=True)
            pipe.set(key, _page_token.new_key(), nx=True)
            pipe.get(key)
            self._token_key = bytes.fromhex(pipe.execute()[1])
        return self._token_key

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    def _run_key(self, run_id: str) -> str:
        return self._key("run", run_id)

    def _state_key(self, state: str) -> str:
        return self._key("state", state)

    def _tag_key(self, key: str, value: str) -> str:
        return self._key("tag", dumps([key, value]))

    def _owner_key(self, owner: str) -> str:
        return self._key("owner", owner)

    def _claim_key(self, owner: str | None, key: str) -> str:
        return self._key("idem", dumps([owner, key]))


def _describe(url: str) -> str:
    """``url`` without credentials, query or fragment, for messages and ``repr``."""
    try:
        parts = urlsplit(url)
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host or ''}{port}{parts.path}"
    except ValueError:
        return "redis"


def _epoch_ms(iso: str | None, fallback_s: float) -> float:
    """Milliseconds since the epoch of an ISO 8601 end time, else of ``fallback_s``."""
    try:
        return calendar.timegm(time.strptime(iso or "", "%Y-%m-%dT%H:%M:%SZ")) * 1000.0
    except ValueError:
        return fallback_s * 1000.0


def _groups(flat: Sequence[Any], width: int) -> Iterator[tuple[Any, ...]]:
    return zip(*[iter(flat)] * width, strict=True)
