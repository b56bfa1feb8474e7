"""The settings ogm, ogm_ge and agm share: a strength and the window of steps it acts on."""

from .spec import Calibration, Setting


def settings(alpha: float) -> tuple:
    return (Setting("alpha", "float", alpha, lo=0.0, doc="modulation strength >= 0"),
            Setting("start", "int", 0, lo=0, doc="first modulated step"),
            Setting("stop", "stop", None, doc="first step no longer modulated (never)"))


def noop(method):
    if method.alpha == 0.0:
        return f"method {method.name} with method.alpha 0 modulates nothing"
    return None


def calibration(given: float, grid: tuple, note: str) -> Calibration:
    return Calibration("alpha", given, grid, has_start=True, note=note,
                       settings=lambda value, start, K, winner, T: {
                           "alpha": value, "start": int(round(start * T))})
