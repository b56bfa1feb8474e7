"""``inforeg``: InfoReg (a proximal pull slows the leading modality while its information
grows fastest)."""

import math

from ..validation import ConfigError
from .spec import Calibration, MethodSpec, Setting

# The longest moving window of epoch traces (the state keeps the last WINDOW_MAX + 1 traces).
WINDOW_MAX = 100


def _noop(method):
    if method.prox_weight == 0.0:
        weights = method.aux_weight
        weights = weights if isinstance(weights, tuple) else (weights,)
        if all(w == 0.0 for w in weights):
            return "method inforeg with method.prox_weight 0 and every method.aux_weight 0 " \
                "regulates nothing"
    return None


def _check(cfg):
    # The proximal term alone maps W - W^a to (1 - eta beta)(W - W^a), beta up to
    # prox_weight e: it overshoots and grows unless eta prox_weight e < 2.
    m, lr = cfg.method, cfg.train.lr
    if lr * m.prox_weight * math.e >= 2.0:
        raise ConfigError(f"method.prox_weight (method inforeg) must be < 2 / (e train.lr) = "
                          f"{2.0 / (math.e * lr):.6g} at train.lr {lr:g}, got {m.prox_weight:g} "
                          "(the proximal pull would overshoot and grow)")


def _rate(kappa, p, col, **_):
    # the aux form: every encoder also learns from its own loss (docs/theory.md 15.11)
    return kappa * (1.0 + p["aux_weight"])[col]


def _state(K, B, m, n, D):
    # per modality: the anchor weights (B m D), the last WINDOW_MAX + 1 epoch traces, the
    # running epoch's trace, the window statistic k_r and the number of closed epochs
    return (K, B * m * D + WINDOW_MAX + 4)


SPEC = MethodSpec(
    name="inforeg",
    summary="the aux loss, plus beta (W_l - W_l at the epoch start) for the leading modality l "
            "while its gradient trace grows (k_l > threshold)",
    settings=(Setting("prox_weight", "float", 0.02, lo=0.0,
                      doc="proximal strength >= 0 (beta = prox_weight exp(tanh(gap_scale gap)))"),
              Setting("gap_scale", "float", 64.0, lo=0.0,
                      doc="scale >= 0 of the score gap inside tanh"),
              Setting("threshold", "float", 0.04,
                      doc="window test: regulate while k_l > threshold"),
              Setting("trace_window", "int", 10, lo=1, hi=WINDOW_MAX,
                      doc=f"epochs in the moving averages of the trace (1..{WINDOW_MAX})"),
              Setting("every", "int", 10, lo=1, doc="steps per epoch (anchor refresh)"),
              Setting("aux_weight", "either", 1.0, lo=0.0,
                      doc="weights lambda_r >= 0 of the uni-modal losses, one or one per "
                          "modality")),
    source="Huang et al., CVPR 2025, arXiv:2503.18595 (github.com/GeWu-Lab/InfoReg_CVPR2025, "
           "main.py)",
    published_default="beta = 0.95 exp(tanh(gap)) at lr 0.002 (~105 steps an epoch), window "
                      "test k > 0.04 over 10 epochs",
    reads_phi=True,
    accumulators=1,
    state_shape=_state,
    race_rate=_rate,
    noop=_noop,
    check_config=_check,
    calibration=Calibration(
        "prox_weight", 0.02, (0.005, 0.02, 0.05, 0.1),
        settings=lambda value, start, K, winner, T: {"prox_weight": value},
        note="the published per-epoch pull at the toy's step size"),
)
