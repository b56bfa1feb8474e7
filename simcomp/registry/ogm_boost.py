"""``ogm_boost``: OGM turned around (boosts the modality that is behind, not the leader's brake)."""

from .spec import Calibration, MethodSpec, Setting


def _noop(method):
    if method.boost == 1.0:
        return "method ogm_boost with method.boost 1 boosts nothing"
    return None


def _rate(kappa, p, col, **_):
    import numpy as np  # here: the registry loads without NumPy
    # While every output is small, the modality with the smaller rate is behind in the
    # scores (ratio < 1) and is boosted; the leader keeps its rate (docs/theory.md 15.11).
    behind = kappa < kappa.max(axis=0, keepdims=True)
    return np.where(behind, p["boost"] * kappa, kappa)


SPEC = MethodSpec(
    name="ogm_boost",
    summary="k_r = boost for every modality whose score ratio rho_r < 1, 1 for the others",
    settings=(Setting("boost", "float", 4.0, lo=0.0, lo_open=True,
                      doc="factor > 0 of the gradient of a modality that is behind"),
              Setting("start", "int", 6, lo=0, doc="first boosted step"),
              Setting("stop", "stop", None, doc="first step no longer boosted (never)")),
    source="Wei et al., TPAMI 2024, arXiv:2410.11582 (github.com/GeWu-Lab/BML_TPAMI2024, "
           "code/main.py, the --use_OGM_plus branch)",
    published_default="weaker modality x 4, stronger x 1, no modulation while epoch <= 5",
    reads_phi=True,
    accumulators=1,
    race_rate=_rate,
    noop=_noop,
    calibration=Calibration(
        "boost", 4.0, (1.5, 2.0, 4.0, 8.0), has_start=True, lo=0.0, lo_open=True,
        settings=lambda value, start, K, winner, T: {"boost": value,
                                                     "start": int(round(start * T))},
        note="the published factor of the weaker modality"),
)
