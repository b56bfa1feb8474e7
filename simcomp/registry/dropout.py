"""``dropout``: modality dropout (each sample loses modality r with probability d_r)."""

from .spec import Calibration, MethodSpec, Setting


def _noop(method):
    if method.drop is not None and all(d == 0.0 for d in method.drop):
        return "method dropout with every method.drop 0 drops nothing"
    return None


def _rate(kappa, p, col, **_):
    return kappa if p["rescale"] else kappa * (1.0 - p["drop"])[col]


SPEC = MethodSpec(
    name="dropout",
    summary="phi_{j,r} dropped from the fused output with probability d_r per sample and step",
    settings=(Setting("drop", "modality", 0.0, lo=0.0, hi=1.0, hi_open=True,
                      doc="d_r in [0, 1) per modality"),
              Setting("rescale", "bool", False, doc="inverted dropout phi_r / (1 - d_r)")),
    source="Neverova et al. (ModDrop), TPAMI 2016, arXiv:1501.00102",
    published_default="no published default (all 0)",
    stochastic=True,
    reads_phi=True,
    exact_reduction=False,
    race_rate=_rate,
    noop=_noop,
    calibration=Calibration(
        "winner_drop", 0.5, (0.1, 0.3, 0.5, 0.7),
        settings=lambda value, start, K, winner, T: {
            "drop": [value if r == winner else 0.0 for r in range(K)]},
        note="no published default; the race winner dropped on half the samples", hi=1.0),
)
