"""A real one-node Slurm cluster for the tests: ``SlurmCluster``, ``slurm_cluster(...)`` and the
session fixture ``slurm``.

Everything lives in one temporary folder: a MUNGE key and ``munged`` on its own socket, a
``slurm.conf`` for one node on 127.0.0.1 with free ports, and the state, spool and log
folders. ``munged``, ``slurmctld`` and ``slurmd`` run in the foreground as children of the
test process, so no system Slurm or MUNGE is read or disturbed: clients find the cluster by
``SLURM_CONF`` alone (``AuthInfo=socket=...`` in the file names the MUNGE socket).

Settings that make it run in an unprivileged container without systemd or a delegated cgroup
tree: ``ProctrackType=proctrack/linuxproc`` (process tracking by parent pid, no cgroups),
``TaskPlugin=task/none``, ``JobAcctGatherType=jobacct_gather/none``, no slurmdbd
(``AccountingStorageType=accounting_storage/none``; ``sacct`` then answers "Slurm accounting
storage is disabled"), and ``SlurmdParameters=config_overrides`` so the node may declare more
CPUs than the machine has. Every ended job is written by ``JobCompType=jobcomp/filetxt`` to
``jobcomp.log`` (``SlurmCluster.completed_jobs()`` reads it), which stands in for accounting.

At exit every job is cancelled, the daemons are stopped (SIGTERM, SIGKILL after a grace
period), and any process still carrying the cluster's ``SLURM_CONF`` in its environment
(a ``slurmstepd`` and the job it runs) is killed with its session before the folder is
removed.

The daemons run as root, as ``slurmd`` must to start jobs. Without the Slurm and MUNGE
programs, or without root, the tests that use the cluster are skipped, loudly; with ``CI`` or
``TOOLCHEST_WES_REQUIRE_SLURM`` set they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

__all__ = ["SlurmCluster", "slurm", "slurm_cluster", "slurm_missing"]

# Read at import, for the same reason as in tests/redis_server.py: an autouse fixture clears
# TOOLCHEST_WES_* before function-scoped fixtures run.
_REQUIRE_SLURM = bool(os.environ.get("CI") or os.environ.get("TOOLCHEST_WES_REQUIRE_SLURM"))
_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scancel")
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
_NODE = "tcwes-node"
_PARTITION = "debug"
#: One ``Key=Value`` field of a jobcomp/filetxt line; values may hold spaces (WorkDir).
_FIELD = re.compile(r"(\w+)=(.*?)(?= \w+=|$)")


def _which(name: str) -> str | None:
    """``name`` on PATH, or in the sbin folders where Debian puts the daemons."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN]))


def slurm_missing() -> str | None:
    """Why the cluster cannot start here (a program missing, not root), or None."""
    missing = [name for name in _PROGRAMS if _which(name) is None]
    if missing:
        return f"{', '.join(missing)} not on PATH: install the Debian packages slurm-wlm and munge"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs, and the tests do not run as root"
    return None


def _program(name: str) -> str:
    found = _which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the Debian packages slurm-wlm and munge")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


class SlurmCluster:
    """One ``munged``, ``slurmctld`` and ``slurmd`` over the files of ``directory``."""

    def __init__(self, directory: Path, cpus: int = 4) -> None:
        self.directory = directory
        self.cpus = cpus
        self.conf = directory / "slurm.conf"
        self.munge_socket = directory / "munge" / "munge.socket"
        self.jobcomp_log = directory / "log" / "jobcomp.log"
        self.node = _NODE
        self.partition = _PARTITION
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    @property
    def env(self) -> dict[str, str]:
        """This process's environment with ``SLURM_CONF`` pointing at the cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (``sbatch``, ``squeue``...) against the cluster."""
        return subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def queued_jobs(self) -> list[str]:
        """The ids of the jobs ``squeue`` still shows (pending, running or completing)."""
        done = self.run("squeue", "--noheader", "--format=%i")
        if done.returncode != 0:
            raise RuntimeError(f"squeue failed: {done.stderr}")
        return done.stdout.split()

    def completed_jobs(self) -> list[dict[str, str]]:
        """One dict per line of the jobcomp log (``JobId``, ``Name``, ``JobState``...)."""
        if not self.jobcomp_log.exists():
            return []
        return [
            {key: value.strip() for key, value in _FIELD.findall(line)}
            for line in self.jobcomp_log.read_text(errors="replace").splitlines()
            if line.strip()
        ]

    def wait_until_empty(self, timeout: float = 60) -> None:
        """Wait until ``squeue`` shows no job; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.queued_jobs():
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs still queued: {self.queued_jobs()}")
            time.sleep(0.2)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of each daemon's log, to explain a failure."""
        parts = []
        for log in sorted((self.directory / "log").glob("*")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def write_config(self) -> None:
        """Write the MUNGE key, ``slurm.conf`` and the folders the daemons need."""
        d = self.directory
        for sub in ("munge", "state", "spool", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses a key that others may read, and warns about a socket folder that
        # others cannot enter.
        key_dir = d / "munge-key"
        key_dir.mkdir(mode=0o700, exist_ok=True)
        key = key_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)
        (d / "munge").chmod(0o755)
        user = "root"
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=tcwes",
                    f"SlurmctldHost={socket.gethostname().split('.')[0]}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    f"SlurmUser={user}",
                    f"SlurmdUser={user}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={d / 'state'}",
                    f"SlurmdSpoolDir={d / 'spool'}",
                    f"SlurmctldPidFile={d / 'slurmctld.pid'}",
                    f"SlurmdPidFile={d / 'slurmd.pid'}",
                    f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={d / 'log' / 'slurmd.log'}",
                    # No cgroups: this must run in a container without a delegated tree.
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/filetxt",
                    f"JobCompLoc={self.jobcomp_log}",
                    "SchedulerType=sched/builtin",
                    # Cores are consumed, memory is not: a job asking for more memory than is
                    # free still starts, as the tests' small jobs should.
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "SlurmdParameters=config_overrides",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    "MailProg=/bin/true",
                    "SlurmdTimeout=60",
                    "InactiveLimit=0",
                    # Ended jobs stay visible to `scontrol show job` (Toil's fallback when
                    # sacct has no database) for five minutes.
                    "MinJobAge=300",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={self.node} "
                    f"CPUs={self.cpus} RealMemory={_memory_mib()} State=UNKNOWN",
                    f"PartitionName={self.partition} Nodes={self.node} Default=YES "
                    "MaxTime=INFINITE State=UP OverSubscribe=NO",
                    "",
                ]
            )
        )

    def start(self) -> None:
        """Start the three daemons and wait until ``sinfo`` shows the node idle."""
        self.write_config()
        d = self.directory
        # The daemons carry SLURM_CONF, and every slurmstepd inherits it: stop() finds
        # leftovers by it.
        env = self.env
        self._spawn(
            "munged",
            [
                _program("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={d / 'munge-key' / 'munge.key'}",
                f"--pid-file={d / 'munge' / 'munged.pid'}",
                f"--seed-file={d / 'munge' / 'munged.seed'}",
                f"--log-file={d / 'log' / 'munged.log'}",
            ],
            env,
        )
        self._wait(lambda: self.munge_socket.exists(), "munged did not create its socket")
        self._spawn("slurmctld", [_program("slurmctld"), "-D", "-f", str(self.conf)], env)
        self._spawn(
            "slurmd", [_program("slurmd"), "-D", "-f", str(self.conf), "-N", self.node], env
        )
        self._wait(self._node_idle, f"node {self.node} did not become idle")

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        with open(self.directory / "log" / f"{name}.out", "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # A Ctrl-C meant for pytest must not stop the daemons before the jobs.
                start_new_session=True,
            )
        self._procs.append((name, proc))

    def _wait(self, ready: Callable[[], bool], message: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not ready():
            dead = [name for name, proc in self._procs if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else "timed out"
                raise RuntimeError(f"{message} ({why}):\n{self.log_tail()}")
            time.sleep(0.1)

    def _node_idle(self) -> bool:
        done = self.run("sinfo", "--noheader", "--Node", "--format=%N %t")
        return f"{self.node} idle" in done.stdout.splitlines()

    def stop(self) -> None:
        """Cancel every job, stop the daemons and kill whatever the jobs left behind."""
        if any(name == "slurmctld" and proc.poll() is None for name, proc in self._procs):
            with contextlib.suppress(Exception):
                ids = self.queued_jobs()
                if ids:
                    self.run("scancel", *ids)
                    self.wait_until_empty(_STOP_TIMEOUT_S)
        # slurmd before slurmctld before munged: each needs the next one while it stops.
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(_STOP_TIMEOUT_S)
        self._procs.clear()
        _kill_carriers(f"SLURM_CONF={self.conf}".encode())


def _kill_carriers(marker: bytes) -> None:
    """SIGKILL every process whose environment holds ``marker``, with its whole session."""
    own = {os.getpid(), os.getppid()}
    sessions: set[int] = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        if pid in own:
            continue
        with contextlib.suppress(OSError):
            if marker in environ.read_bytes().split(b"\0"):
                sessions.add(os.getsid(pid))
    sessions.discard(os.getsid(0))
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(proc.name)
            if pid not in own and os.getsid(pid) in sessions:
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def slurm_cluster(directory: Path | None = None, cpus: int = 4) -> Iterator[SlurmCluster]:
    """A started cluster over ``directory`` (a new temporary folder by default), stopped and
    removed at exit. Retries once with other ports if the first ones were taken meanwhile."""
    own = directory is None
    folder = Path(tempfile.mkdtemp(prefix="tcwes-slurm-")) if directory is None else directory
    cluster = SlurmCluster(folder, cpus=cpus)
    try:
        for attempt in range(2):
            try:
                cluster.start()
                break
            except RuntimeError:
                cluster.stop()
                if attempt == 1:
                    raise
        yield cluster
    finally:
        cluster.stop()
        if own:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    """A one-node Slurm cluster for the whole session (see the module docstring)."""
    missing = slurm_missing()
    if missing:
        message = f"no Slurm cluster: {missing}; every Slurm test is SKIPPED"
        if _REQUIRE_SLURM:
            pytest.fail(f"{message} (not allowed: CI or TOOLCHEST_WES_REQUIRE_SLURM is set)")
        pytest.skip(message)
    with slurm_cluster() as cluster:
        yield cluster
