"""``ume``: uni-modal ensemble (no joint training; the predictor sums the uni-modal networks)."""

from .spec import Calibration, MethodSpec

SPEC = MethodSpec(
    name="ume",
    summary="the uni-modal networks trained alone, their outputs summed",
    source="Du et al., ICML 2023, arXiv:2305.01233",
    published_default="--",
    trains_joint=False,
    kernel="none",
    dynamics="alternating",
    calibration=Calibration(None, None, (), note="the sum of the uni-modal networks"),
)
