"""``pmr``: prototypical modal rebalance (a prototype loss pulls the lagging modality's features
towards its class prototype)."""

from .spec import Calibration, MethodSpec, Setting


def _noop(method):
    if method.alpha == 0.0:
        return "method pmr with method.alpha 0 adds no prototype loss"
    return None


def _state(K, B, m, n, D):
    # per modality: the two prototypes (2 B m), their squared norms (2), lam_r of the next
    # step, a flag "prototypes exist"
    return (K, 2 * B * m + 4)


SPEC = MethodSpec(
    name="pmr",
    summary="loss plus lam_r times a prototype cross-entropy for the modalities whose prototype "
            "score lags (lam_r = alpha clip(max_s pscore_s / pscore_r - 1, 0, 1))",
    settings=(Setting("alpha", "float", 0.6, lo=0.0, doc="strength alpha >= 0"),
              Setting("momentum", "float", 0.2, lo=0.0, hi=1.0, hi_open=True,
                      doc="weight in [0, 1) of the old prototype in each refresh"),
              Setting("proto_every", "int", 1, lo=1, doc="steps between prototype refreshes"),
              Setting("start", "int", 0, lo=0, doc="first step with the prototype loss"),
              Setting("stop", "stop", None, doc="first step without it (never)")),
    source="Fan et al., CVPR 2023, arXiv:2211.07089 (github.com/fanyunfeng-bit/"
           "Modal-Imbalance-PMR, main_Prototype_grad.py; GeWu-Lab/BalanceBenchmark, "
           "balancemm/trainer/PMR_trainer.py)",
    published_default="alpha = 0.6, momentum 0.2, prototypes every epoch (BalanceBenchmark)",
    reads_phi=True,
    reads_units=True,
    state_shape=_state,
    accumulators=3,  # pscore and the two class weights; the class sums of the units follow
    noop=_noop,
    calibration=Calibration(
        "alpha", 0.6, (0.3, 0.6, 1.0, 2.0), has_start=True,
        settings=lambda value, start, K, winner, T: {"alpha": value,
                                                     "start": int(round(start * T))},
        note="BalanceBenchmark's alpha",
        refused="its pull moves a modality's features relative to its class prototypes; with "
                "calibrate's (symmetric) learner the features and both prototypes lie on one "
                "line through the origin, where the pull vanishes (docs/theory.md 15.4), so it "
                "would predict plain training for every setting"),
)
