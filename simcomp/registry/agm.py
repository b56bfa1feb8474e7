"""``agm``: adaptive gradient modulation (steers each modality's score ratio to its mean)."""

from . import _modulation
from .spec import MethodSpec

SPEC = MethodSpec(
    name="agm",
    summary="k_r = exp(alpha (optimal ratio - ratio)) from the modalities' log-loss scores",
    settings=_modulation.settings(1.0),
    source="Li et al., ICCV 2023, arXiv:2308.07686",
    published_default="alpha = 1.0",
    reads_phi=True,
    accumulators=2,
    state_shape=lambda K, B, m, n, D: (1, K),  # the running mean score of every modality
    noop=_modulation.noop,
    calibration=_modulation.calibration(1.0, (0.1, 0.5, 1.0, 2.0), "the official default"),
    diverge_key="alpha",
)
