"""An entry module for the launcher tests: ``main(argv)`` does what ``argv[0]`` names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WARMED = False


def warm() -> None:
    global WARMED
    WARMED = True


def main(argv: list[str]) -> int:
    action, *rest = argv
    if action == "exit":
        return int(rest[0])
    if action == "print":
        # Shows what the process sees, so one run checks argv, cwd, env and warm-up.
        print(f"argv={sys.argv!r}")
        print(f"cwd={os.getcwd()}")
        print(f"env={os.environ.get(rest[0], '')}")
        print(f"warmed={WARMED}")
        print("to-stderr", file=sys.stderr)
        return 0
    if action == "signal":
        os.kill(os.getpid(), getattr(signal, rest[0]))
        time.sleep(30)
        return 99
    if action == "sleep":
        time.sleep(float(rest[0]))
        return 0
    if action == "spawn-sleep":
        # A grandchild that kill_tree must reach through the process group.
        child = subprocess.Popen(["sleep", "600"])
        Path(rest[0]).write_text(str(child.pid))
        child.wait()
        return 0
    if action == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(rest[0]).write_text("ready")
        time.sleep(600)
        return 0
    if action == "raise":
        raise RuntimeError("boom")
    if action == "sys-exit":
        sys.exit(int(rest[0]))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
