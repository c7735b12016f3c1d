"""Engine records and the adoption of recorded processes, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from toolchest_wes.engines.adopted import CannotAdoptError, adopt, stop_recorded
from toolchest_wes.engines.base import LaunchSpec
from toolchest_wes.engines.engine_record import (
    exit_path,
    process_start,
    read_exit,
    read_record,
    remove_record,
    write_exit,
    write_record,
)
from toolchest_wes.engines.process import ProcessLostError, SubprocessLauncher
from toolchest_wes.engines.proctree import stat_fields


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process leading its own group, as engines do."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_record_names_the_process_and_its_reaper(tmp_path, sleeper):
    path = tmp_path / "engines" / "run.json"

    write_record(path, sleeper.pid, reaper=os.getpid())

    record = read_record(path)
    assert record is not None
    assert (record.pid, record.start) == (sleeper.pid, process_start(sleeper.pid))
    assert record.reaper == (os.getpid(), process_start(os.getpid()))
    assert record.adoptable and record.is_running() and record.reaper_running()


def test_another_process_under_the_recorded_pid_is_not_the_engine(tmp_path, sleeper):
    path = tmp_path / "run.json"
    write_record(path, sleeper.pid, reaper=None)
    payload = json.loads(path.read_text())
    # What a process that took the pid after the engine would look like: a later start.
    path.write_text(json.dumps({**payload, "start": payload["start"] + 1}))

    record = read_record(path)

    assert record is not None and not record.is_running()
    assert stop_recorded(path, 0.1) is None
    assert sleeper.poll() is None


def test_unreadable_records_and_exits_read_as_none(tmp_path):
    path = tmp_path / "run.json"
    assert read_record(path) is None and read_exit(path) is None
    path.write_text("{not json")
    exit_path(path).write_text("later\n")
    assert read_record(path) is None and read_exit(path) is None
    remove_record(path)
    assert not path.exists() and not exit_path(path).exists()


def test_an_engine_without_a_reaper_is_stopped_not_adopted(tmp_path, sleeper):
    path = tmp_path / "run.json"
    write_record(path, sleeper.pid, reaper=None)

    with pytest.raises(CannotAdoptError, match="not started by the zygote"):
        adopt(path)
    line = stop_recorded(path, 0.1)

    assert line == f"its engine process (pid {sleeper.pid}) was stopped"
    assert sleeper.wait(30) == -signal.SIGTERM


def test_an_adopted_engine_is_followed_to_its_recorded_exit(tmp_path):
    path = tmp_path / "run.json"
    script = "import sys; sys.stdin.read(); sys.exit(3)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    # This process reaps it and records its exit, as the zygote does.
    write_record(path, proc.pid, reaper=os.getpid())

    handle = adopt(path)
    assert handle.wait(0.01) is None
    assert handle.running_for_s() >= 0
    assert proc.stdin is not None
    proc.stdin.close()
    write_exit(path, proc.wait(30))

    assert handle.wait(30) == 3
    handle.close()


def test_an_engine_that_ended_with_a_recorded_exit_is_adopted_ended(tmp_path):
    path = tmp_path / "run.json"
    proc = subprocess.Popen(["true"])
    write_record(path, proc.pid, reaper=os.getpid())
    write_exit(path, proc.wait(30))

    assert adopt(path).wait(0) == 0


def test_an_engine_that_ended_without_a_recorded_exit_cannot_be_adopted(tmp_path):
    path = tmp_path / "run.json"
    proc = subprocess.Popen(["true"])
    write_record(path, proc.pid, reaper=os.getpid())
    proc.wait(30)

    with pytest.raises(CannotAdoptError, match="ended without a recorded exit status"):
        adopt(path)
    with pytest.raises(CannotAdoptError, match="no record"):
        adopt(tmp_path / "none.json")


def test_a_zombie_runs_while_its_reaper_does_and_has_ended_once_it_is_gone(tmp_path, sleeper):
    # An engine whose zygote was killed is a zombie until init reaps it, which may take
    # seconds; nothing will record its exit, so it is not adopted.
    zombie = subprocess.Popen(["true"])
    deadline = time.monotonic() + 30
    while (stat_fields(zombie.pid) or [b"Z"])[0] != b"Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    reaped = tmp_path / "reaped.json"
    write_record(reaped, zombie.pid, reaper=os.getpid())
    orphaned = tmp_path / "orphaned.json"
    write_record(orphaned, zombie.pid, reaper=sleeper.pid)
    sleeper.kill()
    sleeper.wait()

    record = read_record(reaped)
    assert record is not None and record.is_running()
    record = read_record(orphaned)
    assert record is not None and not record.is_running()
    with pytest.raises(CannotAdoptError, match="ended without a recorded exit status"):
        adopt(orphaned)
    assert stop_recorded(orphaned, 0.1) is None
    zombie.wait(30)


def test_an_engine_whose_reaper_died_is_lost_when_it_ends(tmp_path):
    path = tmp_path / "run.json"
    reaper = subprocess.Popen(["true"])
    reaper.wait(30)
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        write_record(path, proc.pid, reaper=os.getpid())
        payload = json.loads(path.read_text())
        path.write_text(json.dumps({**payload, "reaper": [reaper.pid, payload["reaper"][1]]}))
        handle = adopt(path)
        proc.kill()

        with pytest.raises(ProcessLostError, match="ended without a recorded exit status"):
            handle.wait(30)
    finally:
        proc.kill()
        proc.wait()


def test_a_process_started_by_exec_is_recorded_without_a_reaper(tmp_path):
    launcher = SubprocessLauncher()
    record = tmp_path / "engines" / "run.json"
    spec = LaunchSpec(
        argv=["sleep", "600"],
        entry=None,
        cwd=tmp_path,
        stdout=tmp_path / "stdout",
        stderr=tmp_path / "stderr",
        record=record,
    )
    handle = launcher.start(spec)
    try:
        recorded = read_record(record)
        assert recorded is not None and recorded.pid == handle.pid
        assert not recorded.adoptable
    finally:
        launcher.close()


def test_an_engine_its_zygote_stopped_is_not_adopted(tmp_path):
    path = tmp_path / "run.json"
    proc = subprocess.Popen(["true"])
    write_record(path, proc.pid, reaper=os.getpid())
    proc.wait(30)
    write_exit(path, -signal.SIGKILL, stopped=True)

    assert read_exit(path) is None
    with pytest.raises(CannotAdoptError, match="stopped when the server's processes stopped"):
        adopt(path)


def test_a_run_is_timed_from_when_it_began_not_from_its_process_start(tmp_path, sleeper):
    """A spare child of the zygote starts long before the run it is handed."""
    path = tmp_path / "run.json"
    write_record(path, sleeper.pid, reaper=os.getpid())
    record = read_record(path)
    assert record is not None and record.began is not None
    assert record.run_began == record.began >= record.start

    # As if the spare had waited an hour for its run: the run is timed from when it began.
    payload = json.loads(path.read_text())
    payload["began"] = payload["start"] - 3600 * os.sysconf("SC_CLK_TCK")
    path.write_text(json.dumps(payload))
    assert adopt(path).running_for_s() >= 3600 - 1e-6  # clock ticks to seconds, in floats

    # A record from before the field: timed from the process start.
    del payload["began"]
    path.write_text(json.dumps(payload))
    legacy = read_record(path)
    assert legacy is not None and legacy.began is None
    assert legacy.run_began == legacy.start
