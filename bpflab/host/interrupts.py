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

A command runs under `run_command()`: the first SIGINT or SIGTERM unwinds it
(its `finally` blocks remove what it made), further ones while it unwinds
are held (a second Ctrl-C must not cut the cleanup short), and it ends with
one line saying it was interrupted and what its cleanup removed (`tell()`),
and the exit status of a process killed by that signal, 128 + its number
(130, 143): never the status of a finding. A signal ignored when the
command started (as shells do for background jobs) stays ignored.
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


class _Unwinding:
    """The state of the command run_command() runs."""

    commanding = False          # run_command() is running a command
    prog = ""                   # its name, for what it says
    signum: int | None = None   # the signal it is unwinding from
    said: list[str] = []        # what its cleanup said meanwhile, for the one line
    watchdog: threading.Timer | None = None


_state = _Unwinding()


def _raise_interrupted(signum, _frame):
    if _state.commanding:
        if _state.signum is not None:
            return  # already stopping: the cleanup under way finishes
        _state.signum = signum
        _start_watchdog(signum)
    raise Interrupted(signum)


def unwinding() -> bool:
    """Whether the command is stopping for a signal."""
    return _state.signum is not None


def tell(prog: str, text: str) -> None:
    """`prog: text` on stderr (a command's word about itself: "detached from
    eth0"), or, while the command unwinds from a signal, kept for the one
    line that reports the interrupt."""
    if unwinding():
        _state.said.append(text)
    else:
        print(f"{prog}: {text}", file=sys.stderr, flush=True)


def announce(text: str) -> None:
    """`PROG: text` on stderr when a command runs (run_command), else
    nothing: for what library code does on a command's behalf (a sweep)."""
    if _state.commanding:
        tell(_state.prog, text)


def cleaned(what: str) -> None:
    """What cleanup did ("removed the dnat lab (bpflab-123-1)", "detached
    from eth0"): said in the interrupt's line when the command unwinds from
    a signal (or one waits to be handled: it came during a cleanup that
    holds signals back), else nothing."""
    if unwinding() or signal.sigpending() & {signal.SIGINT, signal.SIGTERM}:
        _state.said.append(what)


SIGNAL_AT_ENV = "BPFLAB_SIGNAL_AT"


_hits: dict[str, int] = {}


def checkpoint(name: str) -> None:
    """A named point of a command where its tests signal it: with
    BPFLAB_SIGNAL_AT=NAME[#N]:SIGNAL ("csum-shrink:SIGINT", "csum-frame#5:
    SIGTERM") the process sends itself SIGNAL there (the Nth time it passes
    it), so a test interrupts it at exactly that point (a fail point; read
    at each call, never at import)."""
    spec = os.environ.get(SIGNAL_AT_ENV)
    if not spec:
        return
    where, _, sig = spec.partition(":")
    point, _, nth = where.partition("#")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.Signals[sig or "SIGINT"])


CLEANUP_LIMIT_S = 10.0  # a cleanup that takes longer than this is given up (the next sweep removes the rest)


def _start_watchdog(signum: int) -> None:
    def give_up() -> None:
        sys.stderr.write(f"interrupted by {signal.Signals(signum).name}; the cleanup did not finish within "
                         f"{CLEANUP_LIMIT_S:.0f} s: `python -m bpflab.lab sweep` removes what is left\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    timer = _state.watchdog = threading.Timer(CLEANUP_LIMIT_S, give_up)
    timer.daemon = True
    timer.start()


def run_command(prog: str, main) -> int:
    """main() as a command: SIGINT and SIGTERM unwind it, and its end is one
    line and 128 + the signal's number. Returns the exit status."""
    interrupt_on(signal.SIGTERM, signal.SIGINT)
    _state.commanding, _state.prog, _state.signum, _state.said = True, prog, None, []
    try:
        checkpoint("command-start")
        return main()
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)  # a plain KeyboardInterrupt is Ctrl-C's
        # Nothing is left to interrupt: hold further signals through the report and the exit.
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))
        said = "; ".join(_state.said) or "nothing was left to remove"
        print(f"{prog}: interrupted by {signal.Signals(signum).name}; {said}", file=sys.stderr, flush=True)
        return 128 + signum
    finally:
        _state.commanding = False
        if _state.watchdog is not None:
            _state.watchdog.cancel()
            _state.watchdog = None


def _redeliver_lost(unraisable) -> None:
    if isinstance(unraisable.exc_value, Interrupted):
        _state.signum = None  # it was lost: nothing unwinds yet
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
        if current == signal.SIG_IGN:
            continue  # ignored when we started (a background job's SIGINT): it stays ignored
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
