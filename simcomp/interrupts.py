"""Signals that stop a command cleanly, never from inside compiled or C code.

A Python signal handler runs at the next point where the interpreter looks
for pending signals.  When that point lies in C code that called back into
Python (numba's dispatcher boxing a kernel's results, matplotlib's renderer),
an exception raised by the handler is not expected there: the process gets a
``SystemError`` or a segmentation fault instead of a clean interrupt.  And a
long compiled kernel does not look for signals at all.

So every compiled kernel call and every figure is run inside
:func:`deferred`: while it runs, SIGINT, SIGTERM and SIGHUP are only
*recorded*; the exception is raised when the block is left, in plain Python.
Long computations are cut into short deferred calls (:func:`chunks`) so
that a signal is acted on within a fraction of a second.

The command line installs :func:`guard` once: outside deferred blocks a
signal raises at once (:class:`KeyboardInterrupt` for SIGINT,
:class:`Terminated` for SIGTERM, :class:`HungUp` for SIGHUP), and only the
first one does: later signals, while the cleanup the first one started is
running (removing a hidden temporary directory), are ignored.  Without the
guard (simcomp used as a library), :func:`deferred` installs its recorder
for the duration of the block and then hands a recorded signal to the
handler that was there before.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Terminated", "HungUp", "guard", "deferred", "chunks", "signal_of", "raised_signal",
           "command_ended", "ended_code"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every cleanup an interrupt runs also runs."""


class HungUp(KeyboardInterrupt):
    """SIGHUP (the terminal was closed), handled as an interrupt."""


_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                 if hasattr(signal, name))


def _exception(signum: int) -> KeyboardInterrupt:
    if signum == getattr(signal, "SIGTERM", None):
        return Terminated()
    if signum == getattr(signal, "SIGHUP", None):
        return HungUp()
    return KeyboardInterrupt()


def signal_of(exc: BaseException | None) -> int:
    """The signal number behind an interrupt (following ``__cause__``): SIGINT by default."""
    while exc is not None:
        if isinstance(exc, Terminated):
            return int(signal.SIGTERM)
        if isinstance(exc, HungUp):
            return int(signal.SIGHUP)
        exc = exc.__cause__
    return int(signal.SIGINT)


class _State:
    guarded = False  # guard() is active: our handler is installed for every signal
    depth = 0  # nesting of deferred blocks in the main thread
    pending: list = []  # signals recorded inside deferred blocks, not yet raised
    raised = False  # the one signal that stops the command has been raised
    raised_signum = 0
    finished = None  # the exit code of a command that has ended (only shutdown is left)


_state = _State()


# Code that must never see an exception raised by a signal handler: numba's compiler and
# loader (llvmlite calls back into Python through ctypes, which swallows the exception and
# leaves the compiler half-done: a later call hangs) and matplotlib's renderer.
_UNSAFE = tuple(f"{os.sep}{name}{os.sep}" for name in ("numba", "llvmlite", "matplotlib"))


def _unsafe(frame) -> bool:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _UNSAFE):
            return True
        frame = frame.f_back
    return False


def _handler(signum, frame):
    if _state.raised:
        return  # the cleanup started by the first signal must not be cut short
    if _state.depth > 0:
        _state.pending.append(signum)
        return
    if _unsafe(frame):
        # Inside such code (a kernel compiled on first use, outside any deferred block): send
        # the signal again in 50 ms, by when the interpreter is, or soon will be, back in
        # simcomp's own code.
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    _state.raised, _state.raised_signum = True, signum
    raise _exception(signum)


def raised_signal() -> int | None:
    """The signal that :func:`guard` turned into an exception in this command, if any."""
    return _state.raised_signum if _state.raised else None


def command_ended(code: int) -> None:
    """Record that the command has ended with ``code``: its outputs are complete (or its
    failure reported), and only the interpreter's shutdown is left."""
    _state.finished = int(code)


def ended_code() -> int | None:
    """The exit code recorded by :func:`command_ended`, or None while the command runs."""
    return _state.finished


def _record(signum, frame):
    _state.pending.append(signum)


_MAIN_IDENT = threading.main_thread().ident


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def guard() -> Iterator[None]:
    """Install the command line's handlers for SIGINT, SIGTERM and SIGHUP while the block runs."""
    if not _in_main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    _state.guarded, _state.depth, _state.pending, _state.raised = True, 0, [], False
    _state.finished = None
    for sig, handler in previous.items():
        # An ignored SIGHUP stays ignored: `nohup simcomp sweep ...` must survive the terminal
        # closing.  (SIGINT and SIGTERM are taken even when ignored, as they always were: a
        # Ctrl-C or kill aimed at simcomp is meant for it.)
        if not (sig == getattr(signal, "SIGHUP", None) and handler is signal.SIG_IGN):
            signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _state.guarded, _state.depth, _state.pending = False, 0, []


def _redeliver(signum: int, handler) -> None:
    """Act on a recorded signal as the handler that was installed would have."""
    if handler is signal.SIG_IGN:
        return
    if handler is None or handler is signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)  # the default action (the handler is restored by now)
        return
    handler(signum, None)


class deferred:  # noqa: N801 - used like a function: ``with deferred():``
    """Record, do not raise, SIGINT/SIGTERM/SIGHUP while the block runs; raise on leaving it.

    Wrap every call into compiled code (and the drawing of a figure) in it.
    Off the main thread (where Python never runs signal handlers) it does
    nothing.  ``hot=True`` is for calls made thousands of times a second
    (the training kernels): under :func:`guard` it costs well under a
    microsecond; without the guard it does nothing, since installing
    handlers for each call would cost tens of microseconds.  (A class, not a
    generator-based context manager: this is on the hot path.)
    """

    __slots__ = ("hot", "mode", "previous")

    def __init__(self, hot: bool = False):
        self.hot = hot

    def __enter__(self) -> None:
        if _state.guarded or _state.depth > 0:
            if threading.get_ident() != _MAIN_IDENT:
                self.mode = 0
                return
            self.mode = 1
            _state.depth += 1
            return
        if self.hot or threading.get_ident() != _MAIN_IDENT:
            self.mode = 0
            return
        self.mode = 2  # simcomp used as a library: our recorder for the duration of the block
        self.previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
        _state.pending = []
        for sig in _SIGNALS:
            signal.signal(sig, _record)
        _state.depth = 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.mode == 0:
            return
        if self.mode == 1:
            _state.depth -= 1
            if (exc_type is None and _state.depth == 0 and _state.guarded and _state.pending
                    and not _state.raised):
                signum = _state.pending[0]
                _state.pending = []
                _state.raised, _state.raised_signum = True, signum
                raise _exception(signum)
            return
        _state.depth = 0
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        pending, _state.pending = _state.pending, []
        if pending and exc_type is None:
            _redeliver(pending[0], self.previous[pending[0]])


def chunks(total: int, target_seconds: float = 0.05, first: int = 1) -> Iterator[tuple[int, int]]:
    """Split ``range(total)`` into ``(start, stop)`` pieces of about ``target_seconds`` each.

    The size adapts to the time the previous piece took (measured between
    yields), so the caller's compiled call can be run in deferred pieces that
    each end well within a second, whatever the cost of one step.
    """
    start, size = 0, max(1, int(first))
    while start < total:
        stop = min(total, start + size)
        clock = time.perf_counter()
        yield start, stop
        seconds = time.perf_counter() - clock
        done = stop - start
        if seconds <= 0:
            size = done * 4
        else:
            size = max(1, min(done * 4, int(done * target_seconds / seconds)))
        start = stop

