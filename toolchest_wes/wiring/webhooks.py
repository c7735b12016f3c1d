"""Webhooks from the settings: the secret, the operator's subscriptions, the outbox and loop.

Webhooks are on when the server has a webhook secret or at least one subscription; then the
store of every role is wrapped so that each state change queues its events, and API
processes run the delivery loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from toolchest_wes.config import Settings
from toolchest_wes.core.urls import UrlPolicy
from toolchest_wes.core.webhook_delivery import DeliveryLoop, DeliveryPolicy
from toolchest_wes.core.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE,
    EVENTS,
    NOTIFY_ON_TAG,
    NOTIFY_URL_TAG,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Subscription,
    Webhooks,
)
from toolchest_wes.store.outbox import Outbox

__all__ = ["build_webhooks", "delivery_loop", "describe_webhooks", "load_subscriptions"]


def _secret(settings: Settings) -> str | None:
    if settings.webhook_secret_file is not None:
        try:
            lines = settings.webhook_secret_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read the webhook secret file: {exc}") from exc
        return lines[0].strip() if lines and lines[0].strip() else None
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value() or None
    return None


def load_subscriptions(path: Path) -> list[Subscription]:
    """The subscriptions of a JSON or YAML file: a list of ``{url, secret, events}``.

    Raises:
        ValueError: The file cannot be read, or an entry lacks a URL or secret or names
            unknown events.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"webhooks file {path}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("webhooks")
    if not isinstance(data, list):
        raise ValueError(f"webhooks file {path}: expected a list of {{url, secret, events}}")
    found = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not entry.get("url") or not entry.get("secret"):
            raise ValueError(f"webhooks file {path}: entry {i} needs a url and a secret")
        events = str(entry.get("events", "terminal"))
        if events not in EVENTS:
            raise ValueError(f"webhooks file {path}: entry {i}: events is all or terminal")
        found.append(Subscription(str(entry["url"]), str(entry["secret"]), events))
    return found


def _outbox(settings: Settings) -> Outbox:
    url = settings.effective_store_url
    if url.startswith("sqlite://"):
        from toolchest_wes.store.sqlite_outbox import SqliteOutbox

        path = _sqlite_path(settings)
        if path is None:
            raise ValueError("webhooks need a state store in a file or Redis, not :memory:")
        return SqliteOutbox(path)
    from toolchest_wes.store.redis_outbox import RedisOutbox

    return RedisOutbox(url, prefix=settings.redis_prefix)


def _sqlite_path(settings: Settings) -> str | None:
    url = settings.effective_store_url
    if not url.startswith("sqlite://") or url.endswith(":memory:"):
        return None
    return url.removeprefix("sqlite://")[1:]


def _disable(settings: Settings) -> None:
    """Stop a SQLite store from recording transitions a server with webhooks once asked for."""
    path = _sqlite_path(settings)
    if path is not None:
        from toolchest_wes.store.sqlite_outbox import disable

        disable(path)


def build_webhooks(settings: Settings) -> Webhooks | None:
    """The webhooks of this server, or ``None`` when it sends none.

    Raises:
        ValueError: An unreadable secret or subscriptions file, a subscription whose host
            the webhook URL policy refuses, or ``--webhook`` without a secret.
    """
    secret = _secret(settings)
    subscriptions = [Subscription(url, secret or "", "all") for url in settings.webhook]
    if subscriptions and secret is None:
        raise ValueError("--webhook URL needs a webhook secret (TOOLCHEST_WES_WEBHOOK_SECRET)")
    if settings.webhooks_file is not None:
        subscriptions += load_subscriptions(settings.webhooks_file)
    if secret is None and not subscriptions:
        _disable(settings)
        return None
    policy = UrlPolicy.from_setting(
        settings.allow_private_webhooks,
        settings.webhook_allowed_hosts,
        settings=("TOOLCHEST_WES_WEBHOOK_ALLOWED_HOSTS", "TOOLCHEST_WES_ALLOW_PRIVATE_WEBHOOKS"),
    )
    for sub in subscriptions:
        try:
            policy.check(sub.url, what="webhook")
        except Exception as exc:
            raise ValueError(str(exc)) from exc
    public = settings.public_url
    return Webhooks(
        _outbox(settings),
        policy,
        secret,
        tuple(subscriptions),
        base_url=(lambda: public) if public else (lambda: ""),
    )


def delivery_loop(settings: Settings, webhooks: Webhooks) -> DeliveryLoop:
    """The loop that sends ``webhooks``' deliveries, timed by the settings."""
    return DeliveryLoop(
        webhooks,
        DeliveryPolicy(
            retry_window_s=settings.webhook_retry_window_s,
            backoff_s=settings.webhook_backoff_s,
            backoff_max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s,
            poll_s=settings.webhook_poll_s,
        ),
    )


def describe_webhooks(settings: Settings, webhooks: Webhooks | None) -> dict[str, Any]:
    """What a client needs to ask for webhooks and check them, as service-info's
    ``toolchest_wes_webhooks``; no subscription's URL or secret."""
    return {
        "enabled": webhooks is not None,
        "run_webhooks": webhooks is not None and webhooks.secret is not None,
        "server_subscriptions": webhooks is not None and bool(webhooks.subscriptions),
        "tags": {"notify_url": NOTIFY_URL_TAG, "notify_on": NOTIFY_ON_TAG},
        "notify_on": list(EVENTS),
        "notify_on_default": "terminal",
        "event_types": [EVENT_TYPE],
        "signature": {
            "header": SIGNATURE_HEADER,
            "algorithm": "HMAC-SHA256",
            "signed": "timestamp.body",
            "timestamp_header": TIMESTAMP_HEADER,
            "event_id_header": EVENT_ID_HEADER,
        },
        "delivery": "at-least-once",
        "retry_window_s": settings.webhook_retry_window_s,
        "backoff_s": settings.webhook_backoff_s,
        "backoff_max_s": settings.webhook_backoff_max_s,
    }
