"""``umt``: uni-modal teachers (each unit distilled towards a uni-modally trained teacher's)."""

from .spec import Calibration, MethodSpec, Setting


def _noop(method):
    if method.distill_weight == 0.0:
        return "method umt with method.distill_weight 0 distils nothing"
    return None


def _rate(kappa, p, col, teacher_unit=None, banks=1, width=1):
    if teacher_unit is None:
        raise ValueError("umt's race needs teacher_unit, the teachers' leading unit outputs")
    import numpy as np  # here: the registry loads without NumPy

    hT = np.asarray(teacher_unit, dtype=np.float64).reshape(-1)
    return kappa * (1.0 + 4.0 * p["distill_weight"] * hT / (banks * width))[col]


SPEC = MethodSpec(
    name="umt",
    summary="plain loss plus lambda times the distance of every unit output to its teacher's",
    settings=(Setting("distill_weight", "float", 10.0, lo=0.0, doc="lambda >= 0"),
              Setting("teacher_steps", "steps", None,
                      doc="training steps of the uni-modal teachers (train.steps)")),
    source="Du et al., ICML 2023, arXiv:2305.01233",
    published_default="lambda = 10 (BalanceBenchmark)",
    reads_phi=True,
    reads_units=True,
    table="teacher_units",
    race_rate=_rate,
    noop=_noop,
    calibration=Calibration("distill_weight", 10.0, (0.1, 0.3, 1.0, 3.0),
                            settings=lambda value, start, K, winner, T: {"distill_weight": value},
                            note="BalanceBenchmark's lambda"),
    diverge_key="distill_weight",
)
