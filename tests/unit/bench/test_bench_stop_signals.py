"""bench/_common.py's ``stop_on_signals``: a stop signal unwinds the benchmark, also when it
arrives while a finalizer or a weak reference's callback runs, where Python drops
exceptions."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import weakref
from collections.abc import Callable, Iterator

import pytest

from tests.processes import BENCH

sys.path.insert(0, str(BENCH))
import _common


@pytest.fixture
def stop_handlers() -> Iterator[None]:
    """``stop_on_signals()`` for the test; the handlers it replaces are put back after."""
    signals = (*_common.STOP_SIGNALS, signal.SIGALRM)
    saved = {sig: signal.getsignal(sig) for sig in signals}
    hook = sys.unraisablehook
    try:
        _common.stop_on_signals()
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        sys.unraisablehook = hook


def _signal_and_linger() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    # The handler runs here, where an exception would be dropped.
    time.sleep(0.05)


class _SignalsWhenFinalized:
    def __del__(self) -> None:
        _signal_and_linger()


class _Referent:
    pass


def _signalled_then_sleeping() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)


def _finalized_then_sleeping() -> None:
    obj = _SignalsWhenFinalized()
    del obj
    gc.collect()
    # Without a second try after the finalizer, the stop was lost and this slept to its end.
    time.sleep(5)


def _weakly_referenced_then_sleeping() -> None:
    obj = _Referent()
    ref = weakref.ref(obj, lambda _ref: _signal_and_linger())
    del obj
    assert ref() is None
    time.sleep(5)


@pytest.mark.usefixtures("stop_handlers")
def test_a_stop_signal_raises_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt):
        _signalled_then_sleeping()


@pytest.mark.usefixtures("stop_handlers")
@pytest.mark.parametrize(
    "where", [_finalized_then_sleeping, _weakly_referenced_then_sleeping], ids=["del", "weakref"]
)
def test_a_stop_that_arrives_where_exceptions_are_dropped_is_raised_after(
    where: Callable[[], None],
) -> None:
    with pytest.raises(KeyboardInterrupt):
        where()
    # Later stop signals are ignored, as before: the cleanup is not cut short.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
