"""``mmcosine``: cosine logits per modality, on the fusion engine's trainable head only.

Each modality's logit is a scaled cosine between its last private encoding
and its block of the fusion head (docs/methods.md).  The fixed-head learner
has no head weights to normalise, so the method exists only where
``model.head = "trainable"`` (two-layer late fusion); the proof-setting
engine refuses it (``needs_trainable_head``), and its reduced dynamics is
the (a, u) recursion of :mod:`simcomp.theory.fusion_cosine`, not a code of
the fixed-head theory (hence ``kernel`` and ``dynamics`` ``"none"`` there:
neither is ever reached for this method).
"""

from .spec import Calibration, MethodSpec, Setting

SPEC = MethodSpec(
    name="mmcosine",
    summary="phi_r = 2 s cos(h_r, u_r): normalised encodings and head blocks (trainable head)",
    settings=(Setting("scaling", "float", 10.0, lo=0.0, hi=1e6, lo_open=True,
                      doc="the scale s of every modality's cosine logit"),),
    source="Xu et al., ICASSP 2023, arXiv:2303.05338; GeWu-Lab/MMCosine_ICASSP23 main_CD.py",
    published_default="scaling = 10 (BalanceBenchmark: 15)",
    kernel="none",
    dynamics="none",
    needs_trainable_head=True,
    diverge_key="scaling",
    calibration=Calibration(
        "scaling", 10.0, (5.0, 10.0, 15.0), lo=0.0, lo_open=True,
        settings=lambda value, start, K, winner, T: {"scaling": value},
        note="the published scale",
        refused="it acts on the fusion head's weights; calibrate's toy and its reduced "
                "dynamics have the fixed head, which has none"),
)
