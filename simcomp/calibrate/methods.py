"""The training methods as calibration sees them: one main parameter each, its grid, its default.

Every method of :data:`simcomp.config.METHODS` but ``none`` is listed; those whose
``Calibration.refused`` gives a reason (the held-out methods, whose signal calibrate's
population toy does not have) are reported with it instead of a gain.
A method's *main parameter* is the one a practitioner would tune; the
others stay at simcomp's defaults.  Where a parameter acts on one modality
(``lr_scale``, ``dropout``), it acts on the modality that wins the race in
the toy configuration (the one learned first when training jointly), as
the balancing literature slows or drops the dominant modality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..registry import REGISTRY

__all__ = ["MethodSpec", "METHOD_PARAMS", "method_settings"]


@dataclass(frozen=True)
class MethodSpec:
    """How calibration runs one method.

    Attributes
    ----------
    name : str
        The simcomp method.
    param : str or None
        The main parameter (None: the method has none worth tuning).
    given : float or None
        Its setting when the user gives none: the published default where one
        exists (docs/methods.md), otherwise the conventional value ``note`` names.
    grid : tuple of float
        The values tried for the toy's best setting.
    has_start : bool
        The method acts from a start step on (``start``: a fraction of training).
    dynamics : str
        The method whose reduced dynamics predicts it (ogm_ge: ogm's, the
        expected update; ume: the uni-modal runs, as alternating).
    note : str
        Where ``given`` comes from.
    refused : str
        Non-empty: why calibrate does not predict the method (reported instead of a gain).
    """

    name: str
    param: str | None
    given: float | None
    grid: tuple
    has_start: bool = False
    dynamics: str = ""
    note: str = ""
    lo: float = 0.0
    hi: float | None = None
    lo_open: bool = False
    refused: str = ""

    def check(self, key: str, value: float, error=ValueError) -> None:
        bad = value < self.lo or (self.lo_open and value == self.lo) or (
            self.hi is not None and value >= self.hi)
        if bad:
            rng = (f"{'(' if self.lo_open else '['}{self.lo:g}, "
                   f"{'inf)' if self.hi is None else f'{self.hi:g})'}")
            raise error(f"{key} ({self.param} of method {self.name}) must be in {rng}, got {value:g}")


def _from_registry() -> dict[str, MethodSpec]:
    out = {}
    for name, spec in REGISTRY.items():
        c = spec.calibration
        if c is None:
            continue
        # a method with work between steps (probes, resets) runs under its own name: its
        # theory hook is keyed by it, while spec.dynamics names only its compiled step
        dynamics = name if spec.theory_hook is not None else spec.dynamics
        out[name] = MethodSpec(name, c.param, c.given, c.grid, has_start=c.has_start,
                               dynamics=dynamics, note=c.note, lo=c.lo, hi=c.hi,
                               lo_open=c.lo_open, refused=c.refused)
    return out


# Every registered method with a ``calibration`` (all but none), from its registry module.
METHOD_PARAMS: dict[str, MethodSpec] = _from_registry()


def method_settings(spec: MethodSpec, value: float | None, start: float, K: int, winner: int,
                    T: int) -> dict[str, Any]:
    """The ``params`` of :func:`simcomp.theory.mitigation.method_dynamics` for one setting.

    ``value`` is the main parameter (None for methods without one), ``start``
    the fraction of the ``T`` steps before a modulation starts, ``winner``
    the index of the race winner (the method's ``Calibration.settings``).
    """
    return REGISTRY[spec.name].calibration.settings(value, start, K, winner, T)
