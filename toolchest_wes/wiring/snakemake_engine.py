"""The Snakemake engine from settings, when Snakemake is installed (``ENGINE_BUILDERS``)."""

from __future__ import annotations

import logging

from toolchest_wes.config import SandboxMode, Settings
from toolchest_wes.engines.base import WorkflowEngine
from toolchest_wes.engines.snakemake_engine import SnakemakeEngine, find_snakemake

__all__ = ["build_snakemake_engines"]

logger = logging.getLogger(__name__)

_INSTALL = "pip install 'toolchest-wes[snakemake]', or give --snakemake-venv"


def build_snakemake_engines(settings: Settings, required: bool) -> list[WorkflowEngine]:
    """The Snakemake engine (SMK), or ``[]`` when Snakemake is missing and not ``required``.

    Raises:
        ValueError: ``required`` and Snakemake is missing, is not a version the engine
            drives, or runs would have to be sandboxed (Snakemake jobs cannot be yet).
    """
    try:
        return [_engine(settings)]
    except ValueError as exc:
        if required:
            raise ValueError(f"the snakemake engine cannot run: {exc}") from None
        # Not installed is the common case; installed and unusable is worth a warning.
        installed = find_snakemake(settings.snakemake_venv) is not None
        logger.log(
            logging.WARNING if installed else logging.INFO, "Snakemake (SMK) not offered: %s", exc
        )
        return []


def _engine(settings: Settings) -> SnakemakeEngine:
    program = find_snakemake(settings.snakemake_venv)
    if program is None:
        where = settings.snakemake_venv or "this server's environment or on PATH"
        raise ValueError(f"no snakemake program in {where}; {_INSTALL}")
    if settings.effective_sandbox is SandboxMode.BWRAP:
        raise ValueError(
            "Snakemake runs cannot be sandboxed, and this server sandboxes every run "
            "(--sandbox bwrap); offer Snakemake only with --sandbox none"
        )
    engine = SnakemakeEngine(
        program=program,
        allow_conda=settings.snakemake_allow_conda,
        allow_apptainer=settings.snakemake_allow_apptainer,
        nice=settings.engine_nice,
    )
    engine.check_installed()
    return engine
