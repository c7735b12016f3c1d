"""The zygote: a warm interpreter that forks engine processes for ``WarmLauncher``.

Run as ``python -m toolchest_wes.engines.zygote FD``, where FD is one end of a Unix stream
socket. Both sides send newline-delimited JSON objects:

- parent -> zygote, first: ``{"entries": [module, ...], "keeper": pid or null,
  "spare_nice": n, "reuse": bool}``. The zygote imports each module, calls its optional
  ``warm()`` and answers ``{"ready": true, "entries": [imported, ...], "failed": {module:
  error}, "warnings": [...]}``. ``spare_nice`` (optional, an integer) asks for spare
  children, and ``reuse`` (optional) for children that take another run once theirs has
  ended; both below.
- parent -> zygote: ``{"req": n, "entry", "argv", "cwd", "stdout", "stderr", "env",
  "record"}``. The zygote forks a child that runs ``entry.main(argv[1:])`` in its own session
  (or hands the request to a spare child) and answers ``{"req": n, "pid": p}``, or
  ``{"req": n, "error": message, "errno": number}``. With a ``record`` path, it first writes
  the child's engine record there, and once the child has ended (below), its exit code
  beside it (``toolchest_wes.engines.engine_record``).
- zygote -> parent, when a child ends: ``{"pid": p, "status": exit_code}``, where a negative
  code is the signal that killed it. A child that ends by itself writes its exit code to a
  pipe that the zygote reads, after flushing its output and just before it exits, and the
  zygote sends the status then; the child is reaped quietly once it is gone. The kernel
  takes milliseconds to tear down a forked interpreter's memory, and the run has nothing
  left to do by then. A child killed by a signal is reported when it is reaped.
- parent -> zygote: ``{"signal": n, "pid": p, "req": r}``: send signal ``n`` to the process
  group of the child that request ``r`` started, unless that child has gone on to another
  run (below); once the child is gone, to what is left of its group.
- parent -> zygote, last: ``{"shutdown": true}`` before the parent closes the socket.

SIGTERM, and end of file after ``shutdown``, make the zygote SIGKILL every child's process
group, report and reap them, and exit. A child whose entry module sets ``SHUTDOWN_GRACE_S``
gets SIGTERM first and that long to end by itself: a supervisor such as ``toil_child`` then
kills the processes it started in sessions of their own, which SIGKILLing its group would
leave behind.

End of file without ``shutdown`` means the parent died. Without a keeper the zygote shuts
down as above. With one (the gunicorn arbiter of an embedded server's worker, which starts
the next worker) it stops taking requests but keeps its children, reaping them and
recording their exits, so that the next worker can adopt their runs; it exits when the last
child has ended, and shuts down as above if the keeper exits first or SIGTERM arrives.

The zygote stays single-threaded: forking a process that has other threads can leave the
child with locks that nobody will ever release.

Spare children. A child forked from the zygote pays for the fork as it runs: each page of the
zygote it writes to (mostly through reference counts) is copied on the first write, some 2,500
copy-on-write faults for a cwltool hello-world, about 40 % of its CPU time. When the first
entry module that defines ``prefault(nice)`` was loaded and the parent sent ``spare_nice``,
the zygote keeps up to two children forked ahead of time: each, in a session of its own, calls
``prefault(spare_nice)`` (which lowers its priority to that nice value and walks a run's path
once, taking those faults), says it is ready and waits. The next request for that entry goes
to the oldest ready spare instead of to a new fork: the zygote opens the output files, hands
the request and the two descriptors to the spare over their socket, and answers the parent
with the spare's pid. With no spare ready the request is forked as usual. New spares are
forked while fewer children run than the machine has CPUs, so that they prepare on a core
that is idle rather than one that runs need; with every CPU busy, none is made. Two rather
than one, so that runs that follow each other closely find one ready: each spare has two
runs' time to prepare. A spare that fails before it is ready turns spares off for the
zygote's life. A spare never handed a request is killed and reaped quietly.

Reuse. A child forked from the zygote spends about two thirds of a short run's CPU on being
a fresh fork: the copy-on-write faults of the pages it writes, the fork and the teardown of
its memory at exit. With ``reuse``, the children of an entry module that defines
``reset() -> bool`` come back once their run has ended by itself with exit code 0: the child
reports its exit as any child does, calls ``reset()`` (which puts back what the run changed
in the process and answers whether the process can take another run) and, if it can, takes
back its starting environment and says so over its socket; the zygote then keeps it as a
ready spare of that entry, whose next request it takes as a prepared spare would. A child
that cannot (a failed run, ``reset()`` False, a run that left threads, or after
``_MAX_RUNS_PER_CHILD`` runs) exits as before. At most ``_max_idle`` children wait so; the
zygote dismisses the others. A signal for a run goes through the zygote (``signal`` above),
which knows which run each child holds, so a cancel that races with the end of its run
never reaches the next run of the same process.

Learning. An entry module may define ``learn(argv, cwd)``: the zygote calls it with each
request's ``argv[1:]`` and ``cwd`` once it has answered the request, so that the module can
load here what later runs of the same kind would load again (``cwltool_child`` parses the
workflow document); children forked afterwards, spares included, inherit it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn

from toolchest_wes.engines.base import EXIT_INTERNAL_ERROR
from toolchest_wes.engines.engine_record import write_exit, write_record

__all__ = ["main"]

# A child whose entry raised exits with this code.
CHILD_CRASH_EXIT = EXIT_INTERNAL_ERROR
_SHUTDOWN_POLL_S = 0.02
# Spares kept at most. Two, so that runs that follow each other closely find one ready: each
# spare then has two runs' time to prepare instead of one.
_MAX_SPARES = 2
# Runs one child takes at most before it exits rather than take another (reuse): a bound on
# whatever a run leaves behind in the interpreter that ``reset()`` does not put back.
_MAX_RUNS_PER_CHILD = 200
# A child's exit report: its pid and exit code, in one write shorter than PIPE_BUF, so that
# the reports of children ending at once never interleave.
_EXIT_REPORT = struct.Struct("=ii")


def _noop(signum: int, frame: FrameType | None) -> None:
    """Installed so the signal is delivered (and written to the wakeup fd), not ignored."""


def _main_then_exit(module: ModuleType, start: Callable[[], list[str]], report_fd: int) -> NoReturn:
    """In a forked child: ``start()`` for the command line, then the entry's ``main`` on it,
    and exit with its code, whatever happens; a crash prints its traceback to the run's
    stderr and exits ``CHILD_CRASH_EXIT``. The code goes to ``report_fd`` first."""
    code = CHILD_CRASH_EXIT
    try:
        code = _run_main(module, start)
    finally:
        _report_exit(report_fd, code)
        os._exit(code)


def _run_main(module: ModuleType, start: Callable[[], list[str]]) -> int:
    """``start()`` for the command line, then the entry's ``main`` on it; its exit code, with
    the standard streams flushed. A crash prints its traceback to the run's stderr and gives
    ``CHILD_CRASH_EXIT``."""
    code = CHILD_CRASH_EXIT
    try:
        argv = start()
        code = _exit_code(module.main(argv[1:]))
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        code = CHILD_CRASH_EXIT
    finally:
        # Flushing fails only for a run that broke its streams; the code stands.
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
    return code


def _report_exit(fd: int, code: int) -> None:
    """Tell the zygote this process's exit code (as the exit status will carry it)."""
    # A full pipe (a zygote that stopped reading) fails at once: the reap reports instead.
    with contextlib.suppress(OSError):
        os.write(fd, _EXIT_REPORT.pack(os.getpid(), code & 0xFF))


def _next_request(sock: socket.socket) -> tuple[dict[str, Any], int, int] | None:
    """In a spare, or a child back for another run: say it is ready, and wait for the
    request with its stdout and stderr; None once the zygote closes the socket."""
    try:
        sock.sendall(b"r")
        message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
    except OSError:
        return None  # the zygote is gone
    if not message or len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(message), fds[0], fds[1]


def _learn_from(module: ModuleType, args: list[str]) -> None:
    """Call the entry's ``learn`` on a run that this process has just run (argv, cwd)."""
    learn = getattr(module, "learn", None)
    if not callable(learn):
        return
    with contextlib.suppress(Exception):  # a cache that could not be filled is no error
        learn(args, os.getcwd())


def _release_streams() -> None:
    """Point standard output and error at /dev/null, away from the run that has ended."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _fit_for_another(module: ModuleType) -> bool:
    """Whether the entry put back what its run changed (``reset()``) and no thread of the
    run is left: a process that forks tools must stay single-threaded between runs."""
    try:
        fit = bool(module.reset())
    except BaseException:
        return False
    return fit and threading.active_count() == 1


def _exit_code(code: object) -> int:
    """The process exit code for ``main``'s return value or a ``SystemExit`` code."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    # What the interpreter does for sys.exit("message").
    print(code, file=sys.stderr)
    return 1


class _ForkServer:
    """The zygote's loop: forks a child per request and reports how each child ends."""

    def __init__(
        self,
        sock: socket.socket,
        modules: dict[str, ModuleType],
        buffered: bytes = b"",
        keeper: int | None = None,
        spare_nice: int | None = None,
        reuse: bool = False,
    ) -> None:
        self._sock = sock
        self._modules = modules
        self._buffer = buffered
        self._spare_entry = next(
            (name for name, m in modules.items() if callable(getattr(m, "prefault", None))), None
        )
        self._spare_nice = spare_nice
        # Oldest first, so that the one that had the longest to prepare goes first.
        self._spares: list[_Spare] = []
        self._cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        # The entries whose children may take another run (reuse), and how many such children
        # may wait for one: enough for every CPU to find one, twice over.
        self._reusable = (
            {name for name, m in modules.items() if callable(getattr(m, "reset", None))}
            if reuse
            else set()
        )
        self._max_idle = max(_MAX_SPARES, 2 * self._cpus)
        # Children running a run that may come back for another (reuse).
        self._hosts: dict[int, _Spare] = {}
        # The request each child took last, for signals meant for that run alone.
        self._runs: dict[int, Any] = {}
        self._children: set[int] = set()
        # Where each child's engine record is, to record its exit when it is reaped.
        self._records: dict[int, Path] = {}
        self._told_to_stop = False
        # Set once the zygote shuts down: what it reaps from then on, it killed.
        self._stopping = False
        # A pidfd of the keeper, opened now while it surely is the process we were told
        # about: a pid alone could name another process once the keeper is gone.
        self._keeper_fd = _open_pidfd(keeper)
        # The children that get SIGTERM and this long to end before the zygote SIGKILLs them.
        self._graceful: dict[int, float] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Every child inherits the write end (close-on-exec: its tools do not) for its exit
        # report; the children that reported and are not reaped yet.
        self._report_r, self._report_w = os.pipe()
        os.set_blocking(self._report_r, False)
        os.set_blocking(self._report_w, False)
        self._reports = b""
        self._reported: set[int] = set()

    def serve(self) -> int:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _noop)
        signal.signal(signal.SIGTERM, _noop)
        self._handle_lines()
        self._keep_spares()
        stop = False
        sock_fd = self._sock.fileno()
        while not stop:
            preparing = {spare.sock.fileno(): spare for spare in self._spares if not spare.ready}
            hosts = {host.sock.fileno(): pid for pid, host in self._hosts.items()}
            readable, _, _ = select.select(
                [sock_fd, self._wake_r, self._report_r, *preparing, *hosts], [], []
            )
            if self._report_r in readable:
                self._read_reports()
            for fd, pid in hosts.items():
                if fd in readable and self._hosts.get(pid) is not None:
                    self._host_back(pid)
            if self._wake_r in readable:
                signals = self._drain_wakeup()
                self._reap()
                stop = signal.SIGTERM in signals
            for fd, spare in preparing.items():
                if fd in readable and spare in self._spares:
                    self._spare_ready(spare)
            if sock_fd in readable and not stop:
                stop = not self._receive()
                if stop and not self._told_to_stop and self._keeper_fd is not None:
                    # Spares are no runs: nobody will adopt them.
                    self._drop_spares()
                    self._linger(self._keeper_fd)
            if not stop:
                self._keep_spares()
        self._shutdown()
        return 0

    def _linger(self, keeper_fd: int) -> None:
        """Keep the children of a parent that died until they end, the keeper exits or
        SIGTERM arrives; their exits go to their records, as nobody reads the socket."""
        self._reap()
        self._dismiss_finished_hosts()
        while self._children:
            readable, _, _ = select.select([self._wake_r, keeper_fd, self._report_r], [], [])
            if self._report_r in readable:
                self._read_reports()
                # Nothing will come for them: each exits once its socket is closed.
                self._dismiss_finished_hosts()
            if self._wake_r in readable:
                signals = self._drain_wakeup()
                self._reap()
                if signal.SIGTERM in signals:
                    return
            if keeper_fd in readable:
                return

    def _drain_wakeup(self) -> set[int]:
        seen: set[int] = set()
        while True:
            try:
                data = os.read(self._wake_r, 512)
            except BlockingIOError:
                return seen
            if not data:
                return seen
            seen.update(data)

    def _receive(self) -> bool:
        """Handle what the parent sent; False at end of file."""
        try:
            data = self._sock.recv(65536)
        except OSError:
            return False
        if not data:
            return False
        self._buffer += data
        self._handle_lines()
        return True

    def _handle_lines(self) -> None:
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if isinstance(request, dict):
                self._handle(request)

    def send(self, message: dict[str, Any]) -> None:
        # If the parent is gone, the next recv sees end of file and shuts down.
        with contextlib.suppress(OSError):
            self._sock.sendall(json.dumps(message).encode() + b"\n")

    def _read_reports(self) -> None:
        """Report the children that wrote their exit code, before they are reaped."""
        while True:
            try:
                data = os.read(self._report_r, 4096)
            except BlockingIOError:
                return
            if not data:
                return
            self._reports += data
            whole = len(self._reports) - len(self._reports) % _EXIT_REPORT.size
            for pid, code in _EXIT_REPORT.iter_unpack(self._reports[:whole]):
                # Not a child: a spare whose prefault failed, which has nothing to report.
                if pid in self._children and pid not in self._reported:
                    self._reported.add(pid)
                    self._tell_exit(pid, code)
            self._reports = self._reports[whole:]

    def _reap(self) -> None:
        # Reports first: a child reaped before its report was read would be reported twice.
        self._read_reports()
        while self._children or self._spares:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._report(pid, status)

    def _report(self, pid: int, status: int) -> None:
        self._runs.pop(pid, None)
        self._dismiss(pid)
        for spare in self._spares:
            if spare.pid == pid:
                # Died before any request reached it: nothing to report, and, for a spare
                # that was preparing, no more spares.
                self._drop_spare(spare, failed=not spare.reused, reaped=True)
                return
        if pid in self._children:
            self._children.discard(pid)
            if pid in self._reported:
                self._reported.discard(pid)
            else:
                self._tell_exit(pid, os.waitstatus_to_exitcode(status))

    def _tell_exit(self, pid: int, code: int) -> None:
        """Record and send child ``pid``'s exit code."""
        self._graceful.pop(pid, None)
        record = self._records.pop(pid, None)
        if record is not None:
            try:
                write_exit(record, code, stopped=self._stopping)
            except OSError as exc:
                print(f"zygote: cannot record the exit of {pid}: {exc}", file=sys.stderr)
        self.send({"pid": pid, "status": code})

    def _handle(self, request: dict[str, Any]) -> None:
        if request.get("shutdown"):
            self._told_to_stop = True
            return
        if "signal" in request:
            self._signal_run(request)
            return
        req = request.get("req")
        try:
            pid = self._fork(request)
        except OSError as exc:
            self.send({"req": req, "error": str(exc), "errno": exc.errno})
        except Exception as exc:
            self.send({"req": req, "error": f"{type(exc).__name__}: {exc}"})
        else:
            self._children.add(pid)
            self._runs[pid] = req
            if request.get("record"):
                record = Path(str(request["record"]))
                try:
                    write_record(record, pid, reaper=os.getpid())
                    self._records[pid] = record
                except OSError as exc:
                    # The run goes on; only a later worker could not adopt it.
                    print(f"zygote: cannot write the record of {pid}: {exc}", file=sys.stderr)
            grace = getattr(self._modules.get(str(request.get("entry"))), "SHUTDOWN_GRACE_S", 0)
            if grace:
                self._graceful[pid] = float(grace)
            self.send({"req": req, "pid": pid})
            self._learn(request)

    def _learn(self, request: dict[str, Any]) -> None:
        """Let the entry module load, here, what later runs like this one will load again."""
        learn = getattr(self._modules.get(str(request.get("entry"))), "learn", None)
        if not callable(learn):
            return
        try:
            learn(list(request["argv"])[1:], str(request["cwd"]))
        except Exception:  # a cache that could not be filled is no error
            print(f"zygote: learn failed: {traceback.format_exc(limit=-3)}", file=sys.stderr)

    def _fork(self, request: dict[str, Any]) -> int:
        module = self._modules.get(str(request["entry"]))
        if module is None:
            raise OSError(errno.ENOENT, f"entry {request['entry']!r} was not loaded")
        cwd = str(request["cwd"])
        if not os.path.isdir(cwd):
            raise OSError(errno.ENOENT, f"no such directory: {cwd!r}")
        # As SubprocessLauncher opens them: truncated for a fresh start, appending so that
        # stdout and stderr may share a file. Opened here rather than in the child so that an
        # unusable path is an error of the request, as it is for subprocess.Popen.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        out_fd = os.open(str(request["stdout"]), flags, 0o666)
        try:
            err_fd = os.open(str(request["stderr"]), flags, 0o666)
            try:
                pid = self._hand_to_spare(request, out_fd, err_fd)
                if pid is not None:
                    return pid
                return self._fork_child(module, request, out_fd, err_fd)
            finally:
                os.close(err_fd)
        finally:
            os.close(out_fd)

    def _hand_to_spare(self, request: dict[str, Any], out_fd: int, err_fd: int) -> int | None:
        """The ready spare's pid once it has ``request``; None to fork the request instead."""
        entry = request["entry"]
        spare = next((s for s in self._spares if s.ready and s.entry == entry), None)
        if spare is None:
            return None
        try:
            socket.send_fds(spare.sock, [json.dumps(request).encode()], [out_fd, err_fd])
        except OSError:
            # Gone since it said it was ready, or a request too large for one packet: the
            # request is forked as usual, and the next spare tried with the next request.
            self._drop_spare(spare, failed=False)
            return None
        self._spares.remove(spare)
        if spare.entry in self._reusable:
            spare.ready = False
            self._hosts[spare.pid] = spare
        else:
            spare.sock.close()
        return spare.pid

    def _keep_spares(self) -> None:
        """Fork spares up to ``_MAX_SPARES`` while a CPU is likely idle."""
        while (
            self._spare_entry is not None
            and self._spare_nice is not None
            and sum(spare.entry == self._spare_entry for spare in self._spares) < _MAX_SPARES
            and len(self._children) < self._cpus
        ):
            self._fork_spare(self._modules[self._spare_entry], self._spare_nice)

    def _fork_spare(self, module: ModuleType, nice: int) -> None:
        assert self._spare_entry is not None
        # Packets, so that the request arrives whole in one recvmsg with its descriptors.
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            self._spare_entry = None
            return
        if pid == 0:
            ours.close()
            self._run_spare(module, theirs, nice)
        theirs.close()
        self._spares.append(_Spare(pid, ours, self._spare_entry))

    def _spare_ready(self, spare: _Spare) -> None:
        try:
            data = spare.sock.recv(1)
        except OSError:
            data = b""
        if data:
            spare.ready = True
        else:
            self._drop_spare(spare, failed=True)

    def _signal_run(self, request: dict[str, Any]) -> None:
        """Signal the process group of the run that request ``req`` started, unless its
        process has taken another run since, or waits for one."""
        try:
            pid, sig = int(request["pid"]), int(request["signal"])
        except (KeyError, TypeError, ValueError):
            return
        if pid in self._runs and (self._runs[pid] != request.get("req") or pid in self._reported):
            return  # that run has ended; the process lives on, for another
        if any(spare.pid == pid for spare in self._spares):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def _host_back(self, pid: int) -> None:
        """A reusable child said something after its run: ready for another, or gone."""
        host = self._hosts[pid]
        try:
            data = host.sock.recv(1)
        except OSError:
            data = b""
        # It wrote its exit report before it said so.
        self._read_reports()
        ready = sum(spare.ready for spare in self._spares)
        if not data or pid not in self._reported or self._told_to_stop or ready >= self._max_idle:
            self._dismiss(pid)
            return
        # From now on a spare like any other: no run of ours, nothing to report.
        del self._hosts[pid]
        self._children.discard(pid)
        self._reported.discard(pid)
        self._runs.pop(pid, None)
        host.ready = host.reused = True
        self._spares.append(host)

    def _dismiss(self, pid: int) -> None:
        """Tell a reusable child that no run will come: it exits, and is reaped quietly."""
        host = self._hosts.pop(pid, None)
        if host is not None:
            host.sock.close()

    def _dismiss_finished_hosts(self) -> None:
        for pid in [pid for pid in self._hosts if pid in self._reported]:
            self._dismiss(pid)

    def _drop_spares(self) -> None:
        """Kill and reap every spare, and make no more."""
        for spare in list(self._spares):
            self._drop_spare(spare, failed=True)

    def _drop_spare(self, spare: _Spare, *, failed: bool, reaped: bool = False) -> None:
        """Forget ``spare`` and, unless ``reaped``, kill and reap it; ``failed`` turns spares
        off, so that a prefault that keeps failing does not cost a fork per request."""
        self._spares.remove(spare)
        if failed:
            self._spare_entry = None
        spare.sock.close()
        if reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(spare.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spare.pid, 0)

    def _run_spare(self, module: ModuleType, sock: socket.socket, nice: int) -> NoReturn:
        """The spare: prefault, say so, wait for a request and run it."""
        reusable = self._spare_entry in self._reusable

        def start() -> list[str]:
            self._detach()
            module.prefault(nice)
            handed = _next_request(sock)
            if handed is None:
                os._exit(0)  # the zygote went away or gave up on this spare
            if not reusable:
                sock.close()
            return self._become(*handed)

        if reusable:
            self._run_requests(module, sock, start)
        _main_then_exit(module, start, self._report_w)

    def _run_requests(
        self, module: ModuleType, sock: socket.socket, start: Callable[[], list[str]]
    ) -> NoReturn:
        """In a child of a reusable entry: run ``start()``'s request, then, while the process
        is fit for it, each request that the zygote hands over on ``sock``; exit after the
        last. Each exit code goes to the zygote as soon as its run has ended."""
        environment = dict(os.environ)
        runs = 0
        while True:
            code = CHILD_CRASH_EXIT
            try:
                code = _run_main(module, start)
            finally:
                _report_exit(self._report_w, code)
            runs += 1
            if code != 0 or runs >= _MAX_RUNS_PER_CHILD:
                os._exit(code)
            # The run's logs are complete: nothing written from here on belongs in them.
            _release_streams()
            if not _fit_for_another(module):
                os._exit(code)
            # What the zygote learns from the requests it answers after this process was
            # forked, the process learns from its own.
            _learn_from(module, sys.argv[1:])
            # What the process started with; the next request's environment goes on top.
            os.environ.clear()
            os.environ.update(environment)
            handed = _next_request(sock)
            if handed is None:
                os._exit(0)  # dismissed, or the zygote is gone
            start = functools.partial(self._become, *handed)

    def _fork_child(
        self, module: ModuleType, request: dict[str, Any], out_fd: int, err_fd: int
    ) -> int:
        # Anything still buffered would otherwise be written twice, once by each process.
        sys.stdout.flush()
        sys.stderr.flush()
        entry = str(request["entry"])
        # The socket on which a reusable child says it can take another run, and gets it.
        pair = (
            socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            if entry in self._reusable
            else None
        )
        sync_r, sync_w = os.pipe()
        try:
            pid = os.fork()
        except BaseException:
            os.close(sync_r)
            os.close(sync_w)
            for end in pair or ():
                end.close()
            raise
        if pid == 0:
            os.close(sync_r)
            if pair is not None:
                pair[0].close()
            self._run_child(module, request, out_fd, err_fd, sync_w, pair and pair[1])
        os.close(sync_w)
        if pair is not None:
            pair[1].close()
            self._hosts[pid] = _Spare(pid, pair[0], entry)
        # The child closes its end once it leads its own group. Waiting for that means a
        # kill_tree right after start() cannot miss the group.
        os.read(sync_r, 1)
        os.close(sync_r)
        return pid

    def _run_child(
        self,
        module: ModuleType,
        request: dict[str, Any],
        out_fd: int,
        err_fd: int,
        sync_w: int,
        sock: socket.socket | None,
    ) -> NoReturn:
        def start() -> list[str]:
            self._detach()
            os.close(sync_w)
            return self._become(request, out_fd, err_fd)

        if sock is not None:
            self._run_requests(module, sock, start)
        _main_then_exit(module, start, self._report_w)

    def _detach(self) -> None:
        """In a new child: the signal handling of a fresh interpreter, none of the zygote's
        descriptors, and a session and process group of its own."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # What a fresh interpreter has: KeyboardInterrupt on SIGINT, SIGPIPE ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        os.close(self._report_r)
        if self._keeper_fd is not None:
            os.close(self._keeper_fd)
        for spare in (*self._spares, *self._hosts.values()):
            spare.sock.close()
        os.setsid()

    @staticmethod
    def _become(request: dict[str, Any], out_fd: int, err_fd: int) -> list[str]:
        """Take the request's standard streams, directory, environment and argv; the argv."""
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in {devnull, out_fd, err_fd} - {0, 1, 2}:
            os.close(fd)
        os.chdir(str(request["cwd"]))
        os.environ.update({str(k): str(v) for k, v in dict(request.get("env", {})).items()})
        argv = [str(arg) for arg in request["argv"]]
        sys.argv = list(argv)
        return argv

    def _shutdown(self) -> None:
        # Those that ended by themselves are not recorded as stopped.
        self._read_reports()
        self._stopping = True
        self._drop_spares()
        if self._graceful:
            deadline = time.monotonic() + max(self._graceful.values())
            for pid in self._graceful:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            while self._graceful and time.monotonic() < deadline:
                time.sleep(_SHUTDOWN_POLL_S)
                self._reap()
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for pid in list(self._children):
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                self._children.discard(pid)
                continue
            self._report(pid, status)


class _Spare:
    """A child forked ahead of a request, or one that came back for another (see the module
    docstring), with our end of its socket."""

    def __init__(self, pid: int, sock: socket.socket, entry: str) -> None:
        self.pid = pid
        self.sock = sock
        #: The entry module whose requests it takes.
        self.entry = entry
        self.ready = False
        #: It has run a request before: its death turns no spares off.
        self.reused = False


def _open_pidfd(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        # No pidfd (before Linux 5.3), or the keeper is gone already: shut down as without.
        return None


def _load(entries: list[str]) -> tuple[dict[str, ModuleType], dict[str, str], list[str]]:
    modules: dict[str, ModuleType] = {}
    failed: dict[str, str] = {}
    warnings: list[str] = []
    for name in entries:
        try:
            module = importlib.import_module(name)
        except Exception:
            failed[name] = traceback.format_exc(limit=-3)
            continue
        if not callable(getattr(module, "main", None)):
            failed[name] = "the module has no main()"
            continue
        modules[name] = module
        warm = getattr(module, "warm", None)
        if callable(warm):
            try:
                warm()
            except Exception:
                # A failed warm-up costs speed, not correctness: children redo the work.
                warnings.append(f"{name}.warm() failed: {traceback.format_exc(limit=-3)}")
    if threading.active_count() > 1:
        warnings.append(
            "threads left after warm-up: "
            + ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        )
    return modules, failed, warnings


def _read_line(sock: socket.socket) -> tuple[bytes, bytes]:
    """The first line from ``sock`` (empty at end of file) and whatever followed it."""
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


def main(argv: list[str]) -> int:
    """Serve fork requests on the socket whose fd is ``argv[0]``; returns the exit code."""
    # A Ctrl-C in the server's terminal is for the server, which then closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    hello, rest = _read_line(sock)
    if not hello:
        return 0
    first = json.loads(hello)
    entries = [str(name) for name in first["entries"]]
    keeper = first.get("keeper")
    spare_nice = first.get("spare_nice")
    modules, failed, warnings = _load(entries)
    server = _ForkServer(
        sock,
        modules,
        rest,
        None if keeper is None else int(keeper),
        spare_nice=None if spare_nice is None else int(spare_nice),
        reuse=bool(first.get("reuse")),
    )
    server.send({"ready": True, "entries": sorted(modules), "failed": failed, "warnings": warnings})
    return server.serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
