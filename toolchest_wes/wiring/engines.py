"""The engines of a process from settings, their launcher, and the executor's needs.

``ENGINE_BUILDERS`` names every engine the server knows. ``Settings.engines`` picks among
them; ``auto`` (the default) offers cwltool and every other engine whose program is here.

The API builds these in embedded mode, where it executes runs itself, and every Celery
worker builds them in distributed mode; ``wiring.parts.build_parts`` calls them for both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from toolchest_wes.config import ContainerRuntime, Settings
from toolchest_wes.core.executor import ExecutorDeps
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.engines.cwltool_engine import CHILD_ENTRY, CwltoolEngine
from toolchest_wes.engines.process import SubprocessLauncher
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.engines.toil_engine import CHILD_MODULE as TOIL_CHILD
from toolchest_wes.engines.warm_launcher import WarmLauncher
from toolchest_wes.store.base import RunRecord, StateStore
from toolchest_wes.wiring.sandbox import build_sandbox
from toolchest_wes.wiring.snakemake_engine import build_snakemake_engines
from toolchest_wes.wiring.toil_engine import build_toil_engines

__all__ = [
    "ENGINE_BUILDERS",
    "EngineBuilder",
    "build_engine",
    "build_engines",
    "build_executor_deps",
    "build_launcher",
    "build_registry",
    "check_engines",
]

#: Builds one engine's objects (one per workflow type) from settings. With ``required``
#: false it returns ``[]`` when the engine's program is missing; with ``required`` true it
#: raises ``ValueError`` saying what to install.
EngineBuilder = Callable[[Settings, bool], list[WorkflowEngine]]

#: The name written for "every engine that is installed" in ``Settings.engines``.
AUTO = "auto"


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


def _cwltool(settings: Settings, required: bool) -> list[WorkflowEngine]:
    return [build_engine(settings)]


#: Every engine the server can offer, by name. cwltool comes first: it is the default for
#: CWL whenever it is offered.
ENGINE_BUILDERS: Mapping[str, EngineBuilder] = {
    "cwltool": _cwltool,
    "toil": build_toil_engines,
    "snakemake": build_snakemake_engines,
}


def build_engines(settings: Settings) -> list[WorkflowEngine]:
    """The engines ``settings.engines`` names, in that order (``auto``: every one installed).

    Raises:
        ValueError: An unknown engine name, or a named engine that is not installed.
    """
    names = [n.strip().lower() for n in settings.engines if n.strip()] or [AUTO]
    engines: list[WorkflowEngine] = []
    for name in names:
        if name == AUTO:
            for known, build in ENGINE_BUILDERS.items():
                if known not in names:
                    engines.extend(build(settings, False))
            continue
        named = ENGINE_BUILDERS.get(name)
        if named is None:
            raise ValueError(
                f"unknown engine {name!r}; this server knows {', '.join(ENGINE_BUILDERS)} "
                f"(or {AUTO})"
            )
        engines.extend(named(settings, True))
    return engines


def check_engines(settings: Settings) -> None:
    """Fail now, rather than in every server process, on an engine that cannot be offered.

    cwltool is a dependency of the server, so only the other engines named are looked for.

    Raises:
        ValueError: An unknown engine name, or a named engine that is not installed.
    """
    others = [n for n in settings.engines if n.strip().lower() not in ("cwltool", AUTO)]
    if others:
        build_engines(settings.model_copy(update={"engines": others}))


def build_registry(
    settings: Settings, engines: list[WorkflowEngine] | None = None
) -> EngineRegistry:
    """The engines of this server: ``engines``, or those that settings name."""
    return EngineRegistry(engines or build_engines(settings))


def build_launcher(settings: Settings, keeper: int | None = None) -> Launcher:
    """A warm launcher that starts warming now, or plain subprocesses if switched off.

    ``keeper``: see ``WarmLauncher``; the engines it forks outlive this process while the
    keeper lives.
    """
    if not settings.warm_engine:
        return SubprocessLauncher()
    # toil_child is light to import, and forked it starts a Toil run without an interpreter.
    launcher = WarmLauncher(
        [CHILD_ENTRY, TOIL_CHILD],
        keeper=keeper,
        spare_nice=settings.engine_nice if settings.engine_spare else None,
        reuse=settings.engine_reuse,
    )
    launcher.start_background()
    return launcher


def build_executor_deps(
    settings: Settings,
    store: StateStore,
    workspace: Workspace,
    registry: EngineRegistry,
    launcher: Launcher,
    files: RunFiles | None = None,
) -> ExecutorDeps:
    """What ``execute_run`` needs in this process; ``files`` when run files are kept in a
    storage of their own."""
    return ExecutorDeps(
        store=store,
        workspace=workspace,
        engine_for=_engine_lookup(registry),
        launcher=launcher,
        poll_interval_s=settings.poll_interval_s,
        cancel_grace_s=settings.cancel_grace_s,
        lease_ttl_s=settings.lease_ttl_s,
        renew_leases=settings.distributed,
        resources=settings.resource_policy,
        files=files,
        log_upload_interval_s=settings.storage_log_interval_s,
    )


def _engine_lookup(registry: EngineRegistry) -> Callable[[RunRecord], WorkflowEngine]:
    def engine_for(record: RunRecord) -> WorkflowEngine:
        request = record.request
        engine = registry.for_type(request.workflow_type, request.workflow_engine)
        if engine is None:
            raise LookupError(
                f"this worker has no engine {request.workflow_engine!r} for workflow_type "
                f"{request.workflow_type!r}; it runs "
                + ", ".join(f"{t} with {registry.engine_names(t)}" for t in registry.supported())
            )
        return engine

    return engine_for
