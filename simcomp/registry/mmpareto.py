"""``mmpareto``: the fused and the uni-modal gradient combined along their Pareto direction."""

from .spec import Calibration, MethodSpec


def _rate(kappa, p, col, **_):
    return 3.0 * kappa


SPEC = MethodSpec(
    name="mmpareto",
    summary="per encoder, the Pareto combination of the fused and the uni-modal gradient, scaled",
    source="Wei & Hu, ICML 2024, arXiv:2405.17730",
    published_default="the official rule (no setting)",
    reads_phi=True,
    second_gradient=True,
    race_rate=_rate,
    calibration=Calibration(None, None, (), note="the official rule"),
)
