"""WarmLauncher when its zygote fails: slow to warm, stuck, impossible to start, dying.

Whatever goes wrong with the zygote, a run still starts (in a fresh process, without the
warm-up) and the launcher says why in its log. tests/unit/engines/test_process.py has the
behaviour that both launchers share.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchest_wes.engines import warm_launcher
from toolchest_wes.engines.base import LaunchSpec, ProcessHandle
from toolchest_wes.engines.warm_launcher import WarmLauncher

REPO_ROOT = Path(__file__).resolve().parents[3]

ENTRY = "warm_launcher_demo"

# warm() takes as long as WARM_S says, so a test can make the zygote slow to get ready.
SOURCE = """
    import os, sys, time

    WARMED = False

    def warm():
        global WARMED
        time.sleep(float(os.environ.get("WARM_S", "0")))
        WARMED = True

    def main(argv):
        print(f"warmed={WARMED}")
        return int(argv[0])

    if __name__ == "__main__":
        sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def entry_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo entry, importable by the zygote and by fresh processes alike."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / f"{ENTRY}.py").write_text(textwrap.dedent(SOURCE))
    path = [str(REPO_ROOT), str(modules), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))


@pytest.fixture
def launcher() -> Iterator[WarmLauncher]:
    made = WarmLauncher([ENTRY])
    yield made
    made.close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def spec(run_dir: Path, code: int = 0) -> LaunchSpec:
    return LaunchSpec(
        argv=[ENTRY, str(code)],
        entry=ENTRY,
        cwd=run_dir,
        stdout=run_dir / "stdout",
        stderr=run_dir / "stderr",
    )


def finish(handle: ProcessHandle, run_dir: Path) -> tuple[int | None, str]:
    """The process's exit code and what it printed."""
    code = handle.wait(60)
    return code, (run_dir / "stdout").read_text()


def ready(launcher: WarmLauncher, run_dir: Path) -> int:
    """Run once through the zygote, so that it is up and warm; its pid."""
    assert finish(launcher.start(spec(run_dir)), run_dir) == (0, "warmed=True\n")
    pid = launcher.zygote_pid
    assert pid is not None
    return pid


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers kill(0); its state in /proc says it is finished.
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        time.sleep(0.02)
    return False


def test_a_zygote_not_ready_in_time_leaves_the_run_to_a_fresh_process(run_dir, monkeypatch, caplog):
    monkeypatch.setenv("WARM_S", "30")
    launcher = WarmLauncher([ENTRY], ready_timeout_s=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger=warm_launcher.__name__):
            # The fresh process imports the entry without warming it.
            assert finish(launcher.start(spec(run_dir, 3)), run_dir) == (3, "warmed=False\n")
    finally:
        launcher.close()

    assert "zygote not ready" in caplog.text


def test_a_stuck_zygote_is_killed_and_the_run_starts_afresh(launcher, run_dir, monkeypatch, caplog):
    monkeypatch.setattr(warm_launcher, "_REQUEST_TIMEOUT_S", 0.5)
    zygote = ready(launcher, run_dir)
    os.kill(zygote, signal.SIGSTOP)

    with caplog.at_level(logging.WARNING, logger=warm_launcher.__name__):
        result = finish(launcher.start(spec(run_dir, 4)), run_dir)

    assert result == (4, "warmed=False\n")
    assert "did not answer a fork request" in caplog.text
    # Killed, so that it cannot fork the run late, after it started elsewhere.
    assert gone(zygote)


def test_a_zygote_that_dies_while_asked_leaves_the_run_to_a_fresh_process(
    launcher, run_dir, monkeypatch, caplog
):
    monkeypatch.setattr(warm_launcher, "_RESTART_INTERVAL_S", 3600.0)
    zygote = ready(launcher, run_dir)
    os.kill(zygote, signal.SIGSTOP)
    handles: list[ProcessHandle] = []

    with caplog.at_level(logging.WARNING, logger=warm_launcher.__name__):
        starting = threading.Thread(target=lambda: handles.append(launcher.start(spec(run_dir))))
        starting.start()
        time.sleep(0.5)
        os.kill(zygote, signal.SIGKILL)
        starting.join(60)

    assert finish(handles[0], run_dir) == (0, "warmed=False\n")
    assert "zygote lost; running without it" in caplog.text
    assert "zygote died" in caplog.text


def test_a_zygote_that_cannot_start_is_not_tried_again_at_once(launcher, run_dir, caplog):
    # With no file descriptor left, not even the zygote's socket can be made.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    with caplog.at_level(logging.WARNING, logger=warm_launcher.__name__):
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            launcher.start_background()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        assert launcher.zygote_pid is None
        assert finish(launcher.start(spec(run_dir, 5)), run_dir) == (5, "warmed=False\n")

    assert "cannot start the zygote" in caplog.text
    assert launcher.zygote_pid is None


def test_close_kills_a_zygote_that_does_not_exit(run_dir, monkeypatch, caplog):
    monkeypatch.setattr(warm_launcher, "_CLOSE_TIMEOUT_S", 0.5)
    launcher = WarmLauncher([ENTRY])
    zygote = ready(launcher, run_dir)
    os.kill(zygote, signal.SIGSTOP)

    with caplog.at_level(logging.WARNING, logger=warm_launcher.__name__):
        launcher.close()

    assert "did not exit" in caplog.text
    assert gone(zygote)


def test_a_zygote_busy_with_a_burst_of_requests_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A thousand requests at once are answered one fork at a time: the last one waits longer
    # than the timeout, yet the zygote is not stuck as long as it keeps answering others.
    monkeypatch.setattr(warm_launcher, "_REQUEST_TIMEOUT_S", 0.3)
    client = types.SimpleNamespace(_heard_at=time.monotonic())
    request = warm_launcher._Request()
    stop = threading.Event()

    def answer_others() -> None:
        for _ in range(8):
            if stop.wait(0.1):
                return
            client._heard_at = time.monotonic()
        request.done.set()

    thread = threading.Thread(target=answer_others)
    start = time.monotonic()
    thread.start()
    try:
        assert warm_launcher._ZygoteClient._wait_answer(client, request, start)  # type: ignore[arg-type]
    finally:
        stop.set()
        thread.join()
    assert time.monotonic() - start >= 0.6


def test_a_zygote_silent_while_a_request_waits_counts_as_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warm_launcher, "_REQUEST_TIMEOUT_S", 0.2)
    # Last heard long before the request: only the time since the request counts.
    client = types.SimpleNamespace(_heard_at=time.monotonic() - 3600)
    start = time.monotonic()
    assert not warm_launcher._ZygoteClient._wait_answer(client, warm_launcher._Request(), start)  # type: ignore[arg-type]
    assert time.monotonic() - start >= 0.2
