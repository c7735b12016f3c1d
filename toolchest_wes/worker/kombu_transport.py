"""kombu's Redis transport, with a use of a torn-down connection reported as a connection error.

The problem (kombu 5.7 with Celery 5.7; the same ``AttributeError`` at shutdown is
celery/kombu#970, and workers that stop after a Redis reconnect are celery/celery#10205 and
celery/celery#8030): when the broker connection breaks, Celery's consumer calls
``Connection.collect()`` and then ``Connection.close()`` on it. ``collect()`` first tries to
close the channels; closing the default channel drains the pending ``BRPOP`` reply, which
raises the connection error before the channel marks itself closed, and the error is
swallowed. ``collect()`` then tears the transport down (``transport.client = None``). The
second ``close()`` closes that channel for real, and its QoS restores the unacknowledged
messages ("Restoring 1 unacknowledged message(s)") through a new connection pool built from
``transport.client``, which is gone: ``AttributeError: 'NoneType' object has no attribute
'hostname'`` in ``Channel._connparams``. kombu and Celery ignore only connection and channel
errors while closing, so the ``AttributeError`` ends the consumer ("Unrecoverable error")
and, with it, the worker process. A thread of the pool that acknowledges a message in that
instant can hit the same error.

The fix here: a channel whose transport is gone raises ``redis.ConnectionError`` (one of
the transport's connection errors) instead, with a warning, and the consumer reconnects as
for any lost connection. The messages it could not restore stay in kombu's unacknowledged
hash: a run that had not started is queued again by the reconcile loop once
``queue_lost_after_s`` has passed, and a started run is covered by its lease.

``new_celery_app`` selects this transport for ``redis://`` broker URLs. Remove it once kombu
closes a channel before tearing down its transport, or keeps the connection parameters.
``toolchest_wes.compat.kombu_internals`` checks that kombu still has the hook overridden here.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from toolchest_wes.compat.kombu_internals import RedisChannel, RedisTransport

__all__ = ["TRANSPORT", "Channel", "Transport"]

logger = logging.getLogger(__name__)

#: The value of Celery's ``broker_transport`` setting that selects this transport.
TRANSPORT = f"{__name__}:Transport"


class Channel(RedisChannel):
    """A Redis channel that reports its torn-down transport as a lost connection."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            logger.warning(
                "kombu used a broker connection that was already torn down (see "
                "toolchest_wes.worker.kombu_transport); treating it as a lost connection"
            )
            raise redis.ConnectionError("the broker connection was closed")
        # kombu's transport modules have no type hints.
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(RedisTransport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel
