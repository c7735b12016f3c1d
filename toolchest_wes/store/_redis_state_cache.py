"""A per-process cache of run states, kept fresh by the store's own change feed.

Status polling is the hottest request of a WES server, and in distributed mode each poll
would cost a Redis round trip. Every transition script bumps the run's version and publishes
``"<run id> <version> <state>"`` on the prefix's change channel; a subscriber thread per
process applies those messages, so a cached state is replaced within the pub/sub delivery
time (well under a millisecond on one network) of the transition.

Versions make the order of events irrelevant: a value read from Redis is only stored if it
is newer than what the feed already brought, and the feed's own messages are remembered even
for runs nobody has read yet, so a slow reader can never put back a state the feed replaced.
Whenever the subscription is not known to be live (before it is confirmed, or after its
connection broke) the cache is emptied and bypassed: every read goes to Redis.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

import redis

from toolchest_wes.models import State

__all__ = ["DELETED", "StateCache"]

logger = logging.getLogger(__name__)

_RETRY_S = 1.0
#: How long one wait for a message lasts; it bounds how long stopping the feed takes.
_POLL_S = 0.25

#: What the change feed carries in place of a state when a run is deleted.
DELETED = "DELETED"
#: Entries kept, about 260 bytes each. Enough for every run of a thousand at once and the
#: runs their clients poll; an entry read or changed moves to the back. The feed writes an
#: entry for every transition, so a larger cache only fills with runs nobody reads, and the
#: API's memory grows with the history until it is full (bench/README.md, "An hour without
#: drift"). An evicted entry is safe as long as the eviction horizon (capacity divided by
#: transitions per second: minutes at hundreds a second) exceeds one read of Redis.
_CAPACITY = 10_000


class StateCache:
    """Run id -> (version, state), fed by pub/sub and by reads; thread-safe.

    Args:
        connect: Makes a new Redis client for the subscription (its own connection).
        channel: The change channel the transition script publishes on.
        capacity: Entries kept; the oldest are dropped first.
        on_change: Called with the run id of each message of the feed, once the cache holds
            what it says (it wakes the threads waiting on that run's state).
    """

    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        channel: str,
        *,
        capacity: int = _CAPACITY,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._capacity = capacity
        self._on_change = on_change
        # A deleted run keeps an entry with no state, so that an older read cannot put back
        # the state it had; get() then answers "unknown" and the store reads Redis.
        self._entries: OrderedDict[str, tuple[int, State | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._live = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """Whether the subscription is confirmed, so cached states can be trusted."""
        return self._live

    def start(self) -> None:
        """Start the subscriber thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="toolchest-wes-state-feed", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the subscriber; reads then always go to Redis."""
        self._stop.set()
        self._set_live(False)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def get(self, run_id: str) -> State | None:
        """The cached state, or ``None`` if the cache cannot answer."""
        if not self._live:
            return None
        entry = self._entries.get(run_id)
        return entry[1] if entry is not None else None

    def offer(self, run_id: str, version: int, state: State | None) -> None:
        """Remember a state read at ``version`` unless a newer one is already known.

        ``None`` records that the run was deleted at ``version``.
        """
        if not self._live:
            return
        with self._lock:
            current = self._entries.get(run_id)
            if current is None or current[0] < version:
                self._put(run_id, version, state)

    def _put(self, run_id: str, version: int, state: State | None) -> None:
        self._entries[run_id] = (version, state)
        self._entries.move_to_end(run_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def _set_live(self, live: bool) -> None:
        with self._lock:
            # Entering or leaving a live subscription, messages may have been missed.
            self._entries.clear()
            self._live = live

    def _run(self) -> None:
        while not self._stop.is_set():
            client: redis.Redis | None = None
            try:
                client = self._connect()
                # Typed from redis-py 8.2 on, untyped before.
                pubsub = client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
                pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL_S)
                    if message is not None:
                        self._handle(message)
            except redis.RedisError:
                logger.info("state feed lost; reading states from Redis until it is back")
            finally:
                self._set_live(False)
                if client is not None:
                    client.close()
            self._stop.wait(_RETRY_S)

    def _handle(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._set_live(True)
            return
        if kind != "message":
            return
        data = message.get("data")
        text = data.decode() if isinstance(data, bytes) else str(data)
        try:
            run_id, version, state = text.split(" ")
            parsed = (int(version), None if state == DELETED else State(state))
        except ValueError:
            logger.warning("ignoring malformed state-feed message %r", text)
            return
        with self._lock:
            current = self._entries.get(run_id)
            if current is None or current[0] < parsed[0]:
                self._put(run_id, *parsed)
        if self._on_change is not None:
            self._on_change(run_id)
