"""Keep the Celery worker running: ``toolchest-wes worker`` restarts it when it dies unasked.

The command runs Celery as its child instead of replacing itself with it, because a Celery
worker can end on an error it does not recover from while the broker is away (the consumer's
cleanup of a lost Redis connection, see ``toolchest_wes.worker.kombu_transport``; or any
future one). A worker that ends leaves its queue unconsumed until someone restarts it, so the
supervisor does: after a crash (any exit but a clean one, or death by a signal it did not
forward) it starts the worker again, waiting 1 s, then 2, 4, ... up to 30 s between attempts,
and from 1 s again once a worker has run for a minute. A run that was executing when its
worker died is taken care of by its lease (see the reconcile loop).

SIGTERM, SIGINT and SIGQUIT are forwarded (SIGINT as SIGTERM, Celery's warm shutdown, since
a terminal sends SIGINT to the child as well, and two SIGINTs are Celery's cold shutdown);
then the supervisor exits with the worker's status and restarts nothing. The child shares
the supervisor's process group, so signalling the group (``docker stop``, ``kill -- -PID``)
reaches both, and on Linux it gets SIGTERM if the supervisor itself is killed.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

_FORWARDED = {
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGINT: signal.SIGTERM,
    signal.SIGQUIT: signal.SIGQUIT,
}
_PR_SET_PDEATHSIG = 1
_TICK_S = 0.2


class Supervisor:
    """Runs ``argv`` and starts it again, with backoff, each time it crashes.

    Args:
        argv: The worker's command line.
        env: Its environment.
        min_backoff_s: The first wait before a restart.
        max_backoff_s: The longest wait before a restart.
        stable_after_s: A worker that ran this long resets the wait to ``min_backoff_s``.
        popen: Starts the process (tests pass a fake).
        clock: Monotonic seconds.
        sleep: Sleeps; interrupted early by a stop signal.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        stable_after_s: float = 60.0,
        popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s
        self._popen = popen
        self._clock = clock
        self._sleep = sleep
        self._child: subprocess.Popen[bytes] | None = None
        self._stopping = False
        #: How many times the worker was started again after a crash.
        self.restarts = 0

    def run(self) -> int:
        """Supervise until the worker exits cleanly or is stopped; returns its exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        try:
            return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop supervising: pass ``sig`` (mapped as the module docstring says) to the worker."""
        self._stopping = True
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(_FORWARDED.get(signal.Signals(sig), signal.SIGTERM))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop(signum)

    def _loop(self) -> int:
        backoff = self.min_backoff_s
        while True:
            started = self._clock()
            self._child = self._popen(self.argv, env=self.env, preexec_fn=_die_with_parent)
            code = self._child.wait()
            if self._stopping or code == 0:
                return code if code >= 0 else 128 - code
            if self._clock() - started >= self.stable_after_s:
                backoff = self.min_backoff_s
            logger.error(
                "the worker exited unasked (%s); starting it again in %.0f s",
                _describe(code),
                backoff,
            )
            deadline = self._clock() + backoff
            while not self._stopping and self._clock() < deadline:
                self._sleep(min(_TICK_S, deadline - self._clock()))
            if self._stopping:
                return code if code >= 0 else 128 - code
            backoff = min(backoff * 2, self.max_backoff_s)
            self.restarts += 1


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the supervisor dies (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
