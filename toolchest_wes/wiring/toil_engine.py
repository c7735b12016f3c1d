"""The Toil engines (one for CWL, one for WDL) from settings."""

from __future__ import annotations

import logging
import shlex

from toolchest_wes.config import ContainerRuntime, SandboxMode, Settings
from toolchest_wes.engines.base import WorkflowEngine
from toolchest_wes.engines.toil_engine import RUNNERS, ToilEngine, find_toil, toil_version

__all__ = ["build_toil_engines"]

logger = logging.getLogger(__name__)


def build_toil_engines(settings: Settings, required: bool) -> list[WorkflowEngine]:
    """Toil for CWL and for WDL, or ``[]`` when Toil is not installed and not ``required``.

    Toil runs are not confined by the server's run sandbox (bubblewrap around cwltool's
    runs): with the sandbox on, Toil is only offered when named, never by ``auto``.

    Raises:
        ValueError: ``required`` and Toil's programs are not found (the message says what to
            install), or the run sandbox is on.
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
    try:
        version = toil_version(bin_dir)
    except LookupError as exc:
        if required:
            raise ValueError(f"the toil engine: {exc}; reinstall toil[cwl,wdl]==9.6.*") from exc
        logger.warning("toil is not offered: %s", exc)
        return []
    logger.info("toil %s found in %s", version, bin_dir)
    if settings.effective_sandbox is SandboxMode.BWRAP:
        if required:
            raise ValueError(
                "the toil engine runs workflows without the run sandbox, which is on "
                "(--sandbox bwrap, the default with authentication): start the server "
                "with --sandbox none to offer toil"
            )
        logger.info("toil is not offered: the run sandbox is on and Toil runs outside it")
        return []
    runtime = settings.effective_container_runtime
    engines: list[WorkflowEngine] = [
        ToilEngine(
            workflow_type=workflow_type,
            bin_dir=bin_dir,
            batch_system=settings.toil_batch_system,
            jobstore_dir=settings.toil_jobstore_dir,
            default_args=tuple(shlex.split(settings.toil_args)),
            container_runtime=runtime.value if runtime is not ContainerRuntime.AUTO else "none",
            allow_no_container=settings.allow_no_container,
            wdl_container=settings.toil_wdl_container,
            nice=settings.engine_nice,
        )
        for workflow_type in RUNNERS
    ]
    return engines
