"""Signals that stop a program as KeyboardInterrupt, never lost.

Python runs a signal handler between two bytecodes of the main thread,
whatever runs there, and that includes finalizers: an object's `__del__` or
a weakref callback, run when the garbage collector frees something (such as
the asyncio event loop pyroute2 makes for every IPRoute). An exception
raised inside a finalizer is printed ("Exception ignored in ...") and
dropped, so the program runs on as if no signal had come: measured, 2 of
150 SIGTERMs to a loop asking pyroute2 for routes; a loader the suite
stopped ran on until it was killed.

So the handler raises `Interrupted`, and an `Interrupted` that ends up
unraisable sends its signal again shortly after, from a helper thread, until
one lands in ordinary code; `deferred()` holds signals back around library
calls that an exception in the middle would leave in a mess.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

REDELIVER_AFTER_S = 0.01  # long enough for the finalizer to have returned


class Interrupted(KeyboardInterrupt):
    """KeyboardInterrupt raised by a signal (`signum`)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_interrupted(signum, _frame):
    raise Interrupted(signum)


def _redeliver_lost(unraisable) -> None:
    if isinstance(unraisable.exc_value, Interrupted):
        timer = threading.Timer(REDELIVER_AFTER_S, os.kill, (os.getpid(), unraisable.exc_value.signum))
        timer.daemon = True
        timer.start()
        return
    _previous_hook(unraisable)


_previous_hook = None


def interrupt_on(*signals: signal.Signals, replace_only_defaults: bool = False) -> None:
    """In the main thread, make each of `signals` raise `Interrupted` (a
    KeyboardInterrupt, so `finally` blocks run), never lost in a finalizer.
    `replace_only_defaults`: leave a signal alone whose handler someone
    else installed (pytest's, a test's)."""
    global _previous_hook
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in signals:
        current = signal.getsignal(sig)
        if replace_only_defaults and current not in (signal.SIG_DFL, signal.default_int_handler, None):
            continue
        signal.signal(sig, _raise_interrupted)
    if _previous_hook is None:
        _previous_hook, sys.unraisablehook = sys.unraisablehook, _redeliver_lost


@contextlib.contextmanager
def deferred(*signals: signal.Signals) -> Iterator[None]:
    """Hold `signals` back inside the block; one that came meanwhile is
    handled right after it. For library calls an exception in the middle
    leaves in a mess (pyroute2: coroutines never awaited, "Event loop is
    closed" tracebacks on the way out)."""
    signals = signals or (signal.SIGTERM, signal.SIGINT)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
