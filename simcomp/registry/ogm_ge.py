"""``ogm_ge``: ogm plus Gaussian noise of the gradient's own spread (generalisation enhancement)."""

from . import _modulation
from .spec import MethodSpec

SPEC = MethodSpec(
    name="ogm_ge",
    summary="ogm's k_r, plus zero-mean noise with the gradient's standard deviation",
    settings=_modulation.settings(0.1),
    source="Peng et al., CVPR 2022, arXiv:2203.15332",
    published_default="alpha = 0.1",
    stochastic=True,
    reads_phi=True,
    accumulators=1,
    dynamics="ogm",
    exact_reduction=False,
    noop=_modulation.noop,
    calibration=_modulation.calibration(
        0.1, (0.1, 0.3, 0.8, 2.0),
        "as ogm; its added noise has mean zero, so the toy predicts ogm's expected path"),
    diverge_key="alpha",
)
