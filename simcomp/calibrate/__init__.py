"""Calibration: a practitioner's measurements in, the toy's answers out (docs/calibration.md).

::

    import simcomp
    cal = simcomp.calibrate("crema.toml")          # or a dict in the same shape
    cal.json["potential"], cal.json["methods"][0]
    print(cal.report())
    cal.save("calibration-out")                      # calibration.json, report.txt, calibration.png

Modules: :mod:`.measurements` (reading and checking the input),
:mod:`.mapping` (the toy's binary task against the user's), :mod:`.search`
(the consistent set, with the theory; a sample simulated),
:mod:`.methods` (the methods' main parameters), :mod:`.answers`
(potential, competition cost, gains and verdicts) and :mod:`.report`
(JSON, text, figure, the output directory).  Nothing here imports
:mod:`simcomp.api`.
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .._version import __version__
from .answers import VERDICT_RULE, answer
from .measurements import (CalibrationError, Measurements, load_measurements,
                           measurements_from_dict)
from .methods import METHOD_PARAMS
from .report import CALIBRATE_FORMAT, calibration_figure, text_report, write_directory
from .search import confirm, search

__all__ = ["calibrate", "Calibration", "CalibrationError", "Measurements", "load_measurements",
           "measurements_from_dict", "METHOD_PARAMS"]


@dataclass
class Calibration:
    """The result of :func:`calibrate`.

    Attributes
    ----------
    json : dict
        The one JSON object ``simcomp calibrate --json`` prints: ``potential``
        and ``competition_cost`` ({low, high}, points), ``methods`` (a list of
        {method, which, setting, gain_median, gain_low, gain_high, verdict,
        sensitivity}), ``methods_refused`` (method -> why calibrate cannot predict it),
        ``consistent_set`` (count, parameter ranges, how many
        were simulated and agreed), and provenance (format, version,
        measurements, notes).
    measurements : Measurements
    search : the :class:`.search.SearchResult`
    """

    json: dict
    measurements: Measurements
    search: object

    @property
    def consistent(self) -> bool:
        return self.json["consistent_set"]["count"] > 0

    def report(self) -> str:
        return text_report(self.json)

    def figure(self):
        """The figure, a matplotlib Figure on its own Agg canvas."""
        return calibration_figure(self.json)

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write calibration.json, report.txt and calibration.png into a new directory ``path``."""
        return write_directory(self.json, path, force=force)


def _as_measurements(measurements, tolerance) -> Measurements:
    if isinstance(measurements, Measurements):
        meas = measurements
    elif isinstance(measurements, (str, Path)):
        meas = load_measurements(measurements)
    elif isinstance(measurements, dict):
        meas = measurements_from_dict(measurements)
    else:
        raise CalibrationError(f"measurements must be a TOML path, a dict or Measurements, got "
                               f"{type(measurements).__name__}")
    if tolerance is not None:
        import dataclasses

        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or \
                not 0.0 < float(tolerance) <= 20.0:
            raise CalibrationError(f"tolerance must be in (0, 20] accuracy points, got {tolerance!r}")
        meas = dataclasses.replace(meas, tolerance=float(tolerance) / 100.0)
    return meas


def _with_tolerance(rule: str, points: float) -> str:
    """The verdict rule with the run's tolerance said once."""
    return f"{rule}; the tolerance: {points:g} point{'' if points == 1 else 's'}"


def _range(values):
    return [round(float(np.min(values)), 4), round(float(np.max(values)), 4)]


def calibrate(measurements, *, methods=None, tolerance: float | None = None, simulate: int = 2,
              sample: int | None = None, settings: dict | None = None, correlations=None,
              progress: bool | Callable[[str], None] = False) -> Calibration:
    """Carry measurements into the toy and its answers back (docs/calibration.md).

    Parameters
    ----------
    measurements : path, dict or Measurements
        The TOML file of docs/calibration.md, or the same nested dict.
    methods : sequence of str, optional
        The methods to evaluate (default: every method simcomp has).
    tolerance : float, optional
        Accuracy points of the band around every measurement (default: the
        file's ``tolerance``, else 1).
    simulate : int
        Members of the consistent set to confirm by simulation (default 2).
    sample : int, optional
        Members of the consistent set the methods are run on (default 24 for
        two modalities, 16 for more: their dynamics cost more per step).
    settings : dict, optional
        Method -> ``{main parameter: value, "start": fraction}``, overriding
        the file's ``[methods]`` table and the defaults.
    correlations : sequence of float, optional
        The presence correlations c to search (default: a grid from -0.4 to
        1; one value if you know how much the modalities overlap).  Each
        must be valid for ``data.presence_correlation`` (>= -1/(K-1), <= 1).
    progress : bool or callable
        True prints stage messages on stderr once the calibration has taken
        more than a few seconds; a callable receives the messages.

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        (a ValueError) Bad or inconsistent measurements, an unknown method.
    """
    t0 = time.perf_counter()
    if callable(progress):
        say = progress
    elif progress:
        def say(msg: str) -> None:
            if time.perf_counter() - t0 > 3.0:
                print(f"simcomp calibrate: {msg} ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
    else:
        say = None
    meas = _as_measurements(measurements, tolerance)
    if methods is not None:
        methods = [methods] if isinstance(methods, str) else list(methods)  # "ogm": one method
        for nm in methods:
            if nm not in METHOD_PARAMS:
                raise CalibrationError(f"unknown method {nm!r}; valid: {', '.join(METHOD_PARAMS)}")
    if sample is None:
        sample = 24 if meas.K == 2 else 16
    for key, value in (("simulate", simulate), ("sample", sample)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 1000:
            raise CalibrationError(f"{key} must be a whole number in [0, 1000], got {value!r}")
    if settings:
        from .measurements import _methods_table

        settings = _methods_table(settings)
    if correlations is not None:
        try:
            correlations = [float(c) for c in correlations]
        except (TypeError, ValueError):
            raise CalibrationError(f"correlations must be a list of numbers, got "
                                   f"{correlations!r}") from None
        lo = -1.0 / (meas.K - 1)
        bad = [c for c in correlations if not lo <= c <= 1.0]
        if bad or not correlations:
            raise CalibrationError(f"correlations must be numbers in [{lo:.4g}, 1] "
                                   f"({meas.K} modalities), got {correlations!r}")
    found = search(meas, progress=say, correlations=correlations)
    if say:
        say(f"{found.count} consistent configurations; running the methods")
    ans = answer(meas, found, methods=methods, sample=max(sample, 1), given=settings, progress=say)
    if say and simulate and found.count:
        say(f"simulating {min(simulate, found.count)} consistent configurations")
    conf = confirm(meas, found.candidates, meas.names, n=simulate,
                   correlation=found.correlation_modelled)
    names = meas.names
    cands = found.candidates
    cs = {"count": found.count, "searched": found.searched, "reason": found.reason,
          "simulated": conf.simulated, "simulation_agreed": conf.agreed,
          "simulation_tolerance": round(100 * conf.tolerance, 4),
          "methods_sampled": ans.sampled, "correlation_modelled": found.correlation_modelled,
          "ranges": None, "predicted": {}}
    if cands:
        P = np.array([c.presence for c in cands])
        Bt = np.array([c.beta for c in cands])
        cs["ranges"] = {
            "presence": {nm: _range(P[:, r]) for r, nm in enumerate(names)},
            "beta_ratio": {nm: _range(Bt[:, r] / Bt[:, 0]) for r, nm in enumerate(names) if r > 0},
            "correlation": (_range([c.c for c in cands]) if found.correlation_modelled
                            else "not modelled"),
            "horizon": _range([c.horizon for c in cands]),
            "decision_scale": _range([c.decision_scale for c in cands]),
            "winner": {nm: sum(c.winner == r for c in cands) for r, nm in enumerate(names)},
        }
        U = 100 * np.array([c.uni for c in cands])
        cs["predicted"] = {"uni": [_range(U[:, r]) for r in range(meas.K)],
                           "joint": _range([100 * c.joint for c in cands])}
        cs["simulation"] = [{"predicted": {"uni": [round(100 * v, 2) for v in row["predicted"]["uni"]],
                                           "joint": round(100 * row["predicted"]["joint"], 2)},
                             "simulated": {"uni": [round(100 * v, 2) for v in row["simulated"]["uni"]],
                                           "joint": round(100 * row["simulated"]["joint"], 2)},
                             "simulated_test_set": {
                                 "uni": [round(100 * v, 2) for v in row["simulated_test"]["uni"]],
                                 "joint": round(100 * row["simulated_test"]["joint"], 2)},
                             "agreed": row["agreed"]} for row in conf.rows]
    r2 = lambda x: None if x is None else round(float(x), 2)  # noqa: E731
    obj = {
        "format": CALIBRATE_FORMAT,
        "simcomp_version": __version__,
        "measurements": meas.to_dict(),
        "potential": {"low": r2(ans.potential[0]), "high": r2(ans.potential[1])},
        "competition_cost": {"low": r2(ans.competition_cost[0]), "high": r2(ans.competition_cost[1])},
        "methods": [m.to_json() for m in ans.methods],
        # methods calibrate cannot predict, each with the reason (never dropped silently)
        "methods_refused": dict(ans.refused or {}),
        "consistent_set": cs,
        "verdict_rule": _with_tolerance(VERDICT_RULE, 100 * meas.tolerance),
        "method_notes": {nm: METHOD_PARAMS[nm].note for nm in (methods or METHOD_PARAMS)},
        "notes": list(found.notes) + list(ans.notes or []),
        "seconds": {"search": round(found.seconds, 2), "methods": round(ans.seconds, 2),
                    "total": round(time.perf_counter() - t0, 2)},
    }
    return Calibration(obj, meas, found)


class _CalibrateModule(types.ModuleType):
    """``simcomp.calibrate`` is this package; calling it calls :func:`calibrate`."""

    def __call__(self, *args, **kwargs):
        return calibrate(*args, **kwargs)


sys.modules[__name__].__class__ = _CalibrateModule
