"""The Snakemake program for tests: found, or a loud skip (a failure in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolchest_wes.engines.snakemake_engine import find_snakemake

__all__ = ["require_snakemake", "snakemake_marks"]

# Read at import, before the autouse fixture strips every TOOLCHEST_WES_* variable.
_REQUIRE = bool(os.environ.get("CI") or os.environ.get("TOOLCHEST_WES_REQUIRE_SNAKEMAKE"))


_MISSING = "snakemake is not installed (pip install -e '.[snakemake]'): SMK tests are SKIPPED"


def snakemake_marks() -> list[pytest.MarkDecorator]:
    """Marks for a parameter that needs Snakemake: a skip where it is missing, unless required.

    Where it is required (CI), the test then fails on the missing program.
    """
    if find_snakemake() is not None or _REQUIRE:
        return []
    return [pytest.mark.skip(reason=_MISSING)]


def require_snakemake() -> Path:
    """The ``snakemake`` program; skips (or, in CI, fails) the test when it is missing."""
    program = find_snakemake()
    if program is not None:
        return program
    if _REQUIRE:
        pytest.fail(f"{_MISSING} (not allowed: CI or TOOLCHEST_WES_REQUIRE_SNAKEMAKE is set)")
    pytest.skip(_MISSING)
