"""The engine contract: how a workflow language is validated, launched and read back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    # Only an annotation here: the zygote imports this module, and every engine process it
    # forks maps what the zygote imported (pydantic and the models add some 12 MB to each).
    from toolchest_wes.models import DefaultWorkflowEngineParameter

__all__ = [
    "EXIT_INTERNAL_ERROR",
    "EngineParameters",
    "InvalidEngineParameterError",
    "LaunchSpec",
    "Launcher",
    "PreparedRun",
    "ProcessHandle",
    "Resources",
    "WorkflowEngine",
]


#: Exit code of an engine process that failed in our own code rather than in the workflow
#: (EX_SOFTWARE from sysexits.h); the executor maps it to SYSTEM_ERROR.
EXIT_INTERNAL_ERROR = 70


class InvalidEngineParameterError(ValueError):
    """A ``workflow_engine_parameters`` entry the server refuses; the message names it."""


@dataclass
class EngineParameters:
    """The outcome of checking a run's ``workflow_engine_parameters``.

    Attributes:
        args: Engine flags to add to the command line.
        notes: One line per parameter that was ignored, and why (goes to ``system_logs``).
    """

    args: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Resources:
    """What one run may use, from its request and the operator's policy; ``None``: no limit
    set, the engine's own default applies.

    Engines pass ``cores`` and ``memory_bytes`` to their schedulers with their own flags. The
    executor enforces ``runtime_s``, and ``memory_bytes`` as a ceiling on the run's processes.

    Attributes:
        cores: Cores the run's jobs may use at once.
        memory_bytes: Memory the run's jobs may use at once, in bytes.
        runtime_s: Wall-clock seconds the run may take from its start.
    """

    cores: int | None = None
    memory_bytes: int | None = None
    runtime_s: float | None = None


@dataclass
class PreparedRun:
    """A staged run, as an engine sees it. All paths are absolute.

    Attributes:
        run_id: The run's id.
        run_dir: The run's directory.
        workflow: The workflow to run: a path under ``attachments_dir`` or an http(s) URL, with
            an optional ``#fragment``.
        params_file: The ``workflow_params`` as a JSON file.
        attachments_dir: Where the attachments are; relative paths in the params resolve here.
        outputs_dir: Where the engine must leave the outputs.
        work_dir: Scratch space of the engine.
        task_dir: Where per-task logs are written.
        stdout_path: File for the engine's stdout.
        stderr_path: File for the engine's stderr.
        engine_args: Extra flags accepted from the request.
        resources: The run's cores, memory and runtime.
    """

    run_id: str
    run_dir: Path
    workflow: str
    params_file: Path
    attachments_dir: Path
    outputs_dir: Path
    work_dir: Path
    task_dir: Path
    stdout_path: Path
    stderr_path: Path
    engine_args: list[str] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)


@dataclass
class LaunchSpec:
    """How to start one engine process.

    Attributes:
        argv: The command line; ``argv[0]`` names the program (also what ``RunLog.cmd`` shows).
        entry: A Python module whose ``main(argv: list[str]) -> int`` runs ``argv[1:]`` in
            process. A launcher may run it in a process forked from a warm interpreter that
            already imported it, or as ``python -m entry argv[1:]``; ``None`` means exec argv.
        cwd: Working directory.
        stdout: File that receives the process's stdout.
        stderr: File that receives the process's stderr.
        env: Variables added to the server's environment.
        record: Where the launcher records the started process (and, if it can, its exit)
            for a later server process to find it (``toolchest_wes.engines.engine_record``);
            ``None``: nowhere.
    """

    argv: list[str]
    entry: str | None
    cwd: Path
    stdout: Path
    stderr: Path
    env: dict[str, str] = field(default_factory=dict)
    record: Path | None = None


@runtime_checkable
class ProcessHandle(Protocol):
    """A started engine process, the leader of its own process group."""

    @property
    def pid(self) -> int:
        """Process id, which is also the process group id."""
        ...

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (forever if ``None``).

        Returns the exit code (negative: killed by that signal), or ``None`` if still running.
        Raises ``ProcessLostError`` if the launcher can no longer tell.
        """
        ...

    def kill_tree(self, grace_s: float) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after ``grace_s``."""
        ...


@runtime_checkable
class Launcher(Protocol):
    """Starts engine processes."""

    def start(self, spec: LaunchSpec) -> ProcessHandle:
        """Start the process described by ``spec`` in a new session and process group."""
        ...

    def close(self) -> None:
        """Stop helper processes; running engine processes are killed."""
        ...


@runtime_checkable
class WorkflowEngine(Protocol):
    """One engine for one workflow language."""

    name: str
    workflow_type: str
    type_versions: tuple[str, ...]

    def version(self) -> str:
        """The engine's real version."""
        ...

    def check_parameters(self, params: dict[str, Any]) -> EngineParameters:
        """Vet ``workflow_engine_parameters`` against the server's allow-list.

        Raises:
            InvalidEngineParameterError: A parameter that would reach outside the run's
                directory or the server's policy; the message names it.
        """
        ...

    def default_parameters(self) -> list[DefaultWorkflowEngineParameter]:
        """Parameters applied to every run, for service-info."""
        ...

    def launch_spec(self, run: PreparedRun) -> LaunchSpec:
        """How to start the engine on ``run``."""
        ...

    def collect_outputs(self, run: PreparedRun, stdout_path: Path) -> dict[str, Any]:
        """The output object of a run that exited 0. Raises ``ValueError`` if unreadable."""
        ...
