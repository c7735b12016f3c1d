"""LocalTaskRunner: a pool of threads in the server process (embedded mode)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["LocalTaskRunner"]

logger = logging.getLogger(__name__)

_STOP = object()


class LocalTaskRunner:
    """Runs ``execute(run_id)`` on a fixed pool of threads, first come first served.

    A run id that the pool holds already (waiting, or executing) is not queued again: the
    processes of a server may announce one run more than once (``runner.shared_pool``).

    Threads are enough because the engine itself is a separate process and cancel is
    cooperative (the executor watches the store). They are daemon threads on purpose: a
    server that stops must not wait for workflows to finish, and runs it leaves behind are
    ended by the reconcile step at the next start.
    """

    def __init__(self, execute: Callable[[str], None], *, workers: int) -> None:
        self._execute = execute
        self._workers = workers
        self._queue: queue.Queue[object] = queue.Queue()
        self._cancelled: set[str] = set()
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        with self._lock:
            if self._threads or self._closed:
                return
            for i in range(self._workers):
                thread = threading.Thread(
                    target=self._work, name=f"toolchest-wes-run-{i}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def submit(self, run_id: str) -> None:
        """Queue the run unless the pool holds it already; starts the pool on first use."""
        if self._closed:
            raise RuntimeError("runner is closed")
        self.start()
        with self._lock:
            if run_id in self._held:
                return
            self._held.add(run_id)
        self._queue.put(run_id)

    def queue_length(self) -> int:
        """Runs waiting for a free thread (approximate, as ``Queue.qsize`` is).

        Runs cancelled while waiting count until a thread takes and skips them.
        """
        return self._queue.qsize()

    def cancel(self, run_id: str) -> None:
        """Skip the run if it is still waiting in the queue."""
        with self._lock:
            self._cancelled.add(run_id)

    def close(self) -> None:
        """Stop the threads once the runs they are executing return; start no other run.

        Runs still waiting are dropped: they stay QUEUED in the store, and the next server
        start queues them again. Executing them now would race the shutdown of the engine
        launcher and end them as system errors.
        """
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        for _ in threads:
            self._queue.put(_STOP)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._closed:
                return
            run_id = str(item)
            with self._lock:
                skipped = run_id in self._cancelled
                self._cancelled.discard(run_id)
            try:
                if not skipped:
                    self._execute(run_id)
            except Exception:
                # execute_run records its own failures in the store; anything reaching here
                # is a bug, and the thread must survive it to serve the next runs.
                logger.exception("unhandled error executing run_id=%s", run_id)
            finally:
                with self._lock:
                    self._held.discard(run_id)
