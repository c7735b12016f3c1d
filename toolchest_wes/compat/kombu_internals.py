"""kombu's Redis transport: the key layout the reconcile loop reads, and the hook we override.

The reconcile loop (``toolchest_wes.worker.reconciler``) reads the broker's keys in Redis
directly, since kombu has no API to list a queue's messages or its unacknowledged deliveries:

- one list per priority step, named ``queue`` for priority 0 and ``queue + "\\x06\\x16" +
  step`` for the steps 3, 6 and 9 (``Channel._q_for_pri``);
- every delivered, unacknowledged message in the hash ``unacked`` (delivery tag -> JSON
  ``[message, exchange, routing key]``), and its delivery time in the sorted set
  ``unacked_index`` (delivery tag -> epoch seconds).

``toolchest_wes.worker.kombu_transport`` subclasses :data:`RedisChannel` and overrides its
``_connparams(asynchronous=...)``, which reads the transport as ``self.connection`` and the
transport's connection as ``transport.client``.

Importing this module runs :func:`verify`.
"""

from __future__ import annotations

import json
from typing import Any

from kombu.transport import redis as kombu_redis

from toolchest_wes.compat.private_api import SupportedRange

__all__ = [
    "KOMBU",
    "UNACKED_INDEX_KEY",
    "UNACKED_KEY",
    "RedisChannel",
    "RedisTransport",
    "queue_keys",
    "unacked_delivery",
    "verify",
]

KOMBU = SupportedRange("kombu", ">=5.3.4,<6")

#: The hash of delivered, unacknowledged messages: delivery tag -> [message, exchange, key].
UNACKED_KEY = "unacked"
#: The sorted set of delivery times: delivery tag -> epoch seconds.
UNACKED_INDEX_KEY = "unacked_index"

_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)

#: kombu's Redis channel and transport, for subclasses that fix them.
RedisChannel = kombu_redis.Channel
RedisTransport = kombu_redis.Transport


def queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s waiting messages, priority 0 first."""
    return [queue, *(f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in _PRIORITY_STEPS if p)]


def unacked_delivery(raw: bytes | str) -> tuple[Any, str] | None:
    """The message and routing key of an ``unacked`` entry; ``None`` if it is unreadable."""
    try:
        message, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return message, routing_key


def verify() -> None:
    """Check that the installed kombu lays out its Redis keys as this module reads them.

    Raises:
        PrivateApiChangedError: Something is missing or has another shape.
    """
    expected = {
        "sep": _PRIORITY_SEPARATOR,
        "unacked_key": UNACKED_KEY,
        "unacked_index_key": UNACKED_INDEX_KEY,
    }
    for name, value in expected.items():
        actual = KOMBU.attribute(RedisChannel, name)
        if actual != value:
            raise KOMBU.changed(
                f"has kombu.transport.redis.Channel.{name} = {actual!r}, not {value!r}"
            )
    steps = KOMBU.attribute(RedisChannel, "priority_steps")
    if tuple(steps) != _PRIORITY_STEPS:
        raise KOMBU.changed(
            f"has kombu.transport.redis.Channel.priority_steps = {steps!r}, "
            f"not {list(_PRIORITY_STEPS)!r}"
        )
    KOMBU.attribute(RedisChannel, "_q_for_pri")
    # Without __init__: naming a queue needs only the class's separator and steps.
    channel = RedisChannel.__new__(RedisChannel)
    try:
        names = [channel._q_for_pri("q", p) for p in _PRIORITY_STEPS]  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise KOMBU.changed(f"cannot name priority queues without a connection ({exc})") from exc
    if names != queue_keys("q"):
        raise KOMBU.changed(f"names the priority queues of 'q' {names!r}, not {queue_keys('q')!r}")
    connparams = KOMBU.attribute(RedisChannel, "_connparams")
    KOMBU.parameters(connparams, "Channel._connparams", ("self", "asynchronous"))
    KOMBU.assigned_in_init(RedisChannel, ("connection",))
    KOMBU.assigned_in_init(RedisTransport, ("client",))
    if KOMBU.attribute(RedisTransport, "Channel") is not RedisChannel:
        raise KOMBU.changed("has a Redis Transport whose Channel is not its module's Channel")


verify()
