"""The runs' sandbox from settings: check that it can work, build its policy, describe it.

Every entry point checks the sandbox before it starts anything (``check_sandbox``): the API
factory, the Celery worker's entry module and the ``serve`` and ``worker`` commands. The
engine gets the policy (``build_sandbox``, through ``wiring.engines.build_engine``), and
service-info describes it (``describe_sandbox``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from toolchest_wes.config import AuthMode, ContainerRuntime, SandboxMode, Settings
from toolchest_wes.engines.sandbox import SandboxPolicy, program_paths, python_paths

__all__ = [
    "NOT_COVERED",
    "SandboxUnavailableError",
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
