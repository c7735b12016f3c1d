"""Whether the run sandbox works here, for the tests that need it.

Without it those tests are skipped, loudly; with ``CI`` or ``TOOLCHEST_WES_REQUIRE_SANDBOX``
set they fail instead, so CI never passes by skipping them (as for redis-server).
"""

from __future__ import annotations

import os

import pytest

from toolchest_wes.engines.sandbox import NOBODY, bwrap_problem

__all__ = ["SANDBOX_UID", "require_sandbox"]

#: The uid runs take in the sandbox, or ``None`` when they keep the test's own.
SANDBOX_UID = NOBODY if os.geteuid() == 0 else None
# Read at import, before the autouse fixture strips every TOOLCHEST_WES_* variable.
_REQUIRE = bool(os.environ.get("CI") or os.environ.get("TOOLCHEST_WES_REQUIRE_SANDBOX"))


@pytest.fixture
def require_sandbox() -> None:
    """Skip (or, in CI, fail) the test when bwrap cannot make a sandbox here."""
    problem = bwrap_problem(SANDBOX_UID)
    if problem is None:
        return
    message = f"the run sandbox cannot work here ({problem}): sandbox tests are SKIPPED"
    if _REQUIRE:
        pytest.fail(f"{message} (not allowed: CI or TOOLCHEST_WES_REQUIRE_SANDBOX is set)")
    pytest.skip(message)
