"""The training methods as calibration sees them: one main parameter each, its grid, its default.

Every method of :data:`simcomp.config.METHODS` but ``none`` is evaluated.
A method's *main parameter* is the one a practitioner would tune; the
others stay at simcomp's defaults.  Where a parameter acts on one modality
(``lr_scale``, ``dropout``), it acts on the modality that wins the race in
the toy configuration (the one learned first when training jointly), as
the balancing literature slows or drops the dominant modality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    def check(self, key: str, value: float, error=ValueError) -> None:
        bad = value < self.lo or (self.lo_open and value == self.lo) or (
            self.hi is not None and value >= self.hi)
        if bad:
            rng = (f"{'(' if self.lo_open else '['}{self.lo:g}, "
                   f"{'inf)' if self.hi is None else f'{self.hi:g})'}")
            raise error(f"{key} ({self.param} of method {self.name}) must be in {rng}, got {value:g}")


METHOD_PARAMS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("lr_scale", "winner_lr", 0.5, (0.1, 0.25, 0.5, 1.0), dynamics="lr_scale",
               note="no published default; the race winner's learning rate halved",
               lo=0.0, lo_open=True),
    MethodSpec("ogm", "alpha", 0.1, (0.1, 0.3, 0.8, 2.0), has_start=True, dynamics="ogm",
               note="the authors' default alpha (0.8 is their CREMA-D value)"),
    MethodSpec("ogm_ge", "alpha", 0.1, (0.1, 0.3, 0.8, 2.0), has_start=True, dynamics="ogm",
               note="as ogm; its added noise has mean zero, so the toy predicts ogm's expected path"),
    MethodSpec("agm", "alpha", 1.0, (0.1, 0.5, 1.0, 2.0), has_start=True, dynamics="agm",
               note="the official default"),
    MethodSpec("dropout", "winner_drop", 0.5, (0.1, 0.3, 0.5, 0.7), dynamics="dropout",
               note="no published default; the race winner dropped on half the samples",
               hi=1.0),
    MethodSpec("aux", "aux_weight", 1.0, (0.3, 1.0, 3.0), dynamics="aux",
               note="uniform weights, as MMPareto's baseline"),
    MethodSpec("alternating", None, None, (), dynamics="alternating",
               note="equal predictor weights"),
    MethodSpec("mmpareto", None, None, (), dynamics="mmpareto", note="the official rule"),
    MethodSpec("umt", "distill_weight", 10.0, (0.1, 0.3, 1.0, 3.0), dynamics="umt",
               note="BalanceBenchmark's lambda"),
    MethodSpec("ume", None, None, (), dynamics="alternating",
               note="the sum of the uni-modal networks"),
)}


def method_settings(spec: MethodSpec, value: float | None, start: float, K: int, winner: int,
                    T: int) -> dict[str, Any]:
    """The ``params`` of :func:`simcomp.theory.mitigation.method_dynamics` for one setting.

    ``value`` is the main parameter (None for methods without one), ``start``
    the fraction of the ``T`` steps before a modulation starts, ``winner``
    the index of the race winner.
    """
    name = spec.name
    if name == "lr_scale":
        return {"lr_scale": [value if r == winner else 1.0 for r in range(K)]}
    if name in ("ogm", "ogm_ge", "agm"):
        return {"alpha": value, "start": int(round(start * T))}
    if name == "dropout":
        return {"drop": [value if r == winner else 0.0 for r in range(K)]}
    if name == "aux":
        return {"fused_weight": 1.0, "aux_weight": [value] * K}
    if name == "umt":
        return {"distill_weight": value}
    return {}
