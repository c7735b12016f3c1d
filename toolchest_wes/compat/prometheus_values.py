"""Whether prometheus_client keeps metric values in multi-process files, which it decides once.

prometheus_client chooses where metric values live when it is first imported: in files under
``PROMETHEUS_MULTIPROC_DIR`` if that variable is set then, in memory otherwise. The choice is
recorded only on its private value class, ``prometheus_client.values.ValueClass._multiprocess``,
which ``toolchest_wes.server.metrics`` reads to refuse a variable set too late.

Importing this module runs :func:`verify`.
"""

from __future__ import annotations

from prometheus_client import values

from toolchest_wes.compat.private_api import SupportedRange

__all__ = ["PROMETHEUS_CLIENT", "multiprocess_values", "verify"]

PROMETHEUS_CLIENT = SupportedRange("prometheus-client", ">=0.20,<1")


def multiprocess_values() -> bool:
    """Whether this process's metric values live in ``PROMETHEUS_MULTIPROC_DIR``'s files."""
    return bool(values.ValueClass._multiprocess)


def verify() -> None:
    """Check that prometheus_client records its choice where :func:`multiprocess_values` reads.

    Raises:
        PrivateApiChangedError: ``ValueClass._multiprocess`` is missing or not a bool.
    """
    PROMETHEUS_CLIENT.attribute(values, "ValueClass._multiprocess", bool)


verify()
