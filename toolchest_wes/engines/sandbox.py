"""The run sandbox: what a run's processes may reach, and the bwrap command that enforces it.

A :class:`SandboxPolicy` travels from the server to the engine process of each run as JSON in
the ``TOOLCHEST_WES_CHILD_SANDBOX`` variable. The engine process confines itself first
(``toolchest_wes.engines.engine_jail``), then starts every tool, and the JavaScript engine of
CWL expressions, behind :func:`bwrap_argv`. In the tool's sandbox:

- the system is read-only, ``/tmp`` is the run's own, ``/run`` (sockets) is empty;
- the data folder is an empty tmpfs with only this run's ``work`` (writable) and
  ``attachments`` (read-only) folders put back: other runs, the run database, the token file
  and the run's own logs are out of sight;
- the files the policy hides (a database or password file outside the data folder, the
  server user's home) are empty, as the engine's jail left them;
- new user, PID, IPC and UTS namespaces, and a network namespace with only a loopback
  device unless the tool asks for the network (CWL ``NetworkAccess``) and the operator
  allows it;
- limits on processes and file size, inherited from the engine, which sets them where the
  kernel counts only the run's own processes, and on each tool's address space.

This module only builds command lines and checks that bwrap works; it runs nothing else.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "NOBODY",
    "SANDBOX_ENV",
    "SandboxPolicy",
    "bwrap_argv",
    "bwrap_problem",
    "is_secret_env",
    "program_paths",
    "python_paths",
]

#: The variable that carries the policy to the engine process, as JSON.
SANDBOX_ENV = "TOOLCHEST_WES_CHILD_SANDBOX"
#: The uid and gid runs take when the server runs as root.
NOBODY = 65534

_PROBE_TIMEOUT_S = 20.0
# Variables that configure the server or carry credentials; no run process may inherit them.
_SECRET_PREFIXES = ("TOOLCHEST_WES_", "REDIS", "CELERY", "AWS_", "AZURE_", "GOOGLE_", "OIDC")
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE_KEY", "API_KEY")
_SECRET_NAMES = frozenset({"PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL", "SSH_AUTH_SOCK"})


def is_secret_env(name: str) -> bool:
    """Whether an environment variable is the server's business only (settings, secrets)."""
    upper = name.upper()
    return (
        upper.startswith(_SECRET_PREFIXES)
        or any(word in upper for word in _SECRET_WORDS)
        or upper in _SECRET_NAMES
    )


@dataclass(frozen=True)
class SandboxPolicy:
    """What the processes of one run may reach.

    Attributes:
        run_dir: The run's folder; its ``work`` folder is the only one tools may write.
        data_dir: The server's data folder, masked but for ``run_dir``.
        hide: Further files and folders that must look empty (the run database or a
            password file kept outside the data folder, the server user's home).
        keep: Folders under a hidden one that must stay readable (the Python installation
            the engine runs from, when it lives in a hidden home).
        allow_network: Whether a tool that asks for ``NetworkAccess`` gets the network.
        uid: The unprivileged uid (and gid) the run takes; ``None`` keeps the server's,
            which is then not root.
        extra_groups: Supplementary groups the engine keeps (the Docker socket's group
            when tools run in Docker containers).
        max_processes: Processes (and threads) of the whole run at once, engine and tools;
            0: no limit.
        max_file_bytes: Largest file the run may write; 0: no limit.
        max_memory_bytes: Address space of each tool process; 0: no limit.
    """

    run_dir: str
    data_dir: str
    hide: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    allow_network: bool = False
    uid: int | None = None
    extra_groups: tuple[int, ...] = ()
    max_processes: int = 0
    max_file_bytes: int = 0
    max_memory_bytes: int = 0
    bwrap: str = "bwrap"
    prlimit: str = "prlimit"
    #: Only for the record in service-info; not read by the engine.
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def work_dir(self) -> str:
        """The run's scratch folder: tools' working and output folders live here."""
        return os.path.join(self.run_dir, "work")

    @property
    def attachments_dir(self) -> str:
        """The run's inputs, readable by tools."""
        return os.path.join(self.run_dir, "attachments")

    @property
    def tmp_dir(self) -> str:
        """The folder that becomes the run's ``/tmp``, on disk rather than in memory."""
        return os.path.join(self.run_dir, "work", ".tmp")

    def to_json(self) -> str:
        """The policy as the engine process receives it."""
        data = asdict(self)
        data.pop("notes")
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> SandboxPolicy:
        """The policy from :meth:`to_json`'s text."""
        data = json.loads(text)
        for key in ("hide", "keep", "extra_groups"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


def python_paths() -> tuple[str, ...]:
    """The folders this interpreter loads code from; the engine must keep seeing them."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return tuple(sorted(os.path.realpath(p) for p in paths))


#: Folders of a home that hold credentials or data rather than programs: a program folder
#: inside one of them is kept alone, never the whole folder.
_PRIVATE_HOME_FOLDERS = frozenset(
    {
        ".ssh",
        ".gnupg",
        ".aws",
        ".azure",
        ".config",
        ".docker",
        ".kube",
        ".local",
        ".cache",
        ".cargo",
        ".netrc",
        ".pypirc",
        ".git-credentials",
    }
)


def program_paths(hidden: Sequence[str], search_path: str | None = None) -> tuple[str, ...]:
    """What of the hidden folders tools still need to find the server's programs.

    Each folder of ``search_path`` (default: ``$PATH``) that lies in a hidden folder (a
    Python or Node installation in the server user's home, say) is kept, with the
    installation that holds it (``~/.pyenv`` for ``~/.pyenv/shims``) unless that is a folder
    of credentials or data.
    """
    kept: set[str] = set()
    entries = (search_path if search_path is not None else os.environ.get("PATH", "")).split(":")
    for entry in filter(None, entries):
        path = os.path.realpath(entry)
        for folder in hidden:
            if path == folder or not _within(path, folder):
                continue
            top = os.path.relpath(path, folder).split("/")[0]
            private = top in _PRIVATE_HOME_FOLDERS
            kept.add(path if private else os.path.join(folder, top))
    return tuple(sorted(kept))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _limits(policy: SandboxPolicy) -> list[str]:
    # The process and file-size limits are the engine's, inherited (engine_jail sets them
    # where they count the whole run); only the address space, which would cramp the
    # engine's own interpreter, is set for the tool alone, at the cost of one more exec.
    if policy.max_memory_bytes <= 0:
        return []
    return [policy.prlimit, f"--as={policy.max_memory_bytes}", "--"]


def _namespaces(bwrap: str, *, network: bool) -> list[str]:
    """The part of every sandbox that does not depend on the run."""
    argv = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        # No terminal is shared, so a tool cannot push input into the server's (TIOCSTI).
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/run",
    ]
    if not network:
        argv.append("--unshare-net")
    elif os.path.isdir("/run/systemd/resolve"):
        # /etc/resolv.conf often points here; without it a tool with the network has no DNS.
        argv += ["--ro-bind", "/run/systemd/resolve", "/run/systemd/resolve"]
    return argv


def bwrap_argv(
    policy: SandboxPolicy,
    command: Sequence[str],
    *,
    cwd: str,
    network: bool = False,
    inputs: Sequence[str] = (),
) -> list[str]:
    """``command`` wrapped in bwrap under ``policy``, for an engine inside its jail.

    Args:
        policy: The run's policy.
        command: The tool's command line.
        cwd: Its working directory, inside the run's ``work`` folder.
        network: Whether the tool asked for the network; it gets it only if the policy
            allows it too.
        inputs: Input files or folders outside the run's folder (downloaded inputs in the
            run's ``/tmp``, for instance), bound read-only at the same path.
    """
    argv = _namespaces(policy.bwrap, network=network and policy.allow_network)
    # The hidden paths and kept folders need nothing here: the tool starts from the engine's
    # confined view (engine_jail), and "--ro-bind / /" carries its masks over, read-only.
    # Only the run's own folder is narrowed further, to its inputs and its work folder.
    # /tmp first: the data folder may live under it. The run's own folder on disk serves as
    # /tmp, except when the data folder lies below /tmp: its mount points would then have to
    # be made inside folders that the engine's jail made as root, which the run's uid cannot
    # do, so tools get an empty tmpfs of their own (cwltool points TMPDIR into the run's
    # work folder anyway).
    if _is_under(policy.data_dir, "/tmp"):
        argv += ["--tmpfs", "/tmp"]
    else:
        argv += ["--bind", policy.tmp_dir, "/tmp"]
    argv += ["--tmpfs", policy.data_dir]
    argv += ["--ro-bind", policy.attachments_dir, policy.attachments_dir]
    argv += ["--bind", policy.work_dir, policy.work_dir]
    # Read-only too, so that no write outside the work folder seems to succeed.
    argv += ["--remount-ro", policy.data_dir]
    run_dir = policy.run_dir.rstrip("/") + "/"
    for path in inputs:
        if not path.startswith(run_dir) and os.path.exists(path):
            argv += ["--ro-bind", path, path]
    argv += ["--chdir", cwd, "--", *_limits(policy), *command]
    return argv


def _is_under(path: str, parent: str) -> bool:
    return path.rstrip("/").startswith(parent.rstrip("/") + "/")


def unreachable_data_dir(data_dir: Path, uid: int | None) -> str | None:
    """Why the run's uid cannot reach its folders in ``data_dir``, or ``None`` if it can.

    A root server hands each run's folder to ``uid``; every folder above the data folder
    must let that uid through (``x`` for others, as ``/root``'s 0700 does not).
    """
    folder = data_dir.resolve()
    # Below /tmp the engine's jail makes the path again, with folders anyone may pass through,
    # inside the run's own /tmp.
    if uid is None or _is_under(str(folder), "/tmp"):
        return None
    for parent in [*reversed(folder.parents), folder]:
        try:
            st = parent.stat()
        except OSError:
            break  # made later, by the server, with the usual mode
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            return (
                f"runs in the sandbox take uid {uid}, which cannot enter {parent} (mode "
                f"{stat.S_IMODE(st.st_mode):o}) on the way to the data folder {folder}; use a "
                "--data-dir that others may pass through, such as /var/lib/toolchest-wes, or "
                "--sandbox none"
            )
    return None


@functools.cache
def bwrap_problem(uid: int | None = None) -> str | None:
    """Why the sandbox cannot work on this machine, or ``None`` if it can.

    Runs a tiny sandbox the way runs use it: as ``uid`` when given (the server is root),
    with new user, PID and network namespaces, ``/proc`` and the limits.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap is not installed (Debian and Ubuntu: apt-get install bubblewrap)"
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return "prlimit is not installed (Debian and Ubuntu: apt-get install util-linux)"
    argv = [
        *_namespaces(bwrap, network=False),
        "--tmpfs",
        "/tmp",
        "--chdir",
        "/",
        "--",
        "true",
    ]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            user=uid,
            group=uid,
            extra_groups=[] if uid is not None else None,
            cwd="/",
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not be started: {exc}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        who = f" as uid {uid}" if uid is not None else ""
        return (
            f"bwrap cannot create a sandbox{who}: {detail[-1] if detail else done.returncode} "
            "(unprivileged user namespaces must be allowed: sysctl "
            "kernel.unprivileged_userns_clone=1, and in a container a seccomp profile that "
            "permits them)"
        )
    return None
