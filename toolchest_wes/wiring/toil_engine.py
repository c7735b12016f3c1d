"""The Toil engines (one for CWL, one for WDL) from settings."""

from __future__ import annotations

import shlex

from toolchest_wes.config import ContainerRuntime, Settings
from toolchest_wes.engines.base import WorkflowEngine
from toolchest_wes.engines.toil_engine import RUNNERS, ToilEngine, find_toil

__all__ = ["build_toil_engines"]


def build_toil_engines(settings: Settings, required: bool) -> list[WorkflowEngine]:
    """Toil for CWL and for WDL, or ``[]`` when Toil is not installed and not ``required``.

    Raises:
        ValueError: ``required`` and Toil's programs are not found; the message says what to
            install.
    """
    bin_dir = find_toil(settings.toil_venv)
    if bin_dir is None:
        if not required:
            return []
        where = (
            f"in {settings.toil_venv}/bin (toil_venv)"
            if settings.toil_venv is not None
            else "in this server's environment or on PATH"
        )
        raise ValueError(
            f"the toil engine needs {' and '.join(RUNNERS.values())} {where}: "
            "pip install 'toolchest-wes[toil]', or make a virtualenv with "
            "pip install 'toil[cwl,wdl]==9.6.*' and name it with --toil-venv"
        )
    runtime = settings.effective_container_runtime
    engines: list[WorkflowEngine] = [
        ToilEngine(
            workflow_type=workflow_type,
            bin_dir=bin_dir,
            batch_system=settings.toil_batch_system,
            jobstore_dir=settings.toil_jobstore_dir,
            default_args=tuple(shlex.split(settings.toil_args)),
            container_runtime=runtime.value if runtime is not ContainerRuntime.AUTO else "none",
            wdl_container=settings.toil_wdl_container,
            nice=settings.engine_nice,
        )
        for workflow_type in RUNNERS
    ]
    return engines
