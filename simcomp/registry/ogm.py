"""``ogm``: on-the-fly gradient modulation (slows the modality that is ahead)."""

from . import _modulation
from .spec import MethodSpec

SPEC = MethodSpec(
    name="ogm",
    summary="k_r = 1 - tanh(alpha rho_r) for the modality whose score ratio rho_r > 1",
    settings=_modulation.settings(0.1),
    source="Peng et al., CVPR 2022, arXiv:2203.15332",
    published_default="alpha = 0.1",
    reads_phi=True,
    accumulators=1,
    noop=_modulation.noop,
    calibration=_modulation.calibration(
        0.1, (0.1, 0.3, 0.8, 2.0), "the authors' default alpha (0.8 is their CREMA-D value)"),
    diverge_key="alpha",
)
