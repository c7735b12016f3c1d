"""CwltoolEngine: CWL v1.0, v1.1 and v1.2 through cwltool, with a vetted set of user flags."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
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
from toolchest_wes.engines.sandbox import SANDBOX_ENV, SandboxPolicy
from toolchest_wes.models import DefaultWorkflowEngineParameter

__all__ = ["ALLOWED_FLAGS", "CLIENT_PATH_FLAGS", "CONTAINER_ARGS", "CwltoolEngine"]

#: The module that runs cwltool inside a (possibly pre-warmed) engine process.
CHILD_ENTRY = "toolchest_wes.engines.cwltool_child"

#: cwltool flags a user may set per run. ``None`` marks a switch; a tuple lists the values
#: a flag accepts; ``float`` a flag taking a positive number. Everything here stays inside
#: the run's directory and leaves container and path policy to the server.
ALLOWED_FLAGS: dict[str, tuple[str, ...] | type[float] | None] = {
    "--parallel": None,
    "--strict": None,
    "--non-strict": None,
    "--enable-ext": None,
    "--enable-dev": None,
    "--no-container": None,
    "--debug": None,
    "--verbose": None,
    "--quiet": None,
    "--timestamps": None,
    "--relax-path-checks": None,
    "--skip-schemas": None,
    "--disable-js-validation": None,
    "--js-console": None,
    "--strict-memory-limit": None,
    "--strict-cpu-limit": None,
    "--on-error": ("stop", "continue"),
    "--eval-timeout": float,
}

#: cwltool flags whose value is a path on the client's machine, which means nothing here.
#: cwl-runner front ends forward them (cwltest hands ``--outdir`` to the runner it drives);
#: the server picks its own folders for every run, so they are ignored with a note.
CLIENT_PATH_FLAGS = frozenset(
    {
        "--outdir",
        "--basedir",
        "--tmpdir-prefix",
        "--tmp-outdir-prefix",
        "--cachedir",
        "--log-dir",
    }
)

#: cwltool flags that select the container runtime, by the server's ``container_runtime``.
CONTAINER_ARGS: dict[str, list[str]] = {
    "docker": [],
    "podman": ["--podman"],
    "singularity": ["--singularity"],
    "none": ["--no-container"],
}


@functools.cache
def _cwltool_flags() -> frozenset[str]:
    """Every option string cwltool's own parser knows."""
    # Imported here: importing it imports cwltool, and checks the parts of it that the
    # engine process patches, so a cwltool without them stops the server at startup.
    from toolchest_wes.compat import cwltool_internals

    return cwltool_internals.option_strings()


@dataclass
class CwltoolEngine:
    """Runs CWL with cwltool.

    Args:
        container_runtime: ``docker``, ``podman``, ``singularity`` or ``none`` (already
            resolved from ``auto``).
        allow_no_container: Whether a run may ask for ``--no-container``.
        default_args: cwltool flags added to every run.
        nice: Niceness increment of the engine process and its tools.
        sandbox: The sandbox of every run, its ``run_dir`` filled in per run; ``None``:
            runs have the server's rights.
    """

    container_runtime: str = "none"
    allow_no_container: bool = True
    default_args: tuple[str, ...] = ()
    nice: int = 0
    sandbox: SandboxPolicy | None = None
    name: str = "cwltool"
    workflow_type: str = "CWL"
    type_versions: tuple[str, ...] = ("v1.0", "v1.1", "v1.2")

    def version(self) -> str:
        """The installed cwltool's version."""
        return metadata.version("cwltool")

    def warm(self) -> None:
        """Load cwltool's option table now rather than on the first request.

        Raises:
            PrivateApiChangedError: The installed cwltool lacks a part the engine relies on.
        """
        _cwltool_flags()

    def default_parameters(self) -> list[DefaultWorkflowEngineParameter]:
        """The flags every run gets, as service-info lists them."""
        args = [*CONTAINER_ARGS[self.container_runtime], *self.default_args]
        return [
            DefaultWorkflowEngineParameter(name=arg, type="flag", default_value="true")
            for arg in args
        ]

    def check_parameters(self, params: dict[str, Any]) -> EngineParameters:
        """Turn ``workflow_engine_parameters`` into cwltool flags, by the allow-list.

        Keys may be written with or without the leading ``--``. Null values, flags that name
        folders on the client's machine (:data:`CLIENT_PATH_FLAGS`) and flags that cwltool
        does not know (such as Toil's ``--clean``) are ignored with a note. Any other cwltool
        flag outside the allow-list is refused.
        """
        result = EngineParameters()
        for key, value in params.items():
            flag = key if key.startswith("-") else f"--{key}"
            if value is None:
                result.notes.append(f"ignored workflow_engine_parameters {key!r}: no value")
                continue
            if flag in CLIENT_PATH_FLAGS:
                result.notes.append(
                    f"ignored workflow_engine_parameters {key!r}: it names a folder on the "
                    "client's machine; the server chooses each run's folders"
                )
                continue
            if flag not in ALLOWED_FLAGS:
                if flag in _cwltool_flags():
                    raise InvalidEngineParameterError(
                        f"workflow_engine_parameters {key!r} is not allowed on this server: it "
                        "would reach outside the run's directory or override the server's "
                        f"policy. Allowed cwltool flags: {', '.join(sorted(ALLOWED_FLAGS))}"
                    )
                result.notes.append(
                    f"ignored workflow_engine_parameters {key!r}: not a cwltool option"
                )
                continue
            result.args.extend(self._flag_args(key, flag, value))
        return result

    def _flag_args(self, key: str, flag: str, value: Any) -> list[str]:
        kind = ALLOWED_FLAGS[flag]
        text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
        if kind is None:
            if not switch(key, value):
                return []
            if flag == "--no-container":
                return no_container_args(self.allow_no_container, self.container_runtime)
            return [flag]
        if isinstance(kind, tuple):
            if text not in kind:
                raise InvalidEngineParameterError(
                    f"workflow_engine_parameters {key!r} must be one of {', '.join(kind)}, "
                    f"not {value!r}"
                )
            return [flag, text]
        return [flag, positive_number(key, value)]

    def launch_spec(self, run: PreparedRun) -> LaunchSpec:
        """``cwltool [policy flags] [user flags] --outdir … workflow params.json``."""
        argv = [
            "cwltool",
            "--disable-color",
            *CONTAINER_ARGS[self.container_runtime],
            *self.default_args,
            *run.engine_args,
            "--outdir",
            str(run.outputs_dir),
            "--tmpdir-prefix",
            f"{run.work_dir}/tmp",
            "--tmp-outdir-prefix",
            f"{run.work_dir}/out",
            run.workflow,
            str(run.params_file),
        ]
        env = {
            "TOOLCHEST_WES_CHILD_TASK_DIR": str(run.task_dir),
            "TOOLCHEST_WES_CHILD_NICE": str(self.nice),
            "TOOLCHEST_WES_CHILD_CORES": str(run.resources.cores or 0),
        }
        if "--no-container" in argv:
            env["TOOLCHEST_WES_CHILD_IGNORE_DOCKER"] = "1"
        if self.sandbox is not None:
            policy = dataclasses.replace(self.sandbox, run_dir=os.path.realpath(run.run_dir))
            env[SANDBOX_ENV] = policy.to_json()
        return LaunchSpec(
            argv=argv,
            entry=CHILD_ENTRY,
            cwd=run.attachments_dir,
            stdout=run.stdout_path,
            stderr=run.stderr_path,
            env=env,
        )

    def collect_outputs(self, run: PreparedRun, stdout_path: Path) -> dict[str, Any]:
        """cwltool prints the CWL output object as JSON on stdout."""
        text = stdout_path.read_text(encoding="utf-8")
        outputs = json.loads(text) if text.strip() else None
        if not isinstance(outputs, dict):
            raise ValueError("cwltool did not print a CWL output object on stdout")
        return outputs
