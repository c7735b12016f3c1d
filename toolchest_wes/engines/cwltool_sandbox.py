"""The cwltool side of the run sandbox: the patches that start tools and node in bwrap.

``toolchest_wes.engines.cwltool_child`` installs them in the engine process, after that
process confined itself (``toolchest_wes.engines.engine_jail``). Each takes a callable that
returns the current run's ``SandboxPolicy``, or ``None`` when the run has no sandbox, in
which case it changes nothing.

- :func:`sandboxed_job_popen` wraps ``cwltool.job._job_popen``: a container-free job's
  command line becomes ``bwrap … -- command``, with the network only if the job asked for
  it (``NetworkAccess``), its inputs from outside the run bound read-only, and secrets
  dropped from its environment.
- :func:`marking_job_run` wraps ``CommandLineJob.run`` to tell ``_job_popen`` which job it
  starts; container jobs never pass there.
- :class:`SandboxedSubprocess` stands in for ``subprocess`` in ``cwl_utils.sandboxjs``, so
  that node, which evaluates the CWL JavaScript expressions, starts in bwrap too.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

from toolchest_wes.engines.sandbox import SandboxPolicy, bwrap_argv, is_secret_env

__all__ = ["SandboxedSubprocess", "marking_job_run", "sandboxed_job_popen"]

# The plain (container-free) job that the current thread is running, for _job_popen; jobs of
# --parallel runs each run in a thread of their own.
_current_job = threading.local()


def _input_paths(job: Any) -> list[str]:
    """The files and folders a job reads, where the engine staged them."""
    paths: list[str] = []
    for mapper in (getattr(job, "pathmapper", None), getattr(job, "generatemapper", None)):
        if mapper is None:
            continue
        for _key, entry in mapper.items():
            if entry.type in ("File", "Directory") and not entry.resolved.startswith("_:"):
                paths.append(entry.resolved)
    return paths


def sandboxed_job_popen(
    original: Callable[..., int], policy_of: Callable[[], SandboxPolicy | None]
) -> Callable[..., int]:
    """Wrap ``cwltool.job._job_popen`` to start container-free jobs inside bwrap."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def job_popen(*args: Any, **kwargs: Any) -> int:
        policy = policy_of()
        job = getattr(_current_job, "job", None)
        if policy is None or job is None:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        arguments = bound.arguments
        arguments["commands"] = bwrap_argv(
            policy,
            list(arguments["commands"]),
            cwd=str(arguments["cwd"]),
            network=bool(getattr(job, "networkaccess", False)),
            inputs=_input_paths(job),
        )
        env = dict(arguments["env"])
        arguments["env"] = {k: v for k, v in env.items() if not is_secret_env(k)}
        return original(*bound.args, **bound.kwargs)

    return job_popen


def marking_job_run(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``CommandLineJob.run`` so ``_job_popen`` knows which plain job it starts.

    Container jobs have a ``run`` of their own and never pass here: their container is
    their confinement, and bwrap would keep them from their container runtime.
    """

    @functools.wraps(original)
    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        _current_job.job = self
        try:
            original(self, *args, **kwargs)
        finally:
            _current_job.job = None

    return run


class SandboxedSubprocess:
    """``subprocess`` as the JavaScript engine sees it: node starts inside bwrap."""

    _NODE = frozenset({"node", "nodejs"})

    def __init__(self, real: Any, policy_of: Callable[[], SandboxPolicy | None]) -> None:
        self._real = real
        self._policy_of = policy_of

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _wrap(self, args: Any) -> Any:
        policy = self._policy_of()
        if policy is None or not isinstance(args, list) or not args:
            return args
        if os.path.basename(str(args[0])) not in self._NODE:
            return args
        return bwrap_argv(policy, [str(a) for a in args], cwd="/tmp")

    def Popen(self, args: Any, *rest: Any, **kwargs: Any) -> Any:
        return self._real.Popen(self._wrap(args), *rest, **kwargs)

    def check_output(self, args: Any, *rest: Any, **kwargs: Any) -> Any:
        return self._real.check_output(self._wrap(args), *rest, **kwargs)
