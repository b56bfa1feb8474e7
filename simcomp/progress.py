"""A small progress bar on stderr: only where a person watches, throttled, never in stdout's way."""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar", "watched"]


def _in_notebook() -> bool:
    """Whether this process is an IPython kernel (Jupyter, VS Code): its output is shown."""
    ipython = sys.modules.get("IPython")  # never imported here: only if already running
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython without it, or in a broken state
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def watched(stream=None) -> bool:
    """Whether a person sees ``stream`` (default stderr) as it is written.

    True on a terminal and in a notebook kernel (whose stderr is no
    terminal but is shown under the cell); False when it is redirected to
    a file or a pipe, as in scripts, logs and CI.
    """
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return _in_notebook()


class ProgressBar:
    """Counts units of work done out of ``total`` and redraws at most ten times a second.

    It draws nothing when disabled or when nobody watches the stream (see
    :func:`watched`), so logs and scripts reading stdout see no control
    characters.  The time left is estimated from the rate since the first
    unit was done: the wait before it (worker start-up, compiling kernels)
    says nothing about the rest, and with several workers the first units
    arrive together after one unit's time; until a second update there is
    no estimate.
    """

    def __init__(self, total: int, label: str = "", enabled: bool = True, stream=None):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and watched(self.stream)
        self.done = 0
        self.start = time.perf_counter()
        self._first: tuple[float, int] | None = None  # (time, done) at the first update
        self._last_draw = 0.0

    def __call__(self, amount: int = 1) -> None:
        self.update(amount)

    def update(self, amount: int = 1) -> None:
        self.done = min(self.total, self.done + int(amount))
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, self.done)
        if self.enabled and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            self._draw(now)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the rate since the first update; None before there is one."""
        now = time.perf_counter() if now is None else now
        if self._first is None or self.done >= self.total:
            return None
        t0, done0 = self._first
        if self.done <= done0 or now <= t0:
            return None
        return (self.total - self.done) * (now - t0) / (self.done - done0)

    def text(self, now: float) -> str:
        """The bar as drawn at time ``now``."""
        frac = self.done / self.total
        width = 30
        filled = int(round(frac * width))
        elapsed = now - self.start
        eta = self.eta(now)
        if self.done >= self.total:
            tail = f"{elapsed:5.1f}s"
        elif eta is None:
            tail = f"{elapsed:5.1f}s, estimating"
        else:
            tail = f"{eta:5.1f}s left"
        bar = "#" * filled + "." * (width - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {tail}"

    def _draw(self, now: float) -> None:
        self.stream.write(f"\r{self.text(now)}   ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
