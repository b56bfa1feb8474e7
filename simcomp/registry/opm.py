"""``opm``: on-the-fly prediction modulation (the leader's features dropped in the forward pass)."""

from .spec import Calibration, MethodSpec, Setting


def _noop(method):
    if method.execute_prob == 0.0:
        return "method opm with method.execute_prob 0 drops nothing"
    if method.q_base == 0.0:
        return "method opm with method.q_base 0 drops nothing"
    return None


def _rate(kappa, p, col, **_):
    import numpy as np  # here: the registry loads without NumPy
    # While every output is small one modality leads (the one with the larger rate) and is
    # dropped with q_base; the kept features are rescaled by 1 / (1 - theta), theta = q_base / K
    # (docs/theory.md 15.11).
    K = kappa.shape[0]
    e, q = p["execute_prob"], p["q_base"]
    theta = q / K
    lead = kappa >= kappa.max(axis=0, keepdims=True)
    return np.where(lead, (1.0 - e + e * (1.0 - q) / (1.0 - theta)) * kappa,
                    (1.0 - e + e / (1.0 - theta)) * kappa)


SPEC = MethodSpec(
    name="opm",
    summary="with probability execute_prob a step drops each leader's phi_{j,r} per sample with "
            "q_r = q_base (1 + alpha tanh(rho_r - 1)), the rest rescaled by 1 / (1 - mean q)",
    settings=(Setting("q_base", "float", 0.5, lo=0.0, hi=1.0,
                      doc="base drop probability in [0, 1]"),
              Setting("alpha", "float", 0.5, lo=0.0, doc="growth >= 0 of q_r with the lead"),
              Setting("execute_prob", "float", 0.7, lo=0.0, hi=1.0,
                      doc="probability in [0, 1] that a step drops at all"),
              Setting("start", "int", 6, lo=0, doc="first step that may drop"),
              Setting("stop", "stop", None, doc="first step that no longer drops (never)")),
    source="Wei et al., TPAMI 2024, arXiv:2410.11582 (github.com/GeWu-Lab/BML_TPAMI2024, "
           "code/models/Classifier.py; GeWu-Lab/BalanceBenchmark, "
           "balancemm/trainer/OPM_trainer.py)",
    published_default="q_base 0.5, lam 0.5, p_exe 0.7 (train_opm.sh), no dropping while "
                      "epoch <= 5",
    stochastic=True,
    reads_phi=True,
    accumulators=1,
    state_shape=lambda K, B, m, n, D: (1, K),  # q_r of the next step
    exact_reduction=False,
    race_rate=_rate,
    noop=_noop,
    calibration=Calibration(
        "q_base", 0.5, (0.2, 0.5, 0.8), has_start=True, hi=1.0,
        settings=lambda value, start, K, winner, T: {"q_base": value,
                                                     "start": int(round(start * T))},
        note="the published base drop probability"),
)
