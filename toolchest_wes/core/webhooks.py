"""Webhooks: what a run asks to be told, the events of its state changes, and their signature.

A run asks with two tags: ``toolchest_wes.notify_url`` (checked by the URL policy of webhooks
at submit) and ``toolchest_wes.notify_on`` (``terminal``, the default, or ``all``). The
operator adds subscriptions that get the events of every run. Each state change becomes one
event (one id, one body), recorded in the store's outbox in the transition's own transaction
and queued there for each receiver; ``core/webhook_delivery.py`` sends them.

The body is signed as ``HMAC-SHA256(secret, timestamp + "." + body)``, in hex, in the header
``X-Toolchest-Wes-Signature: sha256=<hex>``, beside ``X-Toolchest-Wes-Timestamp`` (seconds
since the epoch) and ``X-Toolchest-Wes-Event-Id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.urls import UrlPolicy
from toolchest_wes.models import TERMINAL_STATES, State
from toolchest_wes.store.base import IdempotencyClaim, RunRecord, StateStore, iso_time
from toolchest_wes.store.outbox import Delivery, Outbox, RunHooks

__all__ = [
    "EVENTS",
    "EVENT_TYPE",
    "NOTIFY_ON_TAG",
    "NOTIFY_URL_TAG",
    "EventingStore",
    "Subscription",
    "Webhooks",
    "check_webhook_tags",
    "sign",
]

logger = logging.getLogger(__name__)

NOTIFY_URL_TAG = "toolchest_wes.notify_url"
NOTIFY_ON_TAG = "toolchest_wes.notify_on"
#: Which events a receiver gets: every state change, or only a run's ending.
EVENTS = ("all", "terminal")
SIGNATURE_HEADER = "X-Toolchest-Wes-Signature"
TIMESTAMP_HEADER = "X-Toolchest-Wes-Timestamp"
EVENT_ID_HEADER = "X-Toolchest-Wes-Event-Id"
#: The ``type`` of every event.
EVENT_TYPE = "run.state_changed"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@dataclass(frozen=True)
class Subscription:
    """An operator's receiver of every run's events.

    Attributes:
        url: Where events are POSTed.
        secret: Signs them.
        events: ``all`` or ``terminal``.
    """

    url: str
    secret: str
    events: str = "terminal"


def check_webhook_tags(webhooks: Webhooks | None, tags: dict[str, str]) -> None:
    """Refuse webhook tags that ``webhooks`` (``None``: this server sends none) cannot honour.

    Raises:
        BadRequestError: See :meth:`Webhooks.check_tags`.
    """
    if webhooks is not None:
        webhooks.check_tags(tags)
    elif NOTIFY_URL_TAG in tags:
        raise BadRequestError(
            f"tag {NOTIFY_URL_TAG}: this server sends no webhooks; remove the tag, or ask the "
            "operator to set TOOLCHEST_WES_WEBHOOK_SECRET"
        )


def _wanted(events: str, state: State) -> bool:
    return events == "all" or state in TERMINAL_STATES


@dataclass
class Webhooks:
    """Checks and keeps what runs ask for, and turns state changes into queued deliveries.

    Attributes:
        outbox: Where deliveries wait.
        policy: The hosts webhooks may be sent to.
        secret: Signs the deliveries to runs' own URLs; ``None``: runs may not ask.
        subscriptions: The operator's receivers.
        base_url: The server's URL for the run being submitted (the public URL, or the one
            the request came to); the server sets it.
    """

    outbox: Outbox
    policy: UrlPolicy
    secret: str | None = None
    subscriptions: tuple[Subscription, ...] = ()
    base_url: Callable[[], str] = field(default=lambda: "")

    def secret_of(self, subscriber: str) -> str | None:
        """The secret that signs a delivery to ``subscriber`` (``""``: a run's own URL)."""
        if not subscriber:
            return self.secret
        for sub in self.subscriptions:
            if sub.url == subscriber:
                return sub.secret
        return None

    def check_tags(self, tags: dict[str, str]) -> None:
        """Refuse a submission whose webhook tags this server would not honour.

        Raises:
            BadRequestError: The URL is not http(s), its host is refused by the policy,
                ``notify_on`` is unknown, or the server has no webhook secret.
        """
        url = tags.get(NOTIFY_URL_TAG)
        on = tags.get(NOTIFY_ON_TAG, "terminal")
        if on not in EVENTS:
            raise BadRequestError(f"tag {NOTIFY_ON_TAG} is {on!r}; use 'all' or 'terminal'")
        if url is None:
            return
        if self.secret is None:
            raise BadRequestError(
                f"tag {NOTIFY_URL_TAG}: this server sends no webhooks to runs' URLs (it has "
                "no webhook secret); remove the tag, or ask the operator to set "
                "TOOLCHEST_WES_WEBHOOK_SECRET"
            )
        if not url.lower().startswith(("http://", "https://")):
            raise BadRequestError(f"tag {NOTIFY_URL_TAG} {url!r} is not an http(s) URL")
        self.policy.check(url, what=f"tag {NOTIFY_URL_TAG}")

    def register(self, run_id: str, tags: dict[str, str], owner: str | None) -> None:
        """Keep what the run's events need (call before the run is created)."""
        self.outbox.register(
            RunHooks(
                run_id,
                owner,
                self.base_url(),
                tags.get(NOTIFY_URL_TAG),
                tags.get(NOTIFY_ON_TAG, "terminal"),
            )
        )

    def record_created(self, run_id: str, state: State, at: float) -> None:
        """Record the event of a run's creation, for an outbox that does not record it itself."""
        try:
            self.outbox.record_created(run_id, state, at)
        except Exception:
            # A webhook never fails the run; the run's first transition records the event.
            logger.warning(
                "could not record the creation event of run_id=%s; its first transition will",
                run_id,
                exc_info=True,
            )

    def drain(self) -> int:
        """Queue the deliveries of the events the outbox recorded; how many."""
        return self.outbox.drain(self._build)

    def _build(self, hooks: RunHooks, to: State, at: float) -> list[Delivery]:
        event_id = f"evt_{uuid.uuid4().hex}"
        body = json.dumps(_event(event_id, hooks, to, at), separators=(",", ":"))
        targets = [(s.url, s.url) for s in self.subscriptions if _wanted(s.events, to)]
        if hooks.notify_url and _wanted(hooks.notify_on, to):
            targets.append((hooks.notify_url, ""))
        return [
            Delivery(f"{event_id}.{i}", event_id, url, subscriber, body, at)
            for i, (url, subscriber) in enumerate(targets)
        ]


def _event(event_id: str, hooks: RunHooks, state: State, now: float) -> dict[str, Any]:
    base = f"{hooks.base_url}/ga4gh/wes/v1/runs/{hooks.run_id}"
    return {
        "id": event_id,
        "type": EVENT_TYPE,
        "run_id": hooks.run_id,
        "state": state.value,
        "previous_state": hooks.last_state.value if hooks.last_state else None,
        "sequence": hooks.sequence + 1,
        "time": iso_time(now),
        "owner": hooks.owner,
        "links": {"run_log": base, "status": f"{base}/status", "outputs": f"{base}/outputs"},
    }


class EventingStore:
    """A :class:`StateStore` that records a run's webhook event just after creating it.

    For a store whose creation does not record it (Redis: transitions do). Every other call
    goes to the wrapped store unchanged.
    """

    def __init__(self, store: StateStore, webhooks: Webhooks) -> None:
        self.wrapped = store
        self.webhooks = webhooks

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def create_run(self, record: RunRecord, *, claim: IdempotencyClaim | None = None) -> str:
        """Create the run, then record its creation's event (none when ``claim`` found an
        earlier run, as nothing was created)."""
        run_id = self.wrapped.create_run(record, claim=claim)
        if run_id == record.run_id:
            self.webhooks.record_created(record.run_id, State(record.state), record.created_at)
        return run_id

    def delete_run(self, run_id: str) -> State | None:
        """Delete the run, and its hooks with it."""
        state = self.wrapped.delete_run(run_id)
        if state in TERMINAL_STATES:
            self.webhooks.outbox.forget(run_id)
        return state
