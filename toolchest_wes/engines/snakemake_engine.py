"""SnakemakeEngine: Snakemake workflows (workflow_type ``SMK``) sent as attachments.

A run is ``snakemake --snakefile <the attached Snakefile> --configfile params.json`` in the
run's attachments folder, so that relative paths in the Snakefile find the other
attachments; ``workflow_params`` become Snakemake's ``config``. The process is exec'd
(``entry=None``) as the leader of its own process group: Snakemake runs each job's shell
command as a child in that group, so cancelling a run kills every job with it.

Task logs come from a logger plugin of ours (``--logger toolchest``,
``engines/snakemake_logger``), which Snakemake loads from the ``PYTHONPATH`` we give it.

The outputs of a run are the files it ended with (``engines/snakemake_outputs.py``), linked
into the run's outputs folder, with an output object of CWL ``File`` objects by path, so
listing, downloading and zipping outputs work as for CWL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
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
from toolchest_wes.engines.flags import switch
from toolchest_wes.engines.process import program_output
from toolchest_wes.engines.sandbox import is_secret_env
from toolchest_wes.engines.snakemake_outputs import collect_final_files
from toolchest_wes.models import DefaultWorkflowEngineParameter

__all__ = [
    "ALLOWED_FLAGS",
    "CONDA_FLAGS",
    "CONTAINER_FLAGS",
    "SUPPORTED_MAJORS",
    "SnakemakeEngine",
    "find_snakemake",
]

#: The folder holding our logger plugin package, put on the engine's ``PYTHONPATH``.
PLUGIN_PATH = Path(__file__).with_name("snakemake_logger")
#: The plugin's name for ``--logger`` (its package is ``snakemake_logger_plugin_toolchest``).
LOGGER_NAME = "toolchest"
TASK_DIR_ENV = "TOOLCHEST_WES_SMK_TASK_DIR"
JOBS_ENV = "TOOLCHEST_WES_SMK_JOBS"
#: Where the plugin lists each job's files, in the run's work folder.
JOBS_FILE = "snakemake-jobs.jsonl"

#: Snakemake major versions this engine drives: the logger plugin interface is Snakemake 9's.
SUPPORTED_MAJORS = ("9",)

#: Snakemake flags a user may set per run. ``None`` marks a switch; ``int`` a flag taking a
#: number of zero or more. Everything here stays inside the run's directory and leaves
#: resources, software deployment and execution to the server.
ALLOWED_FLAGS: dict[str, type[int] | None] = {
    "--keep-going": None,
    "--forceall": None,
    "--rerun-incomplete": None,
    "--printshellcmds": None,
    "--verbose": None,
    "--debug-dag": None,
    "--dry-run": None,
    "--notemp": None,
    "--keep-incomplete": None,
    "--allow-ambiguity": None,
    "--ignore-incomplete": None,
    "--show-failed-logs": None,
    "--latency-wait": int,
    "--restart-times": int,
}

#: Short spellings of allowed flags.
SHORT_FLAGS = {
    "-k": "--keep-going",
    "-F": "--forceall",
    "-p": "--printshellcmds",
    "-n": "--dry-run",
    "-T": "--restart-times",
    "-w": "--latency-wait",
}

#: Flags that use conda, allowed only where the operator allows it (``snakemake_allow_conda``).
CONDA_FLAGS = frozenset({"--use-conda"})
#: Flags that use containers, allowed only with ``snakemake_allow_apptainer``.
CONTAINER_FLAGS = frozenset({"--use-singularity", "--use-apptainer"})
_DEPLOYMENT_FLAGS = frozenset({"--software-deployment-method", "--sdm"})

_HINTS = {
    "--cores": "set the run's cores with the workflow_engine_parameters key 'cores'",
    "--jobs": "set the run's cores with the workflow_engine_parameters key 'cores'",
    "--resources": "set the run's memory with the workflow_engine_parameters key 'memory'",
    "--configfile": "send the config as workflow_params",
    "--configfiles": "send the config as workflow_params",
    "--config": "send the config as workflow_params",
    "--snakefile": "name the Snakefile in workflow_url",
    "--directory": "the server chooses each run's folder",
}

_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b")


def find_snakemake(venv: Path | None = None) -> Path | None:
    """The ``snakemake`` program: in ``venv``, else beside this interpreter, else on PATH."""
    if venv is not None:
        program = venv / "bin" / "snakemake"
        return program if os.access(program, os.X_OK) else None
    beside = Path(sys.executable).parent / "snakemake"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("snakemake")
    return Path(found).absolute() if found else None


@functools.cache
def _installed_version(program: Path) -> str:
    if program.parent == Path(sys.executable).parent:
        # Installed with the server: its metadata answers without starting Snakemake.
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version("snakemake")
    return program_output([str(program), "--version"]).strip()


@functools.cache
def _known_flags(program: Path) -> frozenset[str]:
    """Every option string that ``snakemake --help`` names.

    Asked only for a flag outside the allow-list, to tell a refused Snakemake flag from a
    foreign one, so a server start costs no Snakemake start.
    """
    try:
        text = program_output([str(program), "--help"])
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(_OPTION.findall(text))


@dataclass
class SnakemakeEngine:
    """Runs Snakemake workflows with an installed Snakemake 9.

    Args:
        program: The ``snakemake`` program (absolute).
        default_cores: Cores of a run that asks for none.
        allow_conda: Whether a run may ask for ``--use-conda``.
        allow_apptainer: Whether a run may ask for ``--use-apptainer``/``--use-singularity``.
        default_args: Snakemake flags added to every run.
        nice: Niceness increment of the engine process and its jobs.
    """

    program: Path
    default_cores: int = 1
    allow_conda: bool = False
    allow_apptainer: bool = False
    default_args: tuple[str, ...] = ()
    nice: int = 0
    name: str = "snakemake"
    workflow_type: str = "SMK"
    #: "1.0" is what sapporo lists for SMK and what its clients send; "9" is the major
    #: version of the Snakemake that Snakefiles are written for.
    type_versions: tuple[str, ...] = ("1.0", "9")

    def version(self) -> str:
        """The installed Snakemake's version."""
        return _installed_version(self.program)

    def check_installed(self) -> None:
        """Fail now if the program is not a Snakemake this engine can drive.

        Raises:
            ValueError: It does not run, or is not Snakemake 9.
        """
        try:
            found = self.version()
        except (OSError, subprocess.SubprocessError) as exc:
            raise ValueError(f"{self.program} --version failed: {exc}") from exc
        if found.split(".")[0] not in SUPPORTED_MAJORS:
            raise ValueError(
                f"{self.program} is Snakemake {found}; this server drives Snakemake "
                f"{', '.join(SUPPORTED_MAJORS)}.x (pip install 'toolchest-wes[snakemake]')"
            )

    def default_parameters(self) -> list[DefaultWorkflowEngineParameter]:
        """The flags every run gets, as service-info lists them."""
        return [
            DefaultWorkflowEngineParameter(
                name="--cores", type="int", default_value=str(self.default_cores)
            ),
            *(
                DefaultWorkflowEngineParameter(name=arg, type="flag", default_value="true")
                for arg in self.default_args
            ),
        ]

    def check_parameters(self, params: dict[str, Any]) -> EngineParameters:
        """Turn ``workflow_engine_parameters`` into Snakemake flags, by the allow-list.

        Keys may be written with or without the leading ``--``. Null values and flags that
        Snakemake does not know (such as cwltool's ``--parallel``) are ignored with a note.
        Any other Snakemake flag outside the allow-list is refused.
        """
        result = EngineParameters()
        for key, value in params.items():
            flag = key if key.startswith("-") else f"--{key}"
            flag = SHORT_FLAGS.get(flag, flag)
            if value is None:
                result.notes.append(f"ignored workflow_engine_parameters {key!r}: no value")
                continue
            if flag in ALLOWED_FLAGS:
                result.args.extend(self._flag_args(key, flag, value))
            elif flag in CONDA_FLAGS | CONTAINER_FLAGS:
                result.args.extend(self._deploymentswitch(key, flag, value))
            elif flag in _DEPLOYMENT_FLAGS:
                result.args.extend(self._deployment_methods(key, value))
            elif flag in _HINTS or flag in _known_flags(self.program):
                hint = _HINTS.get(
                    flag,
                    "it would reach outside the run's directory or override the server's policy",
                )
                raise InvalidEngineParameterError(
                    f"workflow_engine_parameters {key!r} is not allowed on this server: "
                    f"{hint}. Allowed Snakemake flags: {', '.join(sorted(self._allowed()))}"
                )
            else:
                result.notes.append(
                    f"ignored workflow_engine_parameters {key!r}: not a Snakemake option"
                )
        return result

    def _allowed(self) -> set[str]:
        allowed = set(ALLOWED_FLAGS)
        if self.allow_conda:
            allowed |= CONDA_FLAGS
        if self.allow_apptainer:
            allowed |= CONTAINER_FLAGS
        return allowed

    def _flag_args(self, key: str, flag: str, value: Any) -> list[str]:
        if ALLOWED_FLAGS[flag] is None:
            return [flag] if switch(key, value) else []
        text = str(value).strip()
        if not text.isdigit():
            raise InvalidEngineParameterError(
                f"workflow_engine_parameters {key!r} takes a whole number, not {value!r}"
            )
        return [flag, text]

    def _deploymentswitch(self, key: str, flag: str, value: Any) -> list[str]:
        if not switch(key, value):
            return []
        allowed = self.allow_conda if flag in CONDA_FLAGS else self.allow_apptainer
        if not allowed:
            raise InvalidEngineParameterError(
                f"workflow_engine_parameters {key!r} is not allowed: this server does not "
                "let Snakemake runs deploy software "
                f"({'conda' if flag in CONDA_FLAGS else 'containers'})"
            )
        return [flag]

    def _deployment_methods(self, key: str, value: Any) -> list[str]:
        methods = str(value).replace(",", " ").split()
        permitted = {"conda": self.allow_conda, "apptainer": self.allow_apptainer}
        refused = [m for m in methods if not permitted.get(m, False)]
        if refused:
            raise InvalidEngineParameterError(
                f"workflow_engine_parameters {key!r}: software deployment method(s) "
                f"{', '.join(refused)} not allowed on this server"
            )
        return ["--software-deployment-method", *methods] if methods else []

    def launch_spec(self, run: PreparedRun) -> LaunchSpec:
        """``snakemake --snakefile … --configfile params.json --cores N [--resources …]``."""
        snakefile = run.workflow.partition("#")[0]
        cores = run.resources.cores or self.default_cores
        memory = run.resources.memory_bytes
        argv = [
            str(self.program),
            "--snakefile",
            snakefile,
            "--configfile",
            str(run.params_file),
            "--cores",
            str(cores),
            *(["--resources", f"mem_mb={max(1, memory // 2**20)}"] if memory else []),
            "--logger",
            LOGGER_NAME,
            "--nocolor",
            *self.default_args,
            *run.engine_args,
        ]
        nice = shutil.which("nice")
        if self.nice and nice:
            argv = [nice, "-n", str(self.nice), *argv]
        pythonpath = os.pathsep.join(
            p for p in (str(PLUGIN_PATH), os.environ.get("PYTHONPATH", "")) if p
        )
        env = {
            "PYTHONPATH": pythonpath,
            TASK_DIR_ENV: str(run.task_dir),
            JOBS_ENV: str(run.work_dir / JOBS_FILE),
            # Snakemake keeps caches and sources under $XDG_CACHE_HOME; one per run keeps
            # runs apart and leaves the server's home alone.
            "XDG_CACHE_HOME": str(run.work_dir / "cache"),
            # exec'd with the server's environment: the server's settings and credentials
            # must not reach the jobs' shell commands.
            **{name: "" for name in os.environ if is_secret_env(name)},
        }
        return LaunchSpec(
            argv=argv,
            entry=None,
            cwd=run.attachments_dir,
            stdout=run.stdout_path,
            stderr=run.stderr_path,
            env=env,
        )

    def collect_outputs(self, run: PreparedRun, stdout_path: Path) -> dict[str, Any]:
        """Link the run's final files into ``outputs_dir``; the output object names them."""
        return collect_final_files(run.work_dir / JOBS_FILE, run.attachments_dir, run.outputs_dir)
