"""A small progress bar on stderr: only on a terminal, throttled, never in the way of stdout."""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """Counts units of work done out of ``total`` and redraws at most ten times a second.

    It draws nothing when disabled or when stderr is not a terminal, so logs
    and scripts reading stdout see no control characters.
    """

    def __init__(self, total: int, label: str = "", enabled: bool = True, stream=None):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def __call__(self, amount: int = 1) -> None:
        self.update(amount)

    def update(self, amount: int = 1) -> None:
        self.done = min(self.total, self.done + int(amount))
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = self.done / self.total
        width = 30
        filled = int(round(frac * width))
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        eta_text = f"{eta:5.1f}s left" if frac > 0 and frac < 1 else f"{elapsed:5.1f}s"
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} {eta_text}   "
        )
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
