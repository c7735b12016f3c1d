"""Shared wiring: the engine, launcher and executor dependencies both entry sides build."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from toolchest_wes.config import AuthMode, ContainerRuntime, SandboxMode, Settings
from toolchest_wes.core.executor import ExecutorDeps
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.engines.base import Launcher, WorkflowEngine
from toolchest_wes.engines.cwltool_engine import CHILD_ENTRY, CwltoolEngine
from toolchest_wes.engines.process import SubprocessLauncher
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.engines.sandbox import SandboxPolicy, program_paths, python_paths
from toolchest_wes.engines.warm_launcher import WarmLauncher
from toolchest_wes.store.base import RunRecord, StateStore

__all__ = [
    "SandboxUnavailableError",
    "build_engine",
    "build_executor_deps",
    "build_launcher",
    "build_registry",
    "build_sandbox",
    "check_sandbox",
    "describe_sandbox",
]

logger = logging.getLogger(__name__)

_DOCKER_SOCKET = Path("/var/run/docker.sock")


class SandboxUnavailableError(RuntimeError):
    """``--sandbox bwrap`` was asked for and cannot work here; the message says why."""


def check_sandbox(settings: Settings) -> SandboxMode:
    """The sandbox runs will have; raises if the one asked for cannot work.

    Raises:
        SandboxUnavailableError: ``sandbox`` is ``bwrap`` and bwrap does not work here.
    """
    mode = settings.effective_sandbox
    if mode is SandboxMode.BWRAP:
        problem = settings.sandbox_problem()
        if problem is not None:
            raise SandboxUnavailableError(
                f"--sandbox bwrap (TOOLCHEST_WES_SANDBOX) cannot work here: {problem}"
            )
    elif settings.sandbox is None and settings.effective_auth is not AuthMode.OFF:
        logger.warning(
            "runs are NOT sandboxed although authentication is on: %s; every user's tools "
            "run with this server's rights (--sandbox none silences this)",
            settings.sandbox_problem(),
        )
    return mode


def build_sandbox(settings: Settings) -> SandboxPolicy | None:
    """The sandbox every run gets (``run_dir`` left to the engine), or ``None``."""
    if check_sandbox(settings) is not SandboxMode.BWRAP:
        return None
    data_dir = os.path.realpath(settings.data_dir)
    hide: list[str] = []
    store = settings.effective_store_url
    if store.startswith("sqlite:///"):
        database = os.path.realpath(store.removeprefix("sqlite://"))
        hide += [database, f"{database}-wal", f"{database}-shm", os.path.dirname(database)]
    if settings.redis_password_file is not None:
        hide.append(os.path.realpath(settings.redis_password_file))
    home = os.environ.get("HOME")
    if home and os.path.realpath(home) != "/":
        hide.append(os.path.realpath(home))
    metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics:
        hide.append(os.path.realpath(metrics))
    # Folders that hold the data folder itself, or the system, must stay: only what lies
    # apart from both is hidden.
    hide = [
        p
        for p in dict.fromkeys(hide)
        if p != "/" and not _is_ancestor(p, data_dir) and not _is_ancestor(data_dir, p)
    ]
    groups: tuple[int, ...] = ()
    if settings.effective_container_runtime is ContainerRuntime.DOCKER and _DOCKER_SOCKET.exists():
        # The engine, once it is nobody, still drives Docker for container tools.
        groups = (_DOCKER_SOCKET.stat().st_gid,)
    return SandboxPolicy(
        run_dir="",
        data_dir=data_dir,
        hide=tuple(hide),
        keep=_outermost({*python_paths(), *program_paths(hide)}),
        allow_network=settings.sandbox_allow_network,
        uid=settings.sandbox_uid,
        extra_groups=groups,
        max_processes=settings.sandbox_max_processes,
        max_file_bytes=settings.sandbox_max_file_bytes,
        max_memory_bytes=settings.sandbox_max_memory_bytes,
    )


#: What the sandbox leaves open, for service-info and the README's Security section.
NOT_COVERED = (
    "the engine (cwltool) keeps the server's network to fetch http(s) inputs and documents",
    "tools in containers (DockerRequirement with a container runtime) are confined by the "
    "container, not by bwrap",
    "a tool that asks for the network (NetworkAccess) and is allowed it shares the host's "
    "network, loopback services included",
    "CPU time and disk space are not limited",
)


def describe_sandbox(settings: Settings, mode: SandboxMode) -> dict[str, object]:
    """What a run can and cannot reach, as service-info's ``toolchest_wes_sandbox``."""
    if mode is SandboxMode.NONE:
        return {
            "mode": mode.value,
            "summary": "runs have the server's rights: tools can read and write whatever the "
            "server can, and reach the network",
        }
    uid = settings.sandbox_uid
    return {
        "mode": mode.value,
        "summary": "each run's engine and tools see only the run's own folder; tools get a "
        "read-only system, a private /tmp and no network unless they ask for it",
        "readable": [
            "the system and the server's programs (read-only)",
            "the run's attachments (inputs)",
        ],
        "writable": ["the run's work folder (tools' working and output folders)", "/tmp"],
        "hidden": [
            "the data folder: other runs, the run database, the token file",
            "the server's environment variables, home folder and password files",
        ],
        "network": "for tools that ask for it (NetworkAccess: true)"
        if settings.sandbox_allow_network
        else "never for tools",
        "uid": "the server's" if uid is None else uid,
        "limits": {
            "processes": settings.sandbox_max_processes,
            "file_bytes": settings.sandbox_max_file_bytes,
            "memory_bytes": settings.sandbox_max_memory_bytes,
        },
        "not_covered": list(NOT_COVERED),
    }


def _outermost(paths: set[str]) -> tuple[str, ...]:
    """``paths`` without those inside another of them (binding the outer one is enough)."""
    ordered = sorted(paths)
    return tuple(p for p in ordered if not any(_is_ancestor(o, p) and o != p for o in ordered))


def _is_ancestor(path: str, of: str) -> bool:
    return of == path or of.startswith(path.rstrip("/") + "/")


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


def build_registry(
    settings: Settings, engines: list[WorkflowEngine] | None = None
) -> EngineRegistry:
    """The engines of this server: ``engines``, or cwltool from settings."""
    return EngineRegistry(engines or [build_engine(settings)])


def build_launcher(settings: Settings) -> Launcher:
    """A warm launcher that starts warming now, or plain subprocesses if switched off."""
    if not settings.warm_engine:
        return SubprocessLauncher()
    launcher = WarmLauncher([CHILD_ENTRY])
    launcher.start_background()
    return launcher


def build_executor_deps(
    settings: Settings, store: StateStore, registry: EngineRegistry, launcher: Launcher
) -> ExecutorDeps:
    """What ``execute_run`` needs in this process."""
    return ExecutorDeps(
        store=store,
        workspace=Workspace(settings.runs_dir),
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
