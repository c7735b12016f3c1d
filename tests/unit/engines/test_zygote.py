"""The zygote, spoken to over its socket as ``WarmLauncher`` does, including when things fail.

Each test starts ``python -m toolchest_wes.engines.zygote FD`` on one end of a socket pair,
with small entry modules written for it, and reads the newline-delimited JSON it answers.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.engines.engine_record import read_exit, was_stopped
from toolchest_wes.engines.zygote import CHILD_CRASH_EXIT

REPO_ROOT = Path(__file__).resolve().parents[3]

ENTRIES = {
    "zygote_demo": """
        import sys, time

        def main(argv):
            action = argv[0]
            if action == "none":
                return None
            if action == "exit-message":
                sys.exit("gave up")
            if action == "return-message":
                return "gave up too"
            if action == "interrupt":
                raise KeyboardInterrupt
            if action == "sleep":
                time.sleep(600)
            return 0
    """,
    "cold_demo": """
        def warm():
            raise RuntimeError("cold")

        def main(argv):
            return 0
    """,
    "threads_demo": """
        import threading, time

        def warm():
            thread = threading.Thread(target=time.sleep, args=(600,), name="left-running")
            thread.daemon = True
            thread.start()

        def main(argv):
            return 0
    """,
    "no_main_demo": """
        VALUE = 1
    """,
    # An entry with a spare: prefault() runs in the spare, main() tells whether it did.
    "spare_demo": """
        import os
        PREPARED = None

        def prefault(nice):
            global PREPARED
            os.nice(nice)
            PREPARED = os.getpid()

        def main(argv):
            print(PREPARED == os.getpid(), os.getsid(0) == os.getpid(), os.nice(0))
            return 0
    """,
    "failing_spare_demo": """
        def prefault(nice):
            raise RuntimeError("no spare today")

        def main(argv):
            return 0
    """,
    # An entry that learns from each request: children forked afterwards print what it
    # learned before them; a request for "fail" makes learn() raise.
    "learning_demo": """
        LEARNED = []

        def learn(argv, cwd):
            if argv == ["fail"]:
                raise RuntimeError("nothing to learn")
            LEARNED.append([argv, cwd])

        def main(argv):
            print(LEARNED)
            return 0
    """,
    # An entry whose children may take another run: each run prints the process, how many
    # runs it has had, what of the environment it sees and its directory.
    "reusable_demo": """
        import os, time
        RUNS = 0
        FIT = True

        def reset():
            print("written after the run")
            return FIT

        def main(argv):
            global RUNS, FIT
            RUNS += 1
            print(os.getpid(), RUNS, os.environ.get("SEEN", "-"), os.environ.get("LEFT", "-"))
            os.environ["LEFT"] = "by-an-earlier-run"
            action = argv[0] if argv else "ok"
            if action == "unfit":
                FIT = False
            if action == "fail":
                return 3
            if action == "nap":
                time.sleep(1)
            if action == "sleep":
                time.sleep(600)
            return 0
    """,
    # A supervisor that cleans up on SIGTERM, and has the zygote wait for it.
    "graceful_demo": """
        import signal, sys, time
        SHUTDOWN_GRACE_S = 30.0
        def main(argv):
            def cleanup(signum, frame):
                open(argv[0], "w").close()
                sys.exit(9)
            signal.signal(signal.SIGTERM, cleanup)
            open(argv[0] + ".ready", "w").close()
            time.sleep(600)
    """,
}


class Zygote:
    """A zygote process and our end of its socket."""

    def __init__(self, modules: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        path = [str(REPO_ROOT), str(modules), os.environ.get("PYTHONPATH", "")]
        #: What the zygote, and a child before it takes its run's files, write to stderr.
        self.stderr = modules.parent / "zygote.stderr"
        with open(self.stderr, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "toolchest_wes.engines.zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)},
                stdin=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        theirs.close()
        ours.settimeout(60)
        self.sock = ours
        self._buffer = b""
        self._req = 0

    def send(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.sock.sendall(data)

    def receive(self, wanted: Callable[[dict[str, Any]], bool] = lambda m: True) -> dict[str, Any]:
        """The next message that ``wanted`` accepts (others are dropped)."""
        while True:
            while b"\n" not in self._buffer:
                chunk = self.sock.recv(65536)
                assert chunk, "the zygote closed its socket"
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            message = json.loads(line)
            if wanted(message):
                return message  # type: ignore[no-any-return]

    def hello(
        self, *entries: str, spare_nice: int | None = None, reuse: bool = False
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"entries": list(entries), "reuse": reuse}
        if spare_nice is not None:
            message["spare_nice"] = spare_nice
        self.send(message)
        return self.receive()

    def fork(self, folder: Path, module: str, *args: str, **fields: Any) -> dict[str, Any]:
        """Ask for a child of entry ``module`` with ``args``; the zygote's answer.

        ``fields`` replace those of the request; a field set to None is left out.
        """
        self._req += 1
        request = {
            "req": self._req,
            "entry": module,
            "argv": [module, *args],
            "cwd": str(folder),
            "stdout": str(folder / "stdout"),
            "stderr": str(folder / "stderr"),
            "env": {},
            **fields,
        }
        self.send({k: v for k, v in request.items() if v is not None})
        req = self._req
        return self.receive(lambda m: m.get("req") == req)

    def exit_of(self, pid: int) -> int:
        return int(self.receive(lambda m: m.get("pid") == pid and "status" in m)["status"])

    def wait(self) -> int:
        return self.proc.wait(30)

    def close(self) -> None:
        """Close our end, on which the zygote exits by itself; kill it if it does not."""
        self.sock.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    modules = tmp_path / "modules"
    modules.mkdir()
    for name, source in ENTRIES.items():
        (modules / f"{name}.py").write_text(textwrap.dedent(source))
    made = Zygote(modules)
    yield made
    made.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A run folder for the children's cwd and logs."""
    path = tmp_path / "run"
    path.mkdir()
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ready_names_the_entries_it_loaded_and_why_others_failed(zygote):
    ready = zygote.hello("zygote_demo", "cold_demo", "threads_demo", "no_main_demo", "no_such_demo")

    assert ready["ready"] is True
    # A failed warm-up costs speed only: the entry is still served.
    assert ready["entries"] == ["cold_demo", "threads_demo", "zygote_demo"]
    assert set(ready["failed"]) == {"no_main_demo", "no_such_demo"}
    assert "has no main()" in ready["failed"]["no_main_demo"]
    assert "ModuleNotFoundError" in ready["failed"]["no_such_demo"]
    warnings = "\n".join(ready["warnings"])
    assert "cold_demo.warm() failed" in warnings and "RuntimeError: cold" in warnings
    assert "threads left after warm-up: left-running" in warnings


def test_end_of_file_before_the_hello_exits_cleanly(zygote):
    zygote.sock.shutdown(socket.SHUT_WR)

    assert zygote.wait() == 0


def test_unreadable_lines_are_skipped(zygote, folder):
    zygote.hello("zygote_demo")
    zygote.send(b"not json\n[1, 2]\n")

    reply = zygote.fork(folder, "zygote_demo", "none")

    assert zygote.exit_of(reply["pid"]) == 0


@pytest.mark.parametrize(
    ("entry", "fields", "code", "words"),
    [
        ("no_main_demo", {}, errno.ENOENT, "was not loaded"),
        ("zygote_demo", {"cwd": "/no/such/folder"}, errno.ENOENT, "no such directory"),
        ("zygote_demo", {"stdout": "/no/such/folder/out"}, errno.ENOENT, "No such file"),
        ("zygote_demo", {"stderr": "/no/such/folder/err"}, errno.ENOENT, "No such file"),
    ],
)
def test_a_request_it_cannot_carry_out_is_answered_with_an_os_error(
    zygote, folder, entry, fields, code, words
):
    zygote.hello("zygote_demo", "no_main_demo")

    reply = zygote.fork(folder, entry, "none", **fields)

    assert "pid" not in reply
    assert reply["errno"] == code and words in reply["error"]
    # The zygote goes on serving.
    assert zygote.exit_of(zygote.fork(folder, "zygote_demo", "none")["pid"]) == 0


def test_a_malformed_request_is_answered_with_its_error(zygote, folder):
    zygote.hello("zygote_demo")

    reply = zygote.fork(folder, "zygote_demo", entry=None)

    assert reply["error"].startswith("KeyError") and "errno" not in reply


@pytest.mark.parametrize(
    ("action", "code", "stderr"),
    [
        ("none", 0, ""),
        ("exit-message", 1, "gave up"),
        ("return-message", 1, "gave up too"),
        ("interrupt", CHILD_CRASH_EXIT, "KeyboardInterrupt"),
    ],
)
def test_a_child_exits_as_the_interpreter_would(zygote, folder, action, code, stderr):
    zygote.hello("zygote_demo")

    reply = zygote.fork(folder, "zygote_demo", action)

    assert zygote.exit_of(reply["pid"]) == code
    assert stderr in (folder / "stderr").read_text()


def test_sigterm_kills_the_children_reports_them_and_exits(zygote, folder):
    zygote.hello("zygote_demo")
    pid = zygote.fork(folder, "zygote_demo", "sleep")["pid"]

    zygote.proc.send_signal(signal.SIGTERM)

    assert zygote.exit_of(pid) == -signal.SIGKILL
    assert zygote.wait() == 0


def test_end_of_file_kills_the_children_and_still_reports_them(zygote, folder):
    zygote.hello("zygote_demo")
    pid = zygote.fork(folder, "zygote_demo", "sleep")["pid"]

    zygote.sock.shutdown(socket.SHUT_WR)

    assert zygote.exit_of(pid) == -signal.SIGKILL
    assert zygote.wait() == 0


def test_a_child_whose_entry_asks_for_grace_gets_sigterm_first(
    zygote: Zygote, folder: Path
) -> None:
    zygote.hello("zygote_demo", "graceful_demo")
    marker = folder / "cleaned-up"
    graceful = zygote.fork(folder, "graceful_demo", str(marker))["pid"]
    plain = zygote.fork(folder, "zygote_demo", "sleep")["pid"]
    deadline = time.monotonic() + 30
    while not Path(f"{marker}.ready").exists():  # its SIGTERM handler is in place
        assert time.monotonic() < deadline
        time.sleep(0.01)

    zygote.sock.shutdown(socket.SHUT_WR)

    assert zygote.exit_of(graceful) == 9
    assert marker.exists()
    assert zygote.exit_of(plain) == -signal.SIGKILL
    assert zygote.wait() == 0


def test_a_parent_gone_for_good_leaves_no_child_behind(zygote, folder):
    zygote.hello("zygote_demo")
    pid = zygote.fork(folder, "zygote_demo", "sleep")["pid"]

    # Its reports now go nowhere (a broken pipe), which must not keep it from exiting.
    zygote.sock.close()

    assert zygote.wait() == 0
    assert not alive(pid)


def children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The fields after the command name, which is in parentheses.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def run_spare_demo(zygote: Zygote, folder: Path) -> list[str]:
    """Fork spare_demo once; what its main printed."""
    reply = zygote.fork(folder, "spare_demo")
    assert zygote.exit_of(reply["pid"]) == 0
    return (folder / "stdout").read_text().split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_request_goes_to_the_spare_prepared_ahead_of_it(zygote, folder):
    zygote.hello("spare_demo", "zygote_demo", spare_nice=3)

    # The first requests may come before the spare is ready and are forked as before; one
    # that comes after finds it. Both kinds run in a session of their own.
    for _ in range(100):
        printed = run_spare_demo(zygote, folder)
        assert printed[1] == "True"
        if printed[0] == "True":
            break
        time.sleep(0.1)
    assert printed == ["True", "True", "3"]
    # Other entries are forked as before, and the zygote goes on making spares.
    assert zygote.exit_of(zygote.fork(folder, "zygote_demo", "none")["pid"]) == 0
    for _ in range(100):
        if run_spare_demo(zygote, folder)[0] == "True":
            break
        time.sleep(0.1)
    else:
        pytest.fail("no second spare")


def test_without_spare_nice_there_is_no_spare(zygote, folder):
    zygote.hello("spare_demo")
    time.sleep(0.5)

    assert run_spare_demo(zygote, folder) == ["False", "True", "0"]


def test_a_spare_that_fails_to_prepare_turns_spares_off(zygote, folder):
    zygote.hello("failing_spare_demo", spare_nice=3)
    time.sleep(0.5)

    for _ in range(3):
        assert zygote.exit_of(zygote.fork(folder, "failing_spare_demo")["pid"]) == 0
    # A child's exit is reported before it is gone; it is reaped a moment later.
    deadline = time.monotonic() + 10
    while children_of(zygote.proc.pid):
        assert time.monotonic() < deadline, "a child was not reaped"
        time.sleep(0.01)
    # The two spares made at the start failed, and none was made after them.
    assert zygote.stderr.read_text().count("RuntimeError: no spare today") == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_two_spares_are_kept_and_go_with_the_zygote(zygote, folder):
    zygote.hello("spare_demo", spare_nice=3)
    deadline = time.monotonic() + 30
    while len(spares := children_of(zygote.proc.pid)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(children_of(zygote.proc.pid)) == 2

    zygote.sock.shutdown(socket.SHUT_WR)

    assert zygote.wait() == 0
    assert not any(alive(pid) for pid in spares)


def test_a_request_too_large_for_a_spare_is_forked_as_usual(zygote, folder):
    zygote.hello("spare_demo", spare_nice=3)
    for _ in range(100):
        if run_spare_demo(zygote, folder)[0] == "True":
            break
        time.sleep(0.1)
    time.sleep(0.5)  # both spares ready again

    # More than one packet of the spare's socket holds.
    reply = zygote.fork(folder, "spare_demo", env={"LARGE": "x" * 4_000_000})
    assert zygote.exit_of(reply["pid"]) == 0
    assert (folder / "stdout").read_text().split()[:2] == ["False", "True"]

    # The other spare still takes the next request.
    assert run_spare_demo(zygote, folder)[0] == "True"


@pytest.fixture
def keeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that stands for the gunicorn arbiter."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_record_names_the_child_and_then_its_exit(zygote, folder):
    zygote.hello("zygote_demo")
    record = folder / "engines" / "run.json"

    pid = zygote.fork(folder, "zygote_demo", "none", record=str(record))["pid"]

    assert json.loads(record.read_text())["pid"] == pid
    assert json.loads(record.read_text())["reaper"][0] == zygote.proc.pid
    assert zygote.exit_of(pid) == 0
    assert read_exit(record) == 0


def test_with_a_keeper_a_dead_parent_leaves_the_children_to_end_by_themselves(
    zygote, folder, keeper
):
    zygote.send({"entries": ["zygote_demo"], "keeper": keeper.pid})
    zygote.receive()
    record = folder / "run.json"
    pid = zygote.fork(folder, "zygote_demo", "sleep", record=str(record))["pid"]

    zygote.sock.close()
    # Had the zygote shut down, it would have SIGKILLed the child.
    os.kill(pid, signal.SIGTERM)

    assert zygote.wait() == 0
    assert read_exit(record) == -signal.SIGTERM


def test_a_lingering_zygote_kills_its_children_when_the_keeper_exits(zygote, folder, keeper):
    zygote.send({"entries": ["zygote_demo"], "keeper": keeper.pid})
    zygote.receive()
    record = folder / "run.json"
    pid = zygote.fork(folder, "zygote_demo", "sleep", record=str(record))["pid"]
    zygote.sock.close()

    keeper.kill()
    keeper.wait()

    assert zygote.wait() == 0
    assert read_exit(record) is None and was_stopped(record)
    assert not alive(pid)


def test_a_shutdown_kills_the_children_even_with_a_keeper(zygote, folder, keeper):
    zygote.send({"entries": ["zygote_demo"], "keeper": keeper.pid})
    zygote.receive()
    pid = zygote.fork(folder, "zygote_demo", "sleep")["pid"]

    zygote.send({"shutdown": True})
    zygote.sock.shutdown(socket.SHUT_WR)

    assert zygote.exit_of(pid) == -signal.SIGKILL
    assert zygote.wait() == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_lingering_zygote_keeps_its_runs_but_not_its_spares(zygote, folder, keeper):
    zygote.send({"entries": ["spare_demo", "zygote_demo"], "keeper": keeper.pid, "spare_nice": 3})
    zygote.receive()
    deadline = time.monotonic() + 30
    while len(children_of(zygote.proc.pid)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    record = folder / "run.json"
    pid = zygote.fork(folder, "zygote_demo", "sleep", record=str(record))["pid"]

    zygote.sock.close()

    while children_of(zygote.proc.pid) != {pid}:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(pid, signal.SIGTERM)
    assert zygote.wait() == 0
    assert read_exit(record) == -signal.SIGTERM


def test_children_inherit_what_the_entry_learned_from_earlier_requests(zygote, folder):
    zygote.hello("learning_demo")

    printed = []
    for args in (["a", "b"], ["fail"], ["c"]):
        reply = zygote.fork(folder, "learning_demo", *args)
        assert zygote.exit_of(reply["pid"]) == 0
        printed.append(json.loads((folder / "stdout").read_text().replace("'", '"')))

    # Each child was forked before the zygote learned from its own request; a learn() that
    # raised costs the zygote nothing.
    assert printed == [[], [[["a", "b"], str(folder)]], [[["a", "b"], str(folder)]]]


def run_reusable(zygote: Zygote, folder: Path, *args: str, **fields: Any) -> list[str]:
    """Run reusable_demo to its end; what it printed: pid, runs, SEEN and LEFT."""
    reply = zygote.fork(folder, "reusable_demo", *args, **fields)
    zygote.exit_of(reply["pid"])
    return (folder / "stdout").read_text().split()


def test_a_child_whose_run_ended_takes_the_next_run_with_a_fresh_environment(
    zygote, folder, tmp_path
):
    zygote.hello("reusable_demo", reuse=True)
    first = run_reusable(zygote, folder, env={"SEEN": "a"})

    # The child comes back once it has reported its exit; the next request may come first.
    for n in range(100):
        later = tmp_path / f"later{n}"
        later.mkdir()
        second = run_reusable(zygote, later, env={"SEEN": "b"})
        if second[0] == first[0]:
            break
    else:
        pytest.fail("the child never took another run")
    # What the child wrote after its run went nowhere near the run's log.
    assert (folder / "stdout").read_text().split() == first
    assert first[1:] == ["1", "a", "-"]
    # Neither the last run's request nor what the run set is in the next one's environment.
    assert second[1:] == [second[1], "b", "-"] and int(second[1]) >= 2


def test_without_reuse_every_run_has_a_process_of_its_own(zygote, folder):
    zygote.hello("reusable_demo")

    pids = {run_reusable(zygote, folder)[0] for _ in range(5)}

    assert len(pids) == 5


@pytest.mark.parametrize("action", ["fail", "unfit"])
def test_a_child_whose_run_failed_or_that_is_unfit_takes_no_other(zygote, folder, action):
    zygote.hello("reusable_demo", reuse=True)
    reply = zygote.fork(folder, "reusable_demo", action)
    pid = reply["pid"]
    assert zygote.exit_of(pid) == (3 if action == "fail" else 0)

    later = {run_reusable(zygote, folder)[0] for _ in range(5)}

    assert str(pid) not in later
    deadline = time.monotonic() + 10
    while alive(pid) and pid in children_of(zygote.proc.pid):
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)


def test_each_run_of_a_reused_child_gets_its_own_record(zygote, folder):
    zygote.hello("reusable_demo", reuse=True)
    records = [folder / "engines" / f"run{n}.json" for n in range(6)]

    pids = [int(run_reusable(zygote, folder, record=str(r))[0]) for r in records]

    assert len(set(pids)) < len(pids)
    assert [json.loads(r.read_text())["pid"] for r in records] == pids
    assert [read_exit(r) for r in records] == [0] * len(records)


def test_a_signal_for_a_run_that_ended_does_not_reach_the_next_run_of_its_process(zygote, folder):
    zygote.hello("reusable_demo", reuse=True)
    first = zygote.fork(folder, "reusable_demo")
    assert zygote.exit_of(first["pid"]) == 0
    for _ in range(100):
        second = zygote.fork(folder, "reusable_demo", "sleep")
        if second["pid"] == first["pid"]:
            break
        zygote.send({"signal": int(signal.SIGKILL), "pid": second["pid"], "req": second["req"]})
        zygote.exit_of(second["pid"])
    else:
        pytest.fail("the child never took another run")
    pid = first["pid"]
    deadline = time.monotonic() + 10
    while not (folder / "stdout").read_text():  # the second run has started
        assert time.monotonic() < deadline
        time.sleep(0.01)

    # What a cancel of the first run, late, sends.
    zygote.send({"signal": int(signal.SIGKILL), "pid": pid, "req": first["req"]})
    time.sleep(0.3)
    assert alive(pid)

    zygote.send({"signal": int(signal.SIGKILL), "pid": pid, "req": second["req"]})
    assert zygote.exit_of(pid) == -signal.SIGKILL


def test_a_lingering_zygote_records_a_reusable_childs_exit_and_lets_it_go(zygote, folder, keeper):
    zygote.send({"entries": ["reusable_demo"], "keeper": keeper.pid, "reuse": True})
    zygote.receive()
    record = folder / "run.json"
    pid = zygote.fork(folder, "reusable_demo", "nap", record=str(record))["pid"]

    zygote.sock.close()

    # The run ends by itself after its nap; the child is not kept for another.
    assert zygote.wait() == 0
    assert read_exit(record) == 0
    assert not alive(pid)
