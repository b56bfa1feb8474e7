"""How a run is cut into compiled calls: wall-time-bounded calls and the serial/parallel choice.

Neither changes a result: the learned check runs at every step inside the
kernels, trace points stay where they are, and the serial and the parallel
gradient are bit-identical.
"""

from __future__ import annotations

__all__ = ["CallSizer", "PathChooser"]

# Wall time of one compiled call. Python sees a signal (Ctrl-C, SIGTERM)
# only between calls, so every segment is cut into calls of about this
# length, sized from the measured time per step. Cutting never changes a
# result: the learned check still runs at every step and trace points
# stay where they are.
_CALL_SECONDS = 0.25


class CallSizer:
    """Steps per compiled call so that a call lasts about ``_CALL_SECONDS``.

    Starts with a single step (which also pays any compilation), then
    follows the measured time per step, growing by at most 4x per call.
    """

    def __init__(self):
        self.steps = 1

    def next(self, wanted: int) -> int:
        return max(1, min(wanted, self.steps))

    def record(self, steps: int, seconds: float) -> None:
        if steps <= 0:
            return
        per_step = max(seconds / steps, 1e-9)
        self.steps = max(1, min(int(_CALL_SECONDS / per_step), 4 * self.steps))


class PathChooser:
    """Chooses the serial or the parallel gradient for each kernel call by timing both.

    The first call of each path warms it up (the thread pool starts on the
    first parallel call) and is not counted; then each path is timed once,
    and the faster one (time per step of its latest call) is used. Every
    ``probe_every`` calls the other path is timed again, so that a change of
    load (another process taking or leaving a core) is followed; a probe
    that loses doubles the interval (up to 64 calls), so a path that stalls
    costs little. Results never depend on the choice.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.per_step = {False: None, True: None}
        self.warm = {False: False, True: False}
        self.current = False
        self.calls = 0
        self.probe_every = 8
        self.used_parallel = False

    def next(self) -> bool:
        """The path (parallel?) for the next call."""
        if not self.enabled:
            return False
        for path in (False, True):
            if not self.warm[path] or self.per_step[path] is None:
                return path
        if self.calls % self.probe_every == 0:
            return not self.current
        return self.current

    def record(self, parallel: bool, steps: int, seconds: float) -> None:
        self.used_parallel |= parallel
        if not self.enabled or steps <= 0:
            return
        self.calls += 1
        if not self.warm[parallel]:
            self.warm[parallel] = True
            return
        self.per_step[parallel] = seconds / steps
        other = self.per_step[not parallel]
        if other is None:
            self.current = parallel
            return
        best = min((False, True), key=lambda p: self.per_step[p])
        if parallel != self.current:  # a probe
            self.probe_every = 8 if best == parallel else min(2 * self.probe_every, 64)
        self.current = best
