"""``lr_scale``: a fixed learning-rate factor per modality."""

from .spec import Calibration, MethodSpec, Setting


def _noop(method):
    if method.lr_scale is not None and all(c == 1.0 for c in method.lr_scale):
        return "method lr_scale with every method.lr_scale 1 scales nothing"
    return None


def _rate(kappa, p, col, **_):
    return kappa * p["lr_scale"][col]


SPEC = MethodSpec(
    name="lr_scale",
    summary="encoder r steps with eta c_r instead of eta",
    settings=(Setting("lr_scale", "modality", 1.0, lo=0.0, lo_open=True,
                      doc="one factor c_r > 0 per modality"),),
    source="the simplest balancing baseline (no single source)",
    published_default="no published default (all 1)",
    lr_setting="lr_scale",
    race_rate=_rate,
    noop=_noop,
    calibration=Calibration(
        "winner_lr", 0.5, (0.1, 0.25, 0.5, 1.0),
        settings=lambda value, start, K, winner, T: {
            "lr_scale": [value if r == winner else 1.0 for r in range(K)]},
        note="no published default; the race winner's learning rate halved",
        lo=0.0, lo_open=True),
    diverge_key="lr_scale",
)
