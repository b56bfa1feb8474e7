"""``reconboost``: boosting of one modality at a time against the others, then joint correction."""

from ..validation import ConfigError
from .spec import Calibration, MethodSpec, Setting


def _check(method):
    if method.ensemble_weight > method.boost_weight:
        raise ConfigError(
            f"method.ensemble_weight (method reconboost) must be <= method.boost_weight "
            f"({method.boost_weight:g}), got {method.ensemble_weight:g}: the boosting weight "
            f"w1 - w2 q would turn negative")


def _rate(kappa, p, col, **_):
    # averaged over a cycle of K stages: boosted at (w1 - w2/2)/2 (q = 1/2 early on) for
    # boost_steps of one stage in K, plain for correct_steps of every stage
    K = kappa.shape[0]
    bs, cs = p["boost_steps"], p["correct_steps"]
    gain = (bs * (p["boost_weight"] - p["ensemble_weight"] / 2.0) / 2.0 + K * cs) / (K * (bs + cs))
    return kappa * gain


SPEC = MethodSpec(
    name="reconboost",
    summary="stages of boost_steps training one modality (cyclically) on (w1 - w2 q) l(phi_r) / 2 "
            "with q the others' true-class probability, then correct_steps plain joint steps",
    settings=(Setting("boost_steps", "int", 4, lo=1, doc="boosting steps per stage >= 1"),
              Setting("correct_steps", "int", 4, lo=0, doc="joint correction steps per stage >= 0"),
              Setting("boost_weight", "float", 5.0, lo=0.0, lo_open=True,
                      doc="w1 > 0, weight of the boosted modality's loss"),
              Setting("ensemble_weight", "float", 1.0, lo=0.0,
                      doc="w2 in [0, w1], discount for samples the others get right")),
    source="Hua et al., ICML 2024, arXiv:2405.09321 (github.com/huacong/ReconBoost, train.py; "
           "BalanceBenchmark balancemm/trainer/ReconBoost_trainer.py)",
    published_default="weight1 = 5, weight2 = 1, 4 boosting and 4 correction epochs per stage",
    reads_phi=True,
    accumulators=1,
    race_rate=_rate,
    validate=_check,
    # the main parameter is w1 (the boosting weight); w2 stays at 1, so the grid keeps
    # w1 >= w2 (the validator's bound)
    calibration=Calibration(
        "boost_weight", 5.0, (1.0, 2.0, 5.0, 10.0), lo=1.0,
        settings=lambda value, start, K, winner, T: {"boost_weight": value},
        note="the published weight1 (weight2 = 1, 4 boosting and 4 correction steps)"),
)
