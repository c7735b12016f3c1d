"""A stand-in for ``singularity`` that runs Toil's WDL tasks on the host, in bubblewrap.

Toil 9 runs every WDL task in a container (Singularity, or Docker), and has no way to run
one without. A server without a container engine still runs WDL: Toil is pointed at this
module as its ``singularity``. miniwdl asks for three things:

- ``singularity --version``: answered with this module's name;
- ``singularity pull IMAGE.sif docker://…``: an empty file stands for the image;
- ``singularity exec --pwd DIR [options] --bind HOST:CONTAINER[:ro]… IMAGE COMMAND…``: the
  command runs in ``bwrap`` over the host's root, with the task's folders mounted at the
  container paths miniwdl chose, so the task sees the layout it was written for.

The image is ignored: the task runs with the host's programs, as cwltool's
``--no-container`` runs CWL tools.
"""

from __future__ import annotations

import os
import shutil
import sys

__all__ = ["bwrap_argv", "main"]

VERSION = "toolchest-wes-hostexec 1.0 (tasks run on the host; images are ignored)"

# Options of `singularity exec` that take a value, and those that do not, as miniwdl and
# Toil write them; their meaning (isolation, capabilities, GPUs) has no host equivalent.
_VALUE_OPTIONS = frozenset({"--pwd", "--bind", "-B", "--no-mount", "--add-caps", "--env"})
# Mount targets in these folders are bound over the host's (miniwdl's /tmp and /var/tmp).
_HOST_ROOTS = frozenset({"/", "/tmp", "/var", "/usr", "/bin", "/lib", "/etc", "/home", "/root"})


def bwrap_argv(args: list[str], bwrap: str = "bwrap") -> list[str]:
    """The ``bwrap`` command line for ``singularity exec`` arguments (after ``exec``).

    Raises:
        ValueError: No image and command after the options.
    """
    pwd: str | None = None
    binds: list[tuple[str, str, bool]] = []
    i = 0
    while i < len(args) and args[i].startswith("-"):
        option = args[i]
        value = args[i + 1] if option in _VALUE_OPTIONS and i + 1 < len(args) else None
        if option == "--pwd":
            pwd = value
        elif option in ("--bind", "-B") and value is not None:
            host, _, rest = value.partition(":")
            target, _, mode = rest.partition(":")
            binds.append((host, target or host, mode == "ro"))
        i += 2 if option in _VALUE_OPTIONS else 1
    if len(args) - i < 2:
        raise ValueError("singularity exec: expected an image and a command")
    command = args[i + 1 :]
    argv = [bwrap, "--dev-bind", "/", "/", "--die-with-parent"]
    # miniwdl mounts the task's folders under one root of their own
    # (/mnt/miniwdl_task_container): a tmpfs there keeps the mount points off the host.
    roots = {"/" + target.strip("/").split("/")[0] for _, target, _ in binds}
    argv += [arg for root in sorted(roots - _HOST_ROOTS) for arg in ("--tmpfs", root)]
    for host, target, read_only in binds:
        argv += ["--ro-bind" if read_only else "--bind", host, target]
    if pwd is not None:
        argv += ["--chdir", pwd]
    return [*argv, "--", *command]


def main(argv: list[str]) -> int:
    """Run one ``singularity`` command line as described in the module docstring."""
    args = [a for a in argv if a not in ("--verbose", "--quiet", "-q", "-v")]
    if not args or args[0] in ("--version", "version"):
        print(VERSION)
        return 0
    if args[0] == "pull":
        paths = [a for a in args[1:] if not a.startswith("-") and "://" not in a]
        if paths:
            with open(paths[0], "a", encoding="utf-8"):
                pass
        return 0
    if args[0] == "exec":
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            print("toolchest-wes: bwrap (bubblewrap) is needed to run WDL tasks", file=sys.stderr)
            return 127
        command = bwrap_argv(args[1:], bwrap)
        os.execv(command[0], command)
    print(f"toolchest-wes: unsupported singularity command {args[:1]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
