"""SubprocessLauncher and WarmLauncher, run against the small ``_demo_entry`` module."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchest_wes.engines import process, warm_launcher
from toolchest_wes.engines.base import Launcher, LaunchSpec, ProcessHandle
from toolchest_wes.engines.process import ProcessLostError, SubprocessLauncher
from toolchest_wes.engines.warm_launcher import WarmLauncher

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
ENTRY = "_demo_entry"


@pytest.fixture(autouse=True)
def demo_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the package and the demo entry importable by every process the launchers start."""
    parts = [str(REPO_ROOT), str(HERE)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(parts))


@pytest.fixture(params=["subprocess", "warm"])
def launcher(request: pytest.FixtureRequest) -> Iterator[Launcher]:
    made: Launcher = (
        SubprocessLauncher() if request.param == "subprocess" else WarmLauncher([ENTRY])
    )
    yield made
    made.close()


@pytest.fixture
def warm() -> Iterator[WarmLauncher]:
    made = WarmLauncher([ENTRY])
    yield made
    made.close()


def make_spec(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> LaunchSpec:
    return LaunchSpec(
        argv=["demo", *args],
        entry=ENTRY,
        cwd=tmp_path,
        stdout=tmp_path / "stdout",
        stderr=tmp_path / "stderr",
        env=env or {},
    )


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, from /proc."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path("/proc", name, "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(name))
    return members


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_launchers_satisfy_the_protocol():
    assert isinstance(SubprocessLauncher(), Launcher)
    assert isinstance(WarmLauncher([ENTRY]), Launcher)


@pytest.mark.parametrize("code", [0, 1, 3])
def test_exit_code(launcher, tmp_path, code):
    handle = launcher.start(make_spec(tmp_path, "exit", str(code)))

    assert isinstance(handle, ProcessHandle)
    assert handle.wait(30) == code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_death_by_signal_is_negative(launcher, tmp_path, sig):
    handle = launcher.start(make_spec(tmp_path, "signal", sig.name))

    assert handle.wait(30) == -sig


def test_process_sees_spec(launcher, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    spec = make_spec(tmp_path, "print", "DEMO_VAR", env={"DEMO_VAR": "from-spec"})
    spec.cwd = work

    assert launcher.start(spec).wait(30) == 0

    out = (tmp_path / "stdout").read_text()
    assert "'print', 'DEMO_VAR']" in out
    assert f"cwd={work}\n" in out
    assert "env=from-spec\n" in out
    assert (tmp_path / "stderr").read_text() == "to-stderr\n"


def test_start_truncates_old_logs(launcher, tmp_path):
    (tmp_path / "stdout").write_text("from an earlier attempt\n")
    (tmp_path / "stderr").write_text("from an earlier attempt\n")

    assert launcher.start(make_spec(tmp_path, "print", "X")).wait(30) == 0

    assert "earlier" not in (tmp_path / "stdout").read_text()
    assert (tmp_path / "stderr").read_text() == "to-stderr\n"


def test_stdout_and_stderr_may_share_a_file(launcher, tmp_path):
    spec = make_spec(tmp_path, "print", "X")
    spec.stderr = spec.stdout

    assert launcher.start(spec).wait(30) == 0

    lines = spec.stdout.read_text().splitlines()
    assert "to-stderr" in lines
    assert "warmed=" in "".join(lines)


def test_own_session_and_group(launcher, tmp_path):
    handle = launcher.start(make_spec(tmp_path, "sleep", "600"))
    try:
        assert os.getpgid(handle.pid) == handle.pid
        assert os.getsid(handle.pid) == handle.pid
    finally:
        handle.kill_tree(1.0)


def test_wait_times_out_with_none(launcher, tmp_path):
    handle = launcher.start(make_spec(tmp_path, "sleep", "600"))

    assert handle.wait(0.05) is None

    handle.kill_tree(1.0)
    assert handle.wait(30) == -signal.SIGTERM


def test_kill_tree_kills_grandchildren(launcher, tmp_path):
    pid_file = tmp_path / "sleep.pid"
    handle = launcher.start(make_spec(tmp_path, "spawn-sleep", str(pid_file)))
    assert wait_until(pid_file.exists)
    sleep_pid = int(pid_file.read_text())
    assert sleep_pid in group_members(handle.pid)

    handle.kill_tree(5.0)

    assert handle.wait(30) == -signal.SIGTERM
    assert wait_until(lambda: not group_members(handle.pid))


def test_kill_tree_escalates_to_sigkill(launcher, tmp_path):
    ready = tmp_path / "ready"
    handle = launcher.start(make_spec(tmp_path, "ignore-term", str(ready)))
    assert wait_until(ready.exists)

    handle.kill_tree(0.2)

    assert handle.wait(30) == -signal.SIGKILL
    assert not group_members(handle.pid)


def test_kill_tree_after_exit_is_harmless(launcher, tmp_path):
    handle = launcher.start(make_spec(tmp_path, "exit", "0"))
    assert handle.wait(30) == 0

    handle.kill_tree(0.1)

    assert handle.wait(0) == 0


def test_concurrent_starts(launcher, tmp_path):
    results: dict[int, int | None] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = launcher.start(make_spec(tmp_path, "exit", str(i))).wait(60)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert results == {i: i for i in range(8)}


def test_missing_cwd_is_an_os_error(launcher, tmp_path):
    spec = make_spec(tmp_path, "exit", "0")
    spec.cwd = tmp_path / "missing"

    with pytest.raises(OSError, match="missing"):
        launcher.start(spec)


def test_plain_argv(launcher, tmp_path):
    spec = make_spec(tmp_path)
    spec.argv, spec.entry = ["sh", "-c", "echo plain; exit 4"], None

    assert launcher.start(spec).wait(30) == 4
    assert (tmp_path / "stdout").read_text() == "plain\n"


def test_close_kills_running_processes(launcher, tmp_path):
    pid_file = tmp_path / "sleep.pid"
    handle = launcher.start(make_spec(tmp_path, "spawn-sleep", str(pid_file)))
    assert wait_until(pid_file.exists)

    launcher.close()

    assert handle.wait(30) == -signal.SIGKILL
    assert wait_until(lambda: not group_members(handle.pid))


def test_warm_constructor_starts_nothing():
    launcher = WarmLauncher([ENTRY])

    assert launcher.zygote_pid is None
    launcher.close()


def test_warm_child_runs_in_the_warmed_interpreter(warm, tmp_path):
    warm.start_background()
    zygote_pid = warm.zygote_pid
    assert zygote_pid is not None

    handle = warm.start(make_spec(tmp_path, "print", "X"))

    assert handle.wait(30) == 0
    assert os.getppid() != handle.pid
    assert warm.zygote_pid == zygote_pid
    out = (tmp_path / "stdout").read_text()
    assert "argv=['demo', 'print', 'X']" in out
    assert "warmed=True" in out


def test_warm_crash_in_entry_exits_70(warm, tmp_path):
    handle = warm.start(make_spec(tmp_path, "raise"))

    assert handle.wait(30) == 70
    assert "RuntimeError: boom" in (tmp_path / "stderr").read_text()


def test_warm_sys_exit_code(warm, tmp_path):
    assert warm.start(make_spec(tmp_path, "sys-exit", "5")).wait(30) == 5


def test_warm_other_entries_use_the_fallback(warm, tmp_path):
    spec = make_spec(tmp_path, "print", "X")
    spec.entry = "_demo_entry_copy"
    (tmp_path / "_demo_entry_copy.py").write_text((HERE / "_demo_entry.py").read_text())

    assert warm.start(spec).wait(30) == 0

    assert "warmed=False" in (tmp_path / "stdout").read_text()
    assert warm.zygote_pid is None


def test_warm_unimportable_entry_falls_back(tmp_path, caplog):
    launcher = WarmLauncher(["_no_such_entry"])
    spec = make_spec(tmp_path)
    spec.entry = "_no_such_entry"
    try:
        with caplog.at_level(logging.WARNING, logger=warm_launcher.__name__):
            code = launcher.start(spec).wait(30)
    finally:
        launcher.close()

    assert code == 1
    assert "No module named _no_such_entry" in (tmp_path / "stderr").read_text()
    assert "cannot run entry=_no_such_entry" in caplog.text


def test_zygote_death_loses_processes_then_falls_back(warm, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(warm_launcher, "_RESTART_INTERVAL_S", 3600.0)
    handle = warm.start(make_spec(tmp_path, "sleep", "600"))
    zygote_pid = warm.zygote_pid
    assert zygote_pid is not None

    with caplog.at_level(logging.WARNING, logger=warm_launcher.__name__):
        os.kill(zygote_pid, signal.SIGKILL)
        with pytest.raises(ProcessLostError):
            handle.wait(30)
        assert wait_until(lambda: not group_members(handle.pid))

        again = warm.start(make_spec(tmp_path, "print", "X"))
        assert again.wait(30) == 0

    assert "zygote died" in caplog.text
    assert "warmed=False" in (tmp_path / "stdout").read_text()


def test_zygote_is_replaced_after_death(warm, tmp_path, monkeypatch):
    monkeypatch.setattr(warm_launcher, "_RESTART_INTERVAL_S", 0.0)
    assert warm.start(make_spec(tmp_path, "exit", "0")).wait(30) == 0
    first = warm.zygote_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: not pid_exists(first))

    handle = warm.start(make_spec(tmp_path, "print", "X"))

    assert handle.wait(30) == 0
    assert warm.zygote_pid not in (None, first)
    assert "warmed=True" in (tmp_path / "stdout").read_text()


def test_close_leaves_no_zygote(tmp_path):
    launcher = WarmLauncher([ENTRY])
    handle = launcher.start(make_spec(tmp_path, "sleep", "600"))
    zygote_pid = launcher.zygote_pid
    assert zygote_pid is not None

    launcher.close()

    assert not pid_exists(zygote_pid)
    assert handle.wait(0) == -signal.SIGKILL
    with pytest.raises(RuntimeError, match="closed"):
        launcher.start(make_spec(tmp_path, "exit", "0"))


@pytest.fixture
def leader() -> Iterator[subprocess.Popen[bytes]]:
    """A process that leads a group of its own and starts a child when it reads a line."""
    proc = subprocess.Popen(
        ["sh", "-c", "read line; sleep 600 & wait"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    yield proc
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stdin is not None
    proc.stdin.close()


def test_a_live_leader_without_children_leaves_nothing_of_its_run(leader):
    # An engine process that took its run's end and waits for another.
    assert process._group_exists(leader.pid)

    assert not process._run_left_in_group(leader.pid)


def test_a_live_leader_with_a_child_still_runs_something(leader):
    assert leader.stdin is not None
    leader.stdin.write(b"go\n")
    leader.stdin.flush()
    assert wait_until(lambda: len(group_members(leader.pid)) == 2)

    assert process._run_left_in_group(leader.pid)


def test_a_group_whose_leader_exited_is_left_while_it_has_members(leader):
    assert leader.stdin is not None
    leader.stdin.write(b"go\n")
    leader.stdin.flush()
    assert wait_until(lambda: len(group_members(leader.pid)) == 2)
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait()

    assert process._run_left_in_group(leader.pid)
