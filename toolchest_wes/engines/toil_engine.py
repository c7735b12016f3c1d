"""ToilEngine: CWL through ``toil-cwl-runner`` and WDL through ``toil-wdl-runner``.

Toil runs in its own interpreter, found by :func:`find_toil` (a virtualenv named by the
operator, this server's own, or ``PATH``), so its pins never have to match ours. Each run
is one process of ``toolchest_wes.engines.toil_child``, which starts the Toil leader,
turns Toil's per-job logs into the server's task logs, and kills every process Toil
started (its workers lead sessions of their own) when the run is cancelled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from toolchest_wes.engines.base import (
    EngineParameters,
    InvalidEngineParameterError,
    LaunchSpec,
    PreparedRun,
)
from toolchest_wes.engines.flags import no_container_args, positive_number, switch
from toolchest_wes.engines.slurm_sweep import run_comment
from toolchest_wes.models import DefaultWorkflowEngineParameter

__all__ = [
    "ALLOWED_FLAGS",
    "CHILD_MODULE",
    "POLICY_FLAGS",
    "RUNNERS",
    "TYPE_VERSIONS",
    "ToilEngine",
    "find_toil",
    "slurm_args",
    "toil_version",
]

#: The program that supervises one Toil run (see ``toil_child``).
CHILD_MODULE = "toolchest_wes.engines.toil_child"

#: The Toil front end of each workflow type.
RUNNERS = {"CWL": "toil-cwl-runner", "WDL": "toil-wdl-runner"}

#: The language versions Toil 9 runs, spelled as WES clients send them.
TYPE_VERSIONS = {"CWL": ("v1.0", "v1.1", "v1.2"), "WDL": ("1.0", "1.1")}

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_CLEAN_CHOICES = ("always", "onError", "never", "onSuccess")

#: Toil flags a user may set per run: ``None`` is a switch, a tuple lists the accepted
#: values, a ``(low, high)`` pair of ints bounds an integer, ``float`` a positive number.
#: None of them reaches outside the run or overrides the server's policy.
ALLOWED_FLAGS: dict[str, tuple[str, ...] | tuple[int, int] | type[float] | None] = {
    "--retryCount": (0, 5),
    "--logLevel": _LOG_LEVELS,
    "--logDebug": None,
    "--logInfo": None,
    "--logWarning": None,
    "--logCritical": None,
    "--stats": None,
    "--cleanWorkDir": _CLEAN_CHOICES,
    "--defaultCores": float,
    "--rescueJobsFrequency": float,
    "--doubleMem": None,
}

#: Flags of one workflow type only (``toil-cwl-runner`` takes cwltool's, WDL its own).
TYPE_FLAGS: dict[str, dict[str, tuple[str, ...] | tuple[int, int] | type[float] | None]] = {
    "CWL": {
        "--strict": None,
        "--non-strict": None,
        "--enable-dev": None,
        "--enable-ext": None,
        "--strict-memory-limit": None,
        "--strict-cpu-limit": None,
        "--no-container": None,
    },
    "WDL": {"--allCallOutputs": None, "--strict": None, "--quantCheck": ("true", "false")},
}

#: Toil flags that name places outside the run, pick the batch system or the resources, or
#: would let a run outlive its cancel: the server sets them, a run may not.
POLICY_FLAGS = frozenset(
    {
        "--jobStore",
        "--batchSystem",
        "--workDir",
        "--coordinationDir",
        "--runDir",
        "--outdir",
        "--outputDirectory",
        "--wdlOutputDirectory",
        "-o",
        "--outputFile",
        "--wdlOutputFile",
        "-m",
        "--writeLogs",
        "--writeLogsGzip",
        "--writeLogsFromAllJobs",
        "--writeMessages",
        "--logFile",
        "--logRotating",
        "--maxCores",
        "--maxMemory",
        "--maxDisk",
        "--defaultMemory",
        "--defaultDisk",
        "--maxJobs",
        "--maxLocalJobs",
        "--restart",
        "--clean",
        "--tmpdir-prefix",
        "--tmp-outdir-prefix",
        "--cachedir",
        "--basedir",
        "--destBucket",
        "--container",
        "--wdlContainer",
        "--singularity",
        "--podman",
        "--docker",
        "--user-space-docker-cmd",
        "--preserve-environment",
        "--preserve-entire-environment",
        "--bypass-file-store",
        "--linkImports",
        "--moveOutputs",
        "--caching",
        "--disableCaching",
        "--provisioner",
        "--nodeTypes",
        "--maxNodes",
        "--metrics",
        "--statePollingWait",
        "--badWorker",
        "--badWorkerFailInterval",
        "--referenceInputs",
        "--importWorkersDisk",
        "--runImportsOnWorkers",
    }
)

#: How each container runtime of the server reaches Toil's CWL runner.
CWL_CONTAINER_ARGS: dict[str, list[str]] = {
    "docker": [],
    "podman": ["--podman"],
    "singularity": ["--singularity"],
    "none": ["--no-container"],
}

#: What Toil's WDL runner uses for tasks. ``host`` runs them without a container (Toil 9
#: has no such mode; ``toil_hostexec`` stands in for Singularity, see there).
WDL_CONTAINERS = ("host", "singularity", "docker")

_DEFAULT_MEMORY = 2 * 1024**3  # Toil's own --defaultMemory
_METADATA_GLOBS = (
    "lib/python3*/site-packages/toil-*.dist-info",
    "lib/python3*/dist-packages/toil-*.dist-info",
)


def find_toil(venv: Path | None = None) -> Path | None:
    """The folder holding ``toil-cwl-runner`` and ``toil-wdl-runner``, or ``None``.

    Looks in ``venv/bin`` when a virtualenv is named (and nowhere else), then in this
    interpreter's own ``bin`` (``pip install 'toolchest-wes[toil]'``), then on ``PATH``.
    """
    if venv is not None:
        candidates = [venv / "bin"]
    else:
        candidates = [Path(sys.prefix) / "bin"]
        candidates += [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    for folder in candidates:
        if all(os.access(folder / program, os.X_OK) for program in RUNNERS.values()):
            return folder.absolute()
    return None


@functools.cache
def toil_version(bin_dir: Path) -> str:
    """The version of the Toil whose programs are in ``bin_dir``, from its package metadata.

    The metadata is looked for under ``bin_dir``'s prefix and under that of the interpreter
    that ``toil-cwl-runner`` names on its first line (a system install's ``dist-packages``).

    Raises:
        LookupError: No metadata of Toil was found there.
    """
    prefixes = [bin_dir.parent]
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(bin_dir / RUNNERS["CWL"], encoding="utf-8") as script:
            first = script.readline()
        if first.startswith("#!/"):
            prefixes.append(Path(first[2:].split()[0]).parent.parent)
    for prefix in prefixes:
        for pattern in _METADATA_GLOBS:
            for dist_info in sorted(prefix.glob(pattern)):
                for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
    if bin_dir.parent == Path(sys.prefix).absolute():
        return metadata.version("toil")
    raise LookupError(f"cannot tell the version of the Toil in {bin_dir}")


Kind = tuple[str, ...] | tuple[int, int] | type[float] | None


@dataclass
class ToilEngine:
    """Runs one workflow type (``CWL`` or ``WDL``) with Toil.

    Args:
        workflow_type: ``CWL`` or ``WDL``.
        bin_dir: The folder of Toil's programs (:func:`find_toil`).
        batch_system: Toil's ``--batchSystem`` (``single_machine``, ``slurm``,
            ``kubernetes``, ...).
        jobstore_dir: Where job stores go, one per run, where every node of the batch system
            reaches them: a folder on shared storage (``DIR/<run_id>``), or a Toil locator
            prefix such as ``aws:us-west-2:wes`` (``aws:us-west-2:wes-<run_id>``, for
            Kubernetes); ``None``: in the run's own work folder.
        default_args: Toil flags added to every run, from the operator.
        container_runtime: How CWL tools with a DockerRequirement run (``docker``,
            ``podman``, ``singularity`` or ``none``).
        allow_no_container: Whether a CWL run may ask for ``--no-container``.
        wdl_container: How WDL tasks run (:data:`WDL_CONTAINERS`).
        nice: Niceness increment of the Toil processes.
    """

    workflow_type: str
    bin_dir: Path
    batch_system: str = "single_machine"
    jobstore_dir: str | None = None
    default_args: tuple[str, ...] = ()
    container_runtime: str = "none"
    allow_no_container: bool = True
    wdl_container: str = "host"
    nice: int = 0
    name: str = "toil"

    def __post_init__(self) -> None:
        if self.workflow_type not in RUNNERS:
            raise ValueError(f"Toil runs {', '.join(RUNNERS)}, not {self.workflow_type!r}")
        if self.wdl_container not in WDL_CONTAINERS:
            raise ValueError(f"wdl_container must be one of {', '.join(WDL_CONTAINERS)}")
        self.type_versions: tuple[str, ...] = TYPE_VERSIONS[self.workflow_type]

    @property
    def runner(self) -> Path:
        """The Toil front end of this engine's workflow type."""
        return self.bin_dir / RUNNERS[self.workflow_type]

    def version(self) -> str:
        """The version of the Toil that runs the workflows."""
        return toil_version(self.bin_dir)

    def default_parameters(self) -> list[DefaultWorkflowEngineParameter]:
        """The flags every run gets, as service-info lists them."""
        values = [("--batchSystem", self.batch_system), *_pairs(self._policy_args())]
        if self.workflow_type == "WDL" and self.wdl_container == "host":
            # The singularity that Toil is told about runs tasks on the host (toil_hostexec).
            values = [(n, "host" if n == "--container" else v) for n, v in values]
        return [
            DefaultWorkflowEngineParameter(name=name, type="string", default_value=value)
            for name, value in values
        ]

    def _policy_args(self) -> list[str]:
        if self.workflow_type == "CWL":
            return [*CWL_CONTAINER_ARGS[self.container_runtime], *self.default_args]
        container = "singularity" if self.wdl_container == "host" else self.wdl_container
        return ["--container", container, *self.default_args]

    def check_parameters(self, params: dict[str, Any]) -> EngineParameters:
        """Turn ``workflow_engine_parameters`` into Toil flags, by the allow-list.

        Keys may be written with or without the leading ``--``. Null values and flags that
        Toil does not take here (such as cwltool's ``--parallel``) are ignored with a note;
        a flag of :data:`POLICY_FLAGS` is refused.
        """
        allowed = {**ALLOWED_FLAGS, **TYPE_FLAGS[self.workflow_type]}
        result = EngineParameters()
        refused: list[str] = []
        for key, value in params.items():
            flag = key if key.startswith("-") else f"--{key}"
            if flag in POLICY_FLAGS:
                refused.append(key)
                continue
            if value is None:
                result.notes.append(f"ignored workflow_engine_parameters {key!r}: no value")
                continue
            if flag not in allowed:
                result.notes.append(
                    f"ignored workflow_engine_parameters {key!r}: not a flag that Toil's "
                    f"{RUNNERS[self.workflow_type]} takes on this server"
                )
                continue
            result.args.extend(self._flag_args(key, flag, allowed[flag], value))
        if refused:
            raise InvalidEngineParameterError(
                f"workflow_engine_parameters {', '.join(map(repr, refused))} not allowed on "
                "this server: the server sets where Toil keeps its files, its batch system "
                "and its resources. Allowed Toil flags: " + ", ".join(sorted(allowed))
            )
        return result

    def _flag_args(self, key: str, flag: str, kind: Kind, value: Any) -> list[str]:
        text = str(value).lower() if isinstance(value, bool) else str(value).strip()
        if kind is None:
            if not switch(key, value):
                return []
            if flag == "--no-container":
                return no_container_args(self.allow_no_container, self.container_runtime)
            return [flag]
        if isinstance(kind, tuple) and kind and isinstance(kind[0], int):
            low, high = kind[0], int(kind[1])
            if not (text.isdigit() and low <= int(text) <= high):
                raise InvalidEngineParameterError(
                    f"workflow_engine_parameters {key!r} takes a whole number from {low} to "
                    f"{high}, not {value!r}"
                )
            return [flag, text]
        if isinstance(kind, tuple):
            choices = {str(c).lower(): str(c) for c in kind}
            if text.lower() not in choices:
                raise InvalidEngineParameterError(
                    f"workflow_engine_parameters {key!r} must be one of "
                    f"{', '.join(map(str, kind))}, not {value!r}"
                )
            return [flag, choices[text.lower()]]
        return [flag, positive_number(key, value)]

    def launch_spec(self, run: PreparedRun) -> LaunchSpec:
        """``toil_child RUNNER [policy] [user flags] workflow params.json``: the ``toil_child``
        entry, forked from a warm interpreter or run as ``python -m``."""
        work = run.work_dir
        jobstore = _jobstore(self.jobstore_dir, run)
        logs = work / "toil-logs"
        argv = [
            "toil_child",
            str(self.runner),
            "--jobStore",
            jobstore,
            "--batchSystem",
            self.batch_system,
            "--writeLogs",
            str(logs),
            "--writeLogsFromAllJobs",
            "true",
            "--clean",
            "always",
            *self._resource_args(run),
        ]
        if self.batch_system == "single_machine":
            # Node-local scratch: on a cluster each node keeps its own default.
            argv += ["--workDir", str(work / "toil")]
        argv += self._policy_args()
        if self.batch_system == "slurm":
            argv += [slurm_args(self.default_args, run_comment(run.run_id))]
        argv += run.engine_args
        if self.workflow_type == "CWL":
            argv += ["--outdir", str(run.outputs_dir)]
            if self.batch_system == "single_machine":
                argv += [
                    "--tmpdir-prefix",
                    f"{work}/tmp",
                    "--tmp-outdir-prefix",
                    f"{work}/out",
                ]
        else:
            argv += ["--outputDirectory", str(run.outputs_dir)]
        argv += [run.workflow, str(run.params_file)]
        env = {
            "TOOLCHEST_WES_TOIL_TASK_DIR": str(run.task_dir),
            "TOOLCHEST_WES_TOIL_LOG_DIR": str(logs),
            "TOOLCHEST_WES_TOIL_WORK_DIR": str(work),
            "TOOLCHEST_WES_TOIL_BIN": str(self.bin_dir),
            "TOOLCHEST_WES_TOIL_NICE": str(self.nice),
            "TOOLCHEST_WES_TOIL_HOSTEXEC": "1"
            if self.workflow_type == "WDL" and self.wdl_container == "host"
            else "",
        }
        file_store = jobstore[len("file:") :] if jobstore.startswith("file:") else ""
        if self.batch_system == "slurm":
            # toil_child's watcher cancels the run's Slurm jobs that its leader leaves behind.
            env["TOOLCHEST_WES_TOIL_SLURM_COMMENT"] = run_comment(run.run_id)
            # A file job store outside the run's folder is the watcher's to remove.
            outside = self.jobstore_dir is not None
            env["TOOLCHEST_WES_TOIL_SLURM_REMOVE"] = file_store if outside else ""
        else:
            # Every process that uses it runs below toil_child, which removes it once they
            # are gone: a leader killed on cancel cannot honour --clean always.
            env["TOOLCHEST_WES_TOIL_JOBSTORE"] = file_store
        return LaunchSpec(
            argv=argv,
            # Forked from the warm zygote where there is one: no interpreter to start.
            entry=CHILD_MODULE,
            cwd=run.attachments_dir,
            stdout=run.stdout_path,
            stderr=run.stderr_path,
            env=env,
        )

    @staticmethod
    def _resource_args(run: PreparedRun) -> list[str]:
        # Unset, Toil takes every core and all the memory of the machine.
        cores, memory = run.resources.cores, run.resources.memory_bytes
        args: list[str] = []
        if cores is not None:
            args += ["--maxCores", str(cores)]
        if memory is not None:
            # Toil refuses a job that asks for more than --maxMemory, and every job asks
            # for --defaultMemory unless it says otherwise.
            args += [
                "--maxMemory",
                str(memory),
                "--defaultMemory",
                str(min(memory, _DEFAULT_MEMORY)),
            ]
        return args

    def collect_outputs(self, run: PreparedRun, stdout_path: Path) -> dict[str, Any]:
        """The output object Toil printed: CWL's as it is; WDL's with its files as CWL Files.

        ``toil-wdl-runner`` prints ``{"wf.out": "/path/in/outputs"}``; paths of files in the
        outputs folder become ``{"class": "File", ...}`` objects, so that the server lists and
        serves them as it does cwltool's.
        """
        text = stdout_path.read_text(encoding="utf-8")
        try:
            outputs = json.loads(text) if text.strip() else None
        except ValueError:
            outputs = None
        if not isinstance(outputs, dict):
            raise ValueError(f"{RUNNERS[self.workflow_type]} did not print an output object")
        if self.workflow_type == "WDL":
            root = run.outputs_dir.resolve()
            return {key: _wdl_files(value, root) for key, value in outputs.items()}
        return outputs


def slurm_args(default_args: tuple[str, ...], comment: str) -> str:
    """``--slurmArgs=…``: the operator's Slurm arguments and ``--comment=COMMENT``.

    The operator's come from ``--slurmArgs`` in ``default_args`` (the last one, as Toil reads
    it) or else ``TOIL_SLURM_ARGS``; this flag goes after them, so Toil takes it.
    """
    given = os.environ.get("TOIL_SLURM_ARGS", "")
    for i, arg in enumerate(default_args):
        if arg == "--slurmArgs" and i + 1 < len(default_args):
            given = default_args[i + 1]
        elif arg.startswith("--slurmArgs="):
            given = arg.split("=", 1)[1]
    # "=" keeps argparse from reading a value that starts with "--" as a flag.
    return f"--slurmArgs={given} --comment={comment}".replace("= ", "=", 1)


def _jobstore(where: str | None, run: PreparedRun) -> str:
    """The Toil job store locator of ``run``: ``file:`` a folder, or another kind's prefix."""
    if where is None:
        return f"file:{run.work_dir / 'jobstore'}"
    kind, sep, _rest = where.partition(":")
    if sep and kind in ("aws", "google") and not where.startswith("/"):
        return f"{where}-{run.run_id}"
    return f"file:{Path(where.removeprefix('file:')) / run.run_id}"


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    """``["--a", "1", "--b"]`` as ``[("--a", "1"), ("--b", "true")]``."""
    pairs: list[tuple[str, str]] = []
    for i, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        following = args[i + 1] if i + 1 < len(args) else None
        value = following if following is not None and not following.startswith("-") else "true"
        pairs.append((arg, value))
    return pairs


def _wdl_files(value: Any, root: Path) -> Any:
    if isinstance(value, list):
        return [_wdl_files(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _wdl_files(v, root) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        if path.is_file() and path.resolve().is_relative_to(root):
            return {
                "class": "File",
                "location": path.resolve().as_uri(),
                "path": str(path.resolve()),
                "basename": path.name,
                "size": path.stat().st_size,
            }
    return value
