"""``Run``, a handle on one run, under the name it has always been imported by.

``Run`` lives beside ``WesClient`` in ``_sync`` (as ``AsyncRun`` beside ``AsyncWesClient``), so
that neither module has to import the other; this module only gives it its public address.
"""

from __future__ import annotations

from toolchest_wes.client._core import Stream
from toolchest_wes.client._handle import RunHandle, Terminated, on_interrupt, sigterm_raises
from toolchest_wes.client._sync import Run

__all__ = ["Run", "RunHandle", "Stream", "Terminated", "on_interrupt", "sigterm_raises"]
