"""The engines of a process from settings: cwltool, its launcher, and the executor's needs.

The API builds these in embedded mode, where it executes runs itself, and every Celery
worker builds them in distributed mode; ``wiring.parts.build_parts`` calls them for both.
"""

from __future__ import annotations

from collections.abc import Callable

from toolchest_wes.config import ContainerRuntime, Settings
from toolchest_wes.core.executor import ExecutorDeps
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.engines.cwltool_engine import CHILD_ENTRY, CwltoolEngine
from toolchest_wes.engines.process import SubprocessLauncher
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.engines.warm_launcher import WarmLauncher
from toolchest_wes.store.base import RunRecord, StateStore
from toolchest_wes.wiring.sandbox import build_sandbox
from toolchest_wes.wiring.snakemake_engine import build_snakemake_engines

__all__ = [
    "ENGINE_BUILDERS",
    "EngineBuilder",
    "build_engine",
    "build_executor_deps",
    "build_launcher",
    "build_registry",
]

#: Builds an engine's objects from settings; the bool is ``required``: when the engine's
#: program is missing, a required builder raises ``ValueError`` saying what to install, an
#: optional one returns ``[]``.
EngineBuilder = Callable[[Settings, bool], list[WorkflowEngine]]


def build_engine(settings: Settings) -> CwltoolEngine:
    """The cwltool engine configured by settings, with its option table loaded."""
    runtime = settings.effective_container_runtime
    engine = CwltoolEngine(
        container_runtime=runtime.value if runtime is not ContainerRuntime.AUTO else "none",
        allow_no_container=settings.allow_no_container,
        default_args=tuple(settings.default_engine_parameters),
        nice=settings.engine_nice,
        sandbox=build_sandbox(settings),
    )
    engine.warm()
    return engine


def _build_cwltool(settings: Settings, required: bool) -> list[WorkflowEngine]:
    return [build_engine(settings)]


#: Every engine this server can offer, by name; cwltool first, the default for CWL.
ENGINE_BUILDERS: dict[str, EngineBuilder] = {
    "cwltool": _build_cwltool,
    "snakemake": build_snakemake_engines,
}


def build_registry(
    settings: Settings, engines: list[WorkflowEngine] | None = None
) -> EngineRegistry:
    """The engines of this server: ``engines``, or cwltool and every engine installed here."""
    if engines:
        return EngineRegistry(engines)
    built = [e for build in ENGINE_BUILDERS.values() for e in build(settings, False)]
    return EngineRegistry(built)


def build_launcher(settings: Settings) -> Launcher:
    """A warm launcher that starts warming now, or plain subprocesses if switched off."""
    if not settings.warm_engine:
        return SubprocessLauncher()
    launcher = WarmLauncher([CHILD_ENTRY])
    launcher.start_background()
    return launcher


def build_executor_deps(
    settings: Settings,
    store: StateStore,
    workspace: Workspace,
    registry: EngineRegistry,
    launcher: Launcher,
) -> ExecutorDeps:
    """What ``execute_run`` needs in this process."""
    return ExecutorDeps(
        store=store,
        workspace=workspace,
        engine_for=_engine_lookup(registry),
        launcher=launcher,
        poll_interval_s=settings.poll_interval_s,
        cancel_grace_s=settings.cancel_grace_s,
        lease_ttl_s=settings.lease_ttl_s,
    )


def _engine_lookup(registry: EngineRegistry) -> Callable[[RunRecord], WorkflowEngine]:
    def engine_for(record: RunRecord) -> WorkflowEngine:
        engine = registry.for_type(record.request.workflow_type)
        if engine is None:
            raise LookupError(f"no engine for workflow_type {record.request.workflow_type!r}")
        return engine

    return engine_for
