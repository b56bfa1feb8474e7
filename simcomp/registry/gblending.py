"""``gblending``: Gradient Blending -- the fused and uni-modal losses weighted by each head's
generalisation-to-overfitting ratio, measured by short probe trainings against a held-out sample.

The probes run between compiled segments (:class:`simcomp.method_hooks.GBlendingHook`:
copies of the weights trained by the compiled plain loop, losses from its forward pass); the
compiled rule trains on the ``aux`` loss with the weights the last probes gave (kept in its
state).  The same
measurement on patterns gives the reduced dynamics (:class:`TheoryHook`).
"""

from __future__ import annotations

from .spec import Calibration, MethodSpec, Setting

O2_FLOOR = 1e-12  # floor on O^2: a head that does not overfit at all must not divide by 0


def blend_weights(LT1, LV1, LTS, LVS):
    """``(wts (H,), G (H,), O (H,))`` from each head's training and held-out losses after
    probe steps 1 and S: G = LV(S) - LV(1), O = (LV(S) - LT(S)) - (LV(1) - LT(1)),
    w = |G| / max(O^2, 1e-12), normalised to sum 1 (all 0: equal weights)."""
    import numpy as np  # here: the registry loads without NumPy
    LT1, LV1, LTS, LVS = (np.asarray(v, dtype=np.float64) for v in (LT1, LV1, LTS, LVS))
    G = LVS - LV1
    O = (LVS - LTS) - (LV1 - LT1)
    w = np.abs(G) / np.maximum(O * O, O2_FLOOR)
    tot = w.sum()
    wts = w / tot if tot > 0.0 else np.full(w.size, 1.0 / w.size)
    return wts, G, O


def recompute_steps(p, steps: int) -> list[int]:
    """Step 0 and, if every > 0, every multiple of every before the horizon."""
    every = int(p["every"])
    if every <= 0:
        return [0]
    return list(range(0, max(int(steps), 1), every))


def head_loss(f, y, w):
    """sum_j w_j l(y_j f_j) in float64 (a probe head's loss)."""
    import numpy as np  # here: the registry loads without NumPy
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.dot(w, np.logaddexp(0.0, -y * np.asarray(f, dtype=np.float64))))


class TheoryHook:
    """The same probes on patterns: uni-modal and plain reduced dynamics (docs/theory.md 15.9)."""

    def __init__(self, p, steps, ctx):
        self.ctx = ctx
        self.S = int(p["probe_steps"])
        self.steps = recompute_steps(p, steps)
        self.wts = self.G = None

    def start(self, a):
        pass

    def __call__(self, t, a, args):
        import numpy as np  # here: the registry loads without NumPy
        ctx = self.ctx
        K = a.shape[0]
        L = np.zeros((4, K + 1))
        for h in range(K + 1):
            ap = a.copy()
            for step in range(1, self.S + 1):
                ap = ctx.probe_step(ap, h)
                if step in (1, self.S):
                    row = 0 if step == 1 else 2
                    g = ctx.head_output(ap, h)
                    L[row, h] = ctx.loss(g, ctx.w)
                    L[row + 1, h] = ctx.loss(g, ctx.w_holdout)
        wts, G, _ = blend_weights(L[0], L[1], L[2], L[3])
        self.wts, self.G = wts, G
        args["fused_weight"] = float(wts[K])
        args["aux_weight"][:] = wts[:K]

    def stats(self, t0, t1, stats):
        K = self.G.size - 1
        stats[0, t0:t1, :] = self.G[:K]
        stats[1, t0:t1, :] = self.wts[K]
        stats[2, t0:t1, :] = self.wts[:K]


def _rate(kappa, p, col, **_):
    # the aux form; before the first probes nothing is known, so the race uses equal weights
    K = kappa.shape[0]
    return kappa * (2.0 / (K + 1))


# The held-out sample calibrate would use: calibrate's toy trains on the population
# (data.population), and a held-out sample drawn from the same distribution is then the
# population itself (as simcomp's population mode does).  Training set and held-out sample
# coincide, so the method's signal -- the gap between them -- is 0 by construction; a
# finite held-out draw would only add a gap set by a size the measurements do not give.
# Its prediction would say that the toy does not overfit, nothing about the user's
# network, so calibrate refuses it (stating this) rather than report a gain.
# (Cost is not the reason: its reduced dynamics with the probes takes about 20 ms on a
# CREMA-D toy configuration of about 160 steps, some 25x the aux dynamics, seconds in all.)
_REFUSED = ("its weights are each head's held-out loss decrease over its overfitting (held-out "
            "minus training loss); calibrate's toy trains on the population, where held-out and "
            "training losses coincide, so the overfitting is 0 and the weights are not the "
            "method's")


SPEC = MethodSpec(
    name="gblending",
    summary="loss wts_0 l(f) + sum_r wts_r l(phi_r), the weights |G| / O^2 (normalised) of each "
            "head's held-out loss decrease G and overfitting O over probe_steps probe steps",
    settings=(Setting("every", "int", 10, lo=0,
                      doc="steps between probe rounds (0: once, at step 0)"),
              Setting("probe_steps", "int", 10, lo=2, doc="steps of each probe training >= 2"),
              Setting("holdout", "count", None, lo=2,
                      doc="held-out sample size >= 2 (data.n_train; population mode: the "
                          "population)")),
    source="Wang, Tran, Feiszli, CVPR 2020, arXiv:1905.12681 (reference implementation: "
           "github.com/GeWu-Lab/BalanceBenchmark balancemm/trainer/GBlending_trainer.py)",
    published_default="online, probes of 10 epochs every 10 epochs (BalanceBenchmark)",
    reads_phi=True,
    dynamics="aux",
    # row 0: the uni-modal heads' weights; row 1: the fused head's (every column); row 2: G_r
    state_shape=lambda K, B, m, n, D: (3, K),
    holdout=True,
    hook="GBlendingHook",
    theory_hook=TheoryHook,
    race_rate=_rate,
    calibration=Calibration(
        "probe_steps", 10.0, (2.0, 5.0, 10.0, 20.0), lo=2.0,
        settings=lambda value, start, K, winner, T: {"probe_steps": int(value)},
        note="the published probes of 10 steps every 10 steps", refused=_REFUSED),
)
