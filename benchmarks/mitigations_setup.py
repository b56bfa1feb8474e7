"""The problems of benchmarks/mitigations.py: regimes, method settings, grid and configs.

Regimes are explicit configs (not the embedded default); every method runs at
its published default and across a small grid of its main hyper-parameter.
"""

from __future__ import annotations

from simcomp.config import Config
from simcomp.config_file import build_config
from simcomp.theory.mitigation import DETERMINISTIC_REDUCTION


def modality_sets(r, beta, presence, noise):
    """The --set overrides giving modality r its beta, presence and noise."""
    return [f"data.modality.{r}.beta={beta}", f"data.modality.{r}.presence={presence}",
            f"data.modality.{r}.noise={noise}"]


REGIMES = {
    "competition": ("A beta 3, presence 0.85; B beta 1, presence 1; noise 0.05",
                    modality_sets(0, 3.0, 0.85, 0.05) + modality_sets(1, 1.0, 1.0, 0.05)),
    "weak_better": ("A beta 3, presence 0.6 (absent from 40 % of samples); B beta 1, presence 1; "
                    "noise 0.05: B alone is by far the better network",
                    modality_sets(0, 3.0, 0.6, 0.05) + modality_sets(1, 1.0, 1.0, 0.05)),
    "three": ("K = 3: A beta 3, presence 0.85; B beta 1, presence 1; C beta 1.5, presence 0.7; "
              "noise 0.05",
              modality_sets(0, 3.0, 0.85, 0.05) + modality_sets(1, 1.0, 1.0, 0.05) + modality_sets(2, 1.5, 0.7, 0.05)),
    "high_noise": ("as competition with noise 0.15 on both (sigma sqrt(d) = 1.7)",
                   modality_sets(0, 3.0, 0.85, 0.15) + modality_sets(1, 1.0, 1.0, 0.15)),
}
LOW_NOISE = ("low_noise", "as competition without input noise (the theory's exact setting)",
             modality_sets(0, 3.0, 0.85, 0.0) + modality_sets(1, 1.0, 1.0, 0.0))

# (method, label, overrides(K), published default?)
def _others(K, value):
    return "[" + ", ".join(["1.0"] + [str(value)] * (K - 1)) + "]"


def _first(K, value):
    return "[" + ", ".join([str(value)] + ["0.0"] * (K - 1)) + "]"


SETTINGS = [
    ("none", "", lambda K: [], True),
    ("lr_scale", "c = 2 (all but A)", lambda K: [f"method.lr_scale={_others(K, 2.0)}"], False),
    ("lr_scale", "c = 4 (all but A)", lambda K: [f"method.lr_scale={_others(K, 4.0)}"], False),
    ("lr_scale", "c = 8 (all but A)", lambda K: [f"method.lr_scale={_others(K, 8.0)}"], False),
    ("ogm", "alpha 0.1", lambda K: ["method.alpha=0.1"], True),
    ("ogm", "alpha 0.3", lambda K: ["method.alpha=0.3"], False),
    ("ogm", "alpha 0.8", lambda K: ["method.alpha=0.8"], False),
    ("ogm_ge", "alpha 0.1", lambda K: ["method.alpha=0.1"], True),
    ("ogm_ge", "alpha 0.3", lambda K: ["method.alpha=0.3"], False),
    ("ogm_ge", "alpha 0.8", lambda K: ["method.alpha=0.8"], False),
    ("agm", "alpha 1", lambda K: ["method.alpha=1.0"], True),
    ("agm", "alpha 0.3", lambda K: ["method.alpha=0.3"], False),
    ("agm", "alpha 3", lambda K: ["method.alpha=3.0"], False),
    ("dropout", "d_A 0.3", lambda K: [f"method.drop={_first(K, 0.3)}"], False),
    ("dropout", "d_A 0.5", lambda K: [f"method.drop={_first(K, 0.5)}"], False),
    ("dropout", "d_A 0.7", lambda K: [f"method.drop={_first(K, 0.7)}"], False),
    ("aux", "lambda 1", lambda K: ["method.aux_weight=1.0"], True),
    ("aux", "lambda 0.3", lambda K: ["method.aux_weight=0.3"], False),
    ("aux", "lambda 3", lambda K: ["method.aux_weight=3.0"], False),
    ("alternating", "mix 1", lambda K: [], True),
    ("mmpareto", "", lambda K: [], True),
    ("umt", "lambda 10", lambda K: ["method.distill_weight=10.0"], True),
    ("umt", "lambda 0.3", lambda K: ["method.distill_weight=0.3"], False),
    ("umt", "lambda 1", lambda K: ["method.distill_weight=1.0"], False),
    ("ume", "", lambda K: [], True),
    ("ogm_boost", "boost 4, from step 6", lambda K: [], True),
    ("ogm_boost", "boost 2, from step 6", lambda K: ["method.boost=2.0"], False),
    ("opm", "q_base 0.5, lam 0.5, p_exe 0.7", lambda K: [], True),
    ("opm", "q_base 0.8, lam 0.5, p_exe 0.7", lambda K: ["method.q_base=0.8"], False),
    ("pmr", "alpha 0.6, momentum 0.2", lambda K: [], True),
    ("pmr", "alpha 1, momentum 0.2", lambda K: ["method.alpha=1.0"], False),
    ("inforeg", "prox 0.02, every 10", lambda K: [], True),
    ("inforeg", "prox 0.1, every 10", lambda K: ["method.prox_weight=0.1"], False),
    ("reconboost", "w1 5, w2 1", lambda K: [], True),
    ("reconboost", "w1 2, w2 1", lambda K: ["method.boost_weight=2.0"], False),
    ("relearning", "lambda 3, every 20", lambda K: [], True),
    ("relearning", "lambda 3, every 60", lambda K: ["method.every=60"], False),
    ("gblending", "every 10, 10 probe steps", lambda K: [], True),
    ("gblending", "once, 10 probe steps", lambda K: ["method.every=0"], False),
    ("greedy", "epsilon 0.01, window 5 (analogue)", lambda K: [], True),
    ("greedy", "epsilon 0.001, window 5 (analogue)", lambda K: ["method.epsilon=0.001"], False),
]
# The lab's methods whose population-mode runs follow their reduced dynamics exactly (no
# random draws, the fixed head): read from the registry's flags, so that a method added there
# is checked here too (tests/test_mitigations_setup.py: the lab runs every such method).
DETERMINISTIC = tuple(m for m in dict.fromkeys(s[0] for s in SETTINGS)
                      if m in DETERMINISTIC_REDUCTION)
# gblending trains K + 1 probe copies every `every` steps (docs/performance.md)
COST_TARGET = {"mmpareto": 2.2, "umt": 1.6, "gblending": 5.0}  # others 1.3
HORIZONS = (60, 120, 180, 240, 300)
# A learned alignment keeps growing slowly after it passes the threshold (O(10) by T here);
# beyond this the run is counted as blown up (umt's published weight does this).
UNSTABLE_ALIGNMENT = 1e3
PLANE_P, PLANE_B = (0.2, 1.0), (1.0, 4.0)  # the co-learning plane: presence_A, beta_A


def grid(quick: bool) -> dict:
    if quick:
        return dict(dim=16, n_train=128, n_test=256, width=8, steps=120, seeds=2,
                    settings=[s for s in SETTINGS if s[3]], regimes=["competition", "three"],
                    plane=3, boundary=4, cost_repeats=1)
    return dict(dim=128, n_train=512, n_test=1024, width=16, steps=300, seeds=10,
                settings=SETTINGS, regimes=list(REGIMES), plane=6, boundary=12, cost_repeats=7)


def make_config(g: dict, regime_sets: list, method: str, sets: list, seed: int,
                mode: str = "compare", extra: tuple = ()) -> Config:
    K = 1 + max(int(s.split(".")[2]) for s in regime_sets if s.startswith("data.modality."))
    base = [f"data.modality.{r}.dim={g['dim']}" for r in range(K)]
    if K == 3:
        base.append("data.modality.2.name=C")
    return build_config(None, base + regime_sets + [
        f"data.n_train={g['n_train']}", f"data.n_test={g['n_test']}", f"model.width={g['width']}",
        f"train.steps={g['steps']}", f"train.trace_every={g['steps']}", "train.threads=1",
        f"train.mode={mode}", f"seed={seed}", f"method.name={method}"] + sets + list(extra))


def modality_count(regime_sets):
    """K of a regime: 3 when it sets a third modality, else 2."""
    return 3 if any(s.startswith("data.modality.2.") for s in regime_sets) else 2
