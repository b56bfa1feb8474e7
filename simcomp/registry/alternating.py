"""``alternating``: every encoder on its own uni-modal loss (MLA), predictor sum_r a_r phi_r."""

from .spec import Calibration, MethodSpec, Setting

SPEC = MethodSpec(
    name="alternating",
    summary="encoder r follows l(phi_r) only; the predictor is sum_r a_r phi_r",
    settings=(Setting("mix", "modality", 1.0, lo=0.0, doc="predictor weights a_r >= 0"),),
    source="Zhang et al. (MLA), CVPR 2024, arXiv:2311.10707",
    published_default="a_r = 1 (the authors use 0.55/0.45 on some sets)",
    reads_phi=True,
    predictor_setting="mix",
    calibration=Calibration(None, None, (), note="equal predictor weights"),
)
