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
from toolchest_wes.wiring.toil_engine import build_toil_engines

__all__ = [
    "ENGINE_BUILDERS",
    "EngineBuilder",
    "build_engine",
    "build_engines",
    "build_executor_deps",
    "build_launcher",
    "build_registry",
]

#: Builds an engine's objects from settings; ``required`` (the bool): when the engine's
#: program is missing, raise ``ValueError`` saying what to install rather than return [].
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


def _cwltool_engines(settings: Settings, required: bool) -> list[WorkflowEngine]:
    return [build_engine(settings)]


ENGINE_BUILDERS: dict[str, EngineBuilder] = {
    "cwltool": _cwltool_engines,
    "toil": build_toil_engines,
}


def build_engines(settings: Settings) -> list[WorkflowEngine]:
    """The engines that ``settings.engines`` names; ``auto`` adds every engine found.

    Raises:
        ValueError: An unknown engine name, or a named engine whose program is missing.
    """
    engines: list[WorkflowEngine] = []
    names = [n.strip().lower() for n in settings.engines if n.strip()] or ["auto"]
    unknown = sorted(set(names) - {"auto", *ENGINE_BUILDERS})
    if unknown:
        raise ValueError(
            f"unknown engine {', '.join(unknown)}; choose from auto, {', '.join(ENGINE_BUILDERS)}"
        )
    done: set[str] = set()
    for name in names:
        # auto: cwltool first (the default of CWL), then whichever other engine is there.
        wanted = (
            [(n, n == "cwltool") for n in ENGINE_BUILDERS] if name == "auto" else [(name, True)]
        )
        for engine_name, required in wanted:
            if engine_name not in done:
                built = ENGINE_BUILDERS[engine_name](settings, required)
                if built:
                    done.add(engine_name)
                engines += built
    return engines


def build_registry(
    settings: Settings, engines: list[WorkflowEngine] | None = None
) -> EngineRegistry:
    """The engines of this server: ``engines``, or those that settings name."""
    return EngineRegistry(engines or build_engines(settings))


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
        engine = registry.for_type(
            record.request.workflow_type, record.request.workflow_engine
        ) or registry.for_type(record.request.workflow_type)
        if engine is None:
            raise LookupError(f"no engine for workflow_type {record.request.workflow_type!r}")
        return engine

    return engine_for
