"""The Snakemake program for tests: found, or a loud skip (a failure in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolchest_wes.engines.snakemake_engine import find_snakemake

__all__ = ["require_snakemake"]

# Read at import, before the autouse fixture strips every TOOLCHEST_WES_* variable.
_REQUIRE = bool(os.environ.get("CI") or os.environ.get("TOOLCHEST_WES_REQUIRE_SNAKEMAKE"))


def require_snakemake() -> Path:
    """The ``snakemake`` program; skips (or, in CI, fails) the test when it is missing."""
    program = find_snakemake()
    if program is not None:
        return program
    message = "snakemake is not installed (pip install -e '.[snakemake]'): SMK tests are SKIPPED"
    if _REQUIRE:
        pytest.fail(f"{message} (not allowed: CI or TOOLCHEST_WES_REQUIRE_SNAKEMAKE is set)")
    pytest.skip(message)
