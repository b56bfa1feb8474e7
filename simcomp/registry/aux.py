"""``aux``: the fused loss plus one uni-modal loss per modality (auxiliary heads)."""

from .spec import Calibration, MethodSpec, Setting


def _noop(method):
    if method.fused_weight == 1.0:
        weights = method.aux_weight
        weights = weights if isinstance(weights, tuple) else (weights,)
        if all(w == 0.0 for w in weights):
            return "method aux with every method.aux_weight 0 adds no uni-modal loss"
    return None


def _rate(kappa, p, col, **_):
    return kappa * (p["fused_weight"] + p["aux_weight"])[col]


SPEC = MethodSpec(
    name="aux",
    summary="loss w_0 l(f) + sum_r lambda_r l(phi_r)",
    settings=(Setting("fused_weight", "float", 1.0, lo=0.0,
                      doc="weight w_0 >= 0 of the fused loss"),
              Setting("aux_weight", "either", 1.0, lo=0.0,
                      doc="weights lambda_r >= 0 of the uni-modal losses, one or one per "
                          "modality")),
    source="Wang et al. (Gradient-Blending's uni-modal heads), CVPR 2020, arXiv:1905.12681",
    published_default="w_0 = lambda_r = 1",
    reads_phi=True,
    race_rate=_rate,
    noop=_noop,
    calibration=Calibration(
        "aux_weight", 1.0, (0.3, 1.0, 3.0),
        settings=lambda value, start, K, winner, T: {"fused_weight": 1.0,
                                                     "aux_weight": [value] * K},
        note="uniform weights, as MMPareto's baseline"),
    diverge_key="aux_weight",
)
