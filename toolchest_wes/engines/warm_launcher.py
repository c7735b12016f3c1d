"""``WarmLauncher``: engine processes forked from a warm zygote.

The zygote (``toolchest_wes.engines.zygote``) is a helper interpreter that imported the entry
modules and warmed them once, and that forks a child per run. A fresh cwltool process spends
about 2 s importing and loading schemas before it runs anything; a forked child skips all of
that. A reader thread per zygote turns its socket messages into fork replies and exit codes.

Starting the zygote and signalling process groups go through ``toolchest_wes.engines.process``,
which stays the one module that touches ``subprocess`` and ``os.killpg``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolchest_wes.engines.base import Launcher, LaunchSpec, ProcessHandle
from toolchest_wes.engines.process import (
    ProcessLostError,
    SubprocessLauncher,
    kill_group,
    signal_group,
    spawn_python,
)

__all__ = ["WarmLauncher"]

logger = logging.getLogger(__name__)

_ZYGOTE_MODULE = "toolchest_wes.engines.zygote"

# Fork requests are answered right after the fork, so a zygote silent for this long while a
# request waits is stuck. Silent, not slow: a burst of requests is answered one fork at a time,
# and the last of a thousand may wait longer than this behind the others.
_REQUEST_TIMEOUT_S = 30.0
# A dead zygote is replaced at most this often, so a zygote that keeps crashing costs one
# interpreter start per interval instead of one per run.
_RESTART_INTERVAL_S = 30.0
# How long close() lets the zygote kill and reap its children before it is killed itself.
_CLOSE_TIMEOUT_S = 10.0


class _WarmHandle:
    """A run in a process forked by the zygote; its exit arrives through the zygote's socket.

    ``signal_run(pid, req, sig)`` delivers a signal to the run's process group through the
    zygote, which drops it once the process has gone on to another run (reuse)."""

    def __init__(
        self, pid: int, req: int, signal_run: Callable[[int, int, signal.Signals], None]
    ) -> None:
        self._pid = pid
        self._req = req
        self._signal_run = signal_run
        self._done = threading.Event()
        self._code: int | None = None
        self._lost = False

    @property
    def pid(self) -> int:
        return self._pid

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._done.wait(timeout):
            return None
        if self._lost:
            raise ProcessLostError(f"the zygote died before process {self._pid} was reported")
        return self._code

    def kill_tree(self, grace_s: float) -> None:
        kill_group(self._pid, grace_s, self.wait, send=self._signal)

    def _signal(self, sig: signal.Signals) -> None:
        self._signal_run(self._pid, self._req, sig)

    def _finish(self, code: int) -> None:
        self._code = code
        self._done.set()

    def _lose(self) -> None:
        self._lost = True
        self._done.set()

    def __repr__(self) -> str:
        return f"<_WarmHandle pid={self._pid}>"


class _ZygoteLostError(Exception):
    """The zygote died, or stopped answering, before it answered a request."""


@dataclass
class _Request:
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    handle: _WarmHandle | None = None


class _ZygoteClient:
    """The launcher's side of one zygote process: its socket and the thread reading it."""

    def __init__(
        self,
        entries: Sequence[str],
        keeper: int | None = None,
        spare_nice: int | None = None,
        reuse: bool = False,
    ) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Its own session keeps a Ctrl-C meant for the server away from the zygote: it
            # must outlive the server's last request so it can kill its children on EOF.
            self._proc = spawn_python(
                _ZYGOTE_MODULE, [str(child_sock.fileno())], pass_fds=[child_sock.fileno()]
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self.entries: frozenset[str] = frozenset()
        self.dead = False
        self._sock = parent_sock
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._closing = False
        self._req_ids = itertools.count(1)
        #: When the zygote last sent anything (monotonic clock).
        self._heard_at = time.monotonic()
        self._requests: dict[int, _Request] = {}
        self._children: dict[int, _WarmHandle] = {}
        self._reader = threading.Thread(
            target=self._read_loop, name=f"zygote-reader-{self._proc.pid}", daemon=True
        )
        self._reader.start()
        # If this fails, the reader sees the same end of file and marks the zygote dead.
        with contextlib.suppress(OSError):
            hello: dict[str, Any] = {"entries": list(entries), "keeper": keeper}
            if spare_nice is not None:
                hello["spare_nice"] = spare_nice
            if reuse:
                hello["reuse"] = True
            self._send(hello)
        logger.info("zygote starting pid=%s entries=%s", self._proc.pid, list(entries))

    @property
    def pid(self) -> int:
        return self._proc.pid

    def wait_ready(self, timeout: float | None) -> bool:
        return self._ready.wait(timeout) and not self.dead

    def spawn(self, spec: LaunchSpec) -> _WarmHandle:
        """Have the zygote fork ``spec``. Raises ``OSError`` or ``_ZygoteLostError``."""
        request = _Request()
        with self._lock:
            if self.dead:
                raise _ZygoteLostError("the zygote is gone")
            req = next(self._req_ids)
            self._requests[req] = request
        message = {
            "req": req,
            "entry": spec.entry,
            "argv": list(spec.argv),
            "cwd": str(spec.cwd),
            "stdout": str(spec.stdout),
            "stderr": str(spec.stderr),
            "env": dict(spec.env),
            "record": None if spec.record is None else str(spec.record),
        }
        try:
            self._send(message)
        except OSError as exc:
            with self._lock:
                self._requests.pop(req, None)
            raise _ZygoteLostError(f"cannot reach the zygote: {exc}") from exc
        if not self._wait_answer(request, time.monotonic()):
            # Killing it rules out a late fork of a run that the caller starts elsewhere.
            logger.error("zygote did not answer a fork request pid=%s; killing it", self.pid)
            self._proc.kill()
            raise _ZygoteLostError("the zygote did not answer")
        reply = request.reply
        if reply is None:
            raise _ZygoteLostError("the zygote died before answering")
        if request.handle is None:
            raise OSError(reply.get("errno") or errno.EIO, str(reply.get("error")))
        return request.handle

    def _wait_answer(self, request: _Request, sent_at: float) -> bool:
        """Wait for the answer while the zygote keeps answering; ``False`` once it falls
        silent for ``_REQUEST_TIMEOUT_S`` (since the request was sent, or since its last
        message, whichever is later)."""
        while True:
            silent_since = max(sent_at, self._heard_at)
            remaining = silent_since + _REQUEST_TIMEOUT_S - time.monotonic()
            if remaining <= 0:
                return request.done.is_set()
            if request.done.wait(remaining):
                return True

    def signal_run(self, pid: int, req: int, sig: signal.Signals) -> None:
        """Signal the process group of the run that request ``req`` started in ``pid``."""
        if not self.dead:
            try:
                self._send({"signal": int(sig), "pid": pid, "req": req})
                return
            except OSError:
                pass
        # No zygote to ask: its children went with it, and their groups may hold tools.
        signal_group(pid, sig)

    def close(self) -> None:
        """Tell the zygote to kill its children and exit, and wait until it did."""
        self._closing = True
        # Said first, so that the end of file reads as a shutdown, not as this process's
        # death (after which a zygote with a keeper keeps its children for the next one).
        # Half-closing lets the zygote still report how its children ended.
        with contextlib.suppress(OSError):
            self._send({"shutdown": True})
            self._sock.shutdown(socket.SHUT_WR)
        if self._proc.wait(_CLOSE_TIMEOUT_S) is None:
            logger.warning("zygote did not exit pid=%s; killing it", self.pid)
            self._proc.kill()
            self._proc.wait()
        self._reader.join(_CLOSE_TIMEOUT_S)
        self._sock.close()

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self._send_lock:
            self._sock.sendall(data)

    def _read_loop(self) -> None:
        try:
            with self._sock.makefile("rb") as stream:
                for line in stream:
                    self._dispatch(line)
        except OSError as exc:
            logger.debug("zygote socket error pid=%s error=%s", self.pid, exc)
        except Exception:
            logger.exception("zygote reader failed pid=%s", self.pid)
        finally:
            self._on_eof()

    def _dispatch(self, line: bytes) -> None:
        self._heard_at = time.monotonic()
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            logger.warning("zygote sent an unreadable message pid=%s line=%r", self.pid, line)
            return
        if "req" in message:
            with self._lock:
                request = self._requests.pop(int(message["req"]), None)
                if request is not None and "pid" in message:
                    # Registered here, not by the caller of spawn(): the exit report may
                    # follow before that thread wakes up.
                    request.handle = _WarmHandle(
                        int(message["pid"]), int(message["req"]), self.signal_run
                    )
                    self._children[request.handle.pid] = request.handle
            if request is not None:
                request.reply = message
                request.done.set()
        elif "status" in message:
            with self._lock:
                handle = self._children.pop(int(message["pid"]), None)
            if handle is not None:
                handle._finish(int(message["status"]))
        elif "ready" in message:
            self.entries = frozenset(message.get("entries", ()))
            for entry, error in dict(message.get("failed", {})).items():
                logger.warning("zygote cannot run entry=%s error=%s", entry, error)
            for warning in message.get("warnings", ()):
                logger.warning("zygote warm-up pid=%s: %s", self.pid, warning)
            logger.info("zygote ready pid=%s entries=%s", self.pid, sorted(self.entries))
            self._ready.set()

    def _on_eof(self) -> None:
        with self._lock:
            self.dead = True
            requests = list(self._requests.values())
            self._requests.clear()
            orphans = list(self._children.values())
            self._children.clear()
        self._ready.set()
        for request in requests:
            request.done.set()
        for handle in orphans:
            # Nobody can report these processes' exit any more; killing them makes their
            # fate certain instead of letting an untracked run go on writing.
            signal_group(handle.pid, signal.SIGKILL)
        if self._closing:
            logger.info("zygote closed pid=%s", self.pid)
        else:
            # End of file comes a moment before the exit; wait for it to log the cause.
            code = self._proc.wait(_CLOSE_TIMEOUT_S)
            logger.warning(
                "zygote died pid=%s exit=%s lost_processes=%s",
                self.pid,
                code,
                [h.pid for h in orphans],
            )
        for handle in orphans:
            handle._lose()


class WarmLauncher:
    """Runs ``entries`` modules in children forked from a warm zygote.

    Specs for other entries, or for plain argv, go to ``fallback``. When the zygote cannot
    be started, is not ready in time or dies, ``start`` logs a warning and uses ``fallback``
    too, and a dead zygote is replaced on a later ``start``. The constructor does no I/O;
    call ``start_background`` at server startup so the first run finds the zygote warm.

    The zygote gets this process's environment as it is when the zygote starts, plus each
    spec's ``env``. Create the launcher in the process that uses it: a copy inherited
    through ``fork`` would share the zygote's socket.

    ``keeper``: the pid of a process (an embedded server's gunicorn arbiter) while which the
    zygote keeps its children if this process dies without closing the launcher, so that the
    process that replaces this one can adopt their runs; ``None``: the zygote kills them.

    ``spare_nice``: keep spare children ready for the entry module that defines
    ``prefault(nice)``, prepared at that niceness (see ``toolchest_wes.engines.zygote``);
    None for none.

    ``reuse``: a child of an entry module that defines ``reset()`` may take another run once
    its own has ended by itself (see ``toolchest_wes.engines.zygote``). Each handle then
    stands for one run rather than one process: its signals go through the zygote, which
    drops those meant for a run that has ended.
    """

    def __init__(
        self,
        entries: Sequence[str],
        *,
        fallback: Launcher | None = None,
        ready_timeout_s: float = 60.0,
        keeper: int | None = None,
        spare_nice: int | None = None,
        reuse: bool = False,
    ) -> None:
        self._entries = frozenset(entries)
        self._reuse = reuse
        self._keeper = keeper
        self._spare_nice = spare_nice
        self._owns_fallback = fallback is None
        self._fallback: Launcher = SubprocessLauncher() if fallback is None else fallback
        self._ready_timeout_s = ready_timeout_s
        self._lock = threading.Lock()
        self._zygote: _ZygoteClient | None = None
        self._last_spawn: float | None = None
        self._closed = False

    def start_background(self) -> None:
        """Start the zygote without waiting for it to warm up."""
        with self._lock:
            self._current_zygote()

    def start(self, spec: LaunchSpec) -> ProcessHandle:
        """Start ``spec``, forked from the zygote when its entry is one of ``entries``."""
        if self._closed:
            raise RuntimeError("launcher is closed")
        if spec.entry is None or spec.entry not in self._entries:
            return self._fallback.start(spec)
        zygote = self._ready_zygote()
        if zygote is not None and spec.entry in zygote.entries:
            try:
                return zygote.spawn(spec)
            except _ZygoteLostError as exc:
                logger.warning("zygote lost; running without it entry=%s error=%s", spec.entry, exc)
        return self._fallback.start(spec)

    def close(self) -> None:
        """Stop the zygote, which kills its running children first."""
        with self._lock:
            self._closed = True
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()
        if self._owns_fallback:
            self._fallback.close()

    @property
    def zygote_pid(self) -> int | None:
        """The pid of the current zygote process, if one was started."""
        zygote = self._zygote
        return None if zygote is None else zygote.pid

    def _ready_zygote(self) -> _ZygoteClient | None:
        with self._lock:
            zygote = self._current_zygote()
        if zygote is None:
            return None
        if not zygote.wait_ready(self._ready_timeout_s):
            logger.warning("zygote not ready pid=%s; running without it", zygote.pid)
            return None
        return zygote

    def _current_zygote(self) -> _ZygoteClient | None:
        """The zygote to use, started if needed; call with ``_lock`` held."""
        if self._closed:
            return None
        zygote = self._zygote
        if zygote is not None and not zygote.dead:
            return zygote
        now = time.monotonic()
        if self._last_spawn is not None and now - self._last_spawn < _RESTART_INTERVAL_S:
            return None
        self._last_spawn = now
        if zygote is not None:
            zygote.close()
        try:
            self._zygote = _ZygoteClient(
                sorted(self._entries), self._keeper, self._spare_nice, self._reuse
            )
        except OSError as exc:
            logger.warning("cannot start the zygote error=%s", exc)
            self._zygote = None
        return self._zygote
