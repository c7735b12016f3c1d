"""toil_child: Toil's job logs as task logs, the run's whole tree killed, and hostexec."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolchest_wes.core.tasks import read_tasks
from toolchest_wes.engines import toil_hostexec
from toolchest_wes.engines.proctree import descendants
from toolchest_wes.engines.toil_child import TaskLogConverter

WDL_LOG = """\
[2026-01-02T03:04:05+0000] [MainThread] [I] [toil.worker] ---TOIL WORKER OUTPUT LOG---
[2026-01-02T03:04:05+0000] [I] Working on job 'WDLTaskJob' wf.boom.command
[2026-01-02T03:04:06+0000] [I] Executing command in <WDL.x at 0x1>: echo hi >&2
exit 3
[2026-01-02T03:04:07+0000] [E] CommandFailed: task command failed with exit status 3
"""

CWL_LOG = """\
[2026-01-02T03:04:05+0000] [MainThread] [I] [toil.worker] ---TOIL WORKER OUTPUT LOG---
[2026-01-02T03:04:05+0000] [MainThread] [I] [cwltool] [job hello.cwl] /tmp/x$ echo \\
    'Hello there' > /tmp/x/hello.txt
[2026-01-02T03:04:06+0000] [MainThread] [I] [cwltool] [job hello.cwl] completed success
"""


def test_job_logs_become_tasks(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "failed_wf.boom.command_000.log").write_text(WDL_LOG)
    (logs / "wf.boom.stderr_000.log").write_text("hi\n")
    (logs / "CWLJob_hello.cwl_000.log").write_text(CWL_LOG)
    (logs / "notes.txt").write_text("not a job log")
    converter = TaskLogConverter(logs, tmp_path / "tasks")
    converter.open()
    converter.scan()  # files written this instant may still be growing: left for later
    assert read_tasks(tmp_path / "tasks" / "tasks.jsonl") == []
    converter.scan(final=True)
    converter.scan(final=True)  # each log once
    converter.close()
    tasks = {t["name"]: t for t in read_tasks(tmp_path / "tasks" / "tasks.jsonl")}
    assert set(tasks) == {"wf.boom", "hello.cwl"}
    boom = tasks["wf.boom"]
    assert boom["exit_code"] == 3
    assert boom["cmd"] == ["echo hi >&2\nexit 3"]
    assert (boom["start_time"], boom["end_time"]) == (
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:07Z",
    )
    stderr = (tmp_path / "tasks" / boom["id"] / "stderr").read_text()
    assert stderr.startswith("hi\n")  # the command's own stderr first, then Toil's log
    assert "CommandFailed" in stderr
    hello = tasks["hello.cwl"]
    assert hello["exit_code"] == 0
    assert hello["cmd"] == ["echo", "Hello there", ">", "/tmp/x/hello.txt"]
    assert (tmp_path / "tasks" / hello["id"] / "stdout").read_bytes() == b""


def _child_env(tmp_path: Path, bin_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
        "TOOLCHEST_WES_TOIL_TASK_DIR": str(tmp_path / "tasks"),
        "TOOLCHEST_WES_TOIL_LOG_DIR": str(tmp_path / "logs"),
        "TOOLCHEST_WES_TOIL_WORK_DIR": str(tmp_path / "work"),
        "TOOLCHEST_WES_TOIL_BIN": str(bin_dir),
    }


def test_sigterm_kills_processes_in_sessions_of_their_own(tmp_path: Path) -> None:
    # A stand-in for Toil: a leader whose worker leads a new session, as Toil's
    # single-machine batch system starts them, and leaves a grandchild behind.
    leader = tmp_path / "leader.py"
    leader.write_text(
        "import subprocess, time\n"
        "subprocess.Popen(['sh', '-c', 'sleep 517 & sleep 518'], start_new_session=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "toolchest_wes.engines.toil_child", sys.executable, str(leader)],
        env=_child_env(tmp_path, tmp_path),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(descendants(child.pid)) < 5:  # itself, leader, sh, two sleeps
            assert time.monotonic() < deadline, descendants(child.pid)
            time.sleep(0.05)
        tree = [pid for pid in descendants(child.pid) if pid != child.pid]
        os.killpg(child.pid, signal.SIGTERM)
        assert child.wait(30) == 128 + signal.SIGTERM
        for pid in tree:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def test_a_killed_server_takes_the_run_with_it(tmp_path: Path) -> None:
    # The server stands in as a process that starts toil_child and is then SIGKILLed.
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-m', 'toolchest_wes.engines.toil_child',"
            " 'sleep', '519'])\n"
            "time.sleep(600)\n",
        ],
        env=_child_env(tmp_path, tmp_path),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(descendants(server.pid)) < 3:  # server, toil_child, sleep
            assert time.monotonic() < deadline, descendants(server.pid)
            time.sleep(0.05)
        tree = [pid for pid in descendants(server.pid) if pid != server.pid]
        server.kill()
        server.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in tree):
            assert time.monotonic() < deadline, "the run outlived its server"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_exit_code_and_task_logs_of_a_finished_run(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "CWLJob_hello.cwl_000.log").write_text(CWL_LOG)
    done = subprocess.run(
        [sys.executable, "-m", "toolchest_wes.engines.toil_child", "sh", "-c", "echo {}; exit 4"],
        env=_child_env(tmp_path, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4
    assert json.loads(done.stdout) == {}
    assert [t["name"] for t in read_tasks(tmp_path / "tasks" / "tasks.jsonl")] == ["hello.cwl"]


def test_hostexec_turns_singularity_exec_into_bwrap() -> None:
    argv = toil_hostexec.bwrap_argv(
        [
            "--pwd",
            "/mnt/c/work",
            "--containall",
            "--bind",
            "/host/work:/mnt/c/work",
            "--bind",
            "/host/in.txt:/mnt/c/in.txt:ro",
            "--bind",
            "/host/tmp:/tmp",
            "/images/ubuntu.sif",
            "/bin/sh",
            "-c",
            "run",
        ],
        bwrap="/usr/bin/bwrap",
    )
    assert argv == [
        "/usr/bin/bwrap",
        "--dev-bind",
        "/",
        "/",
        "--die-with-parent",
        "--tmpfs",
        "/mnt",
        "--bind",
        "/host/work",
        "/mnt/c/work",
        "--ro-bind",
        "/host/in.txt",
        "/mnt/c/in.txt",
        "--bind",
        "/host/tmp",
        "/tmp",
        "--chdir",
        "/mnt/c/work",
        "--",
        "/bin/sh",
        "-c",
        "run",
    ]


def test_hostexec_pull_and_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert toil_hostexec.main(["--version"]) == 0
    assert "hostexec" in capsys.readouterr().out
    image = tmp_path / "ubuntu.sif"
    assert toil_hostexec.main(["pull", str(image), "docker://ubuntu:22.04"]) == 0
    assert image.exists()
