"""The engine process of a run confines itself before it reads the workflow.

The tools of a run run in bwrap (``toolchest_wes.engines.sandbox``), but the engine (cwltool)
reads the documents and files a workflow names, with whatever rights it has: a workflow
could ``$include`` the token file or stage another run's outputs as an input. So the engine
process, forked from the warm zygote or started afresh, confines itself first: in a mount
namespace of its own, the data folder holds only its run's folder, the policy's hidden paths
are empty and ``/tmp`` is a folder of the run. As root it makes those mounts itself, then
becomes the policy's unprivileged uid (the run's folder is handed to that uid first);
otherwise a user namespace gives it the right to mount, and a second one takes it away
again. Either way the run ends up in a user namespace of its own, where its limits apply.

Nothing here touches the parent: the namespaces belong to this process and its children.
The engine keeps the network, which it needs to fetch http(s) inputs; its tools do not.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import MutableMapping
from pathlib import Path

from toolchest_wes.engines.sandbox import SandboxPolicy, is_secret_env

__all__ = ["JailError", "enter_jail", "scrub_environment"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38


class JailError(OSError):
    """The engine could not confine itself; the run must not go on."""


def scrub_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove the server's settings and credentials from ``environ`` (default: ours).

    Returns the names removed. cwltool hands tools only a few variables, but operators
    can make it pass more (``--preserve-entire-environment``), and the JavaScript engine
    inherits them all.
    """
    env = os.environ if environ is None else environ
    removed = [name for name in env if is_secret_env(name)]
    for name in removed:
        del env[name]
    if environ is None:
        # os.environb is a mapping of its own; the names must go from it too.
        for name in removed:
            os.environb.pop(name.encode(), None)
    return removed


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise JailError(err, f"{what}: {os.strerror(err)}")


def _mount(
    libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int
) -> None:
    data = b"mode=0755" if fstype == "tmpfs" else None
    result = libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data,
    )
    _check(result, f"mount {source or fstype} on {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def _own_user_namespace(libc: ctypes.CDLL, uid: int, gid: int, extra: int = 0) -> None:
    """Enter a new user namespace in which this process keeps its uid and gid."""
    _check(libc.unshare(_CLONE_NEWUSER | extra), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _chown_tree(root: str, uid: int, gid: int) -> None:
    """Give the run's folder to the run's uid; links are changed, never followed."""
    os.lchown(root, uid, gid)
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.lchown(os.path.join(folder, name), uid, gid)


def _under(path: str, parents: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def _bind_back(libc: ctypes.CDLL, fd: int, target: str) -> None:
    """Bind what ``fd`` opened (before it was hidden) at ``target`` again."""
    os.makedirs(target, exist_ok=True)
    _mount(libc, f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)


def _drop_root(libc: ctypes.CDLL, policy: SandboxPolicy) -> tuple[int, int]:
    """As root, become the policy's uid, keeping only the policy's supplementary groups."""
    uid = gid = policy.uid if policy.uid is not None else 0
    os.setgroups(list(policy.extra_groups))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # A change of uid makes the process undumpable, which leaves its /proc files to root,
    # and its own uid_map (written next) with them. Its tools live in PID namespaces of
    # their own, where they cannot see it to trace it.
    _check(libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl")
    return uid, gid


def _set_limits(policy: SandboxPolicy) -> None:
    """Limit the run: every process it starts inherits these.

    Set inside the run's own user namespace: the kernel then counts, against the process
    limit, the processes of this run (engine, node, tools) and of no other run.
    """
    for limit, value in (
        (resource.RLIMIT_NPROC, policy.max_processes),
        (resource.RLIMIT_FSIZE, policy.max_file_bytes),
    ):
        if value > 0:
            resource.setrlimit(limit, (value, value))


def _mask(libc: ctypes.CDLL, policy: SandboxPolicy) -> None:
    """In a new mount namespace: hide the data folder but for the run, and what the policy
    hides; give the run a /tmp of its own."""
    cwd = os.getcwd()
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    hidden_dirs = [p for p in policy.hide if os.path.isdir(p)] + [policy.data_dir, "/tmp"]
    # Opened in this namespace (a bind needs a source in the caller's namespace) and before
    # the masks go up, which would hide their paths.
    keeps = [(os.open(p, os.O_PATH), p) for p in policy.keep if _under(p, hidden_dirs)]
    run_fd = os.open(policy.run_dir, os.O_PATH)
    tmp_fd = os.open(policy.tmp_dir, os.O_PATH)
    try:
        # /tmp first: the data folder, or a kept folder, may live under it.
        _mount(libc, f"/proc/self/fd/{tmp_fd}", "/tmp", None, _MS_BIND)
        for path in policy.hide:
            if os.path.isdir(path):
                _mount(libc, "tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV)
            elif os.path.exists(path):
                _mount(libc, "/dev/null", path, None, _MS_BIND)
        for fd, path in keeps:
            _bind_back(libc, fd, path)
        os.makedirs(policy.data_dir, exist_ok=True)
        _mount(libc, "tmpfs", policy.data_dir, "tmpfs", _MS_NOSUID | _MS_NODEV)
        _bind_back(libc, run_fd, policy.run_dir)
    finally:
        for fd in (run_fd, tmp_fd, *(fd for fd, _ in keeps)):
            os.close(fd)
    # The old working directory sits below the masks, where ".." would lead to the real
    # data folder; entered again by name, it is the run's bound copy.
    os.chdir(cwd)
    # The server's home is hidden; whatever wants a home (caches) gets the run's /tmp.
    os.environ["HOME"] = "/tmp"
    os.environ.pop("TMPDIR", None)
    # Whatever the engine starts can never gain rights through a setuid program.
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")


def enter_jail(policy: SandboxPolicy) -> None:
    """Confine this process (and all it starts) to the view ``policy`` describes.

    Raises:
        JailError: A namespace, mount or uid change failed.
    """
    libc = _libc()
    Path(policy.tmp_dir).mkdir(parents=True, exist_ok=True)
    try:
        if os.getuid() == 0:
            if policy.uid is not None:
                _chown_tree(policy.run_dir, policy.uid, policy.uid)
            # Masked as root, which can reach every kept folder; the mounts then belong to
            # the host's user namespace, out of reach of the uid the run becomes.
            _check(libc.unshare(_CLONE_NEWNS), "unshare")
            _mask(libc, policy)
            uid, gid = _drop_root(libc, policy)
            _own_user_namespace(libc, uid, gid)
            _set_limits(policy)
        else:
            uid, gid = os.getuid(), os.getgid()
            _own_user_namespace(libc, uid, gid, _CLONE_NEWNS)
            _mask(libc, policy)
            _set_limits(policy)
            # The rights over the new mounts belong to the first user namespace; from a
            # second one, nothing this process runs can take the masks down again. Its
            # limits were recorded for the first, which counts the whole run.
            _own_user_namespace(libc, uid, gid)
    except OSError as exc:
        if isinstance(exc, JailError):
            raise
        raise JailError(exc.errno or 0, f"cannot confine the engine: {exc}") from exc
