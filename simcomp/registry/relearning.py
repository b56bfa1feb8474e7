"""``relearning``: diagnose each modality by the purity of its features on the training set
against a held-out sample, and softly re-initialise it by the gap (Diagnosing & Re-learning).

The diagnosis and the reset run between compiled segments, in NumPy
(:class:`simcomp.method_hooks.RelearningHook`): every ``every`` steps, at most ``count``
times; the compiled rule trains plainly and reports the last diagnosis.  The same functions
give the reduced dynamics (:class:`TheoryHook`).
"""

from __future__ import annotations

import math

from .spec import Calibration, MethodSpec, Setting

KMEANS_CAP = 300  # Lloyd iterations at most (sklearn's default max_iter)


def purity(X, y, weight) -> float:
    """Weighted purity of the 2-means clustering of the rows of ``X`` (n, p) against labels y.

    Columns are min-max scaled to [-1, 1] over the rows of positive weight (a constant
    column becomes 0); Lloyd's iterations start from the two class means (y = -1 first),
    assign each row to the nearer centre (squared distance, ties to the first) and move
    each centre to the weighted mean of its rows (an empty cluster keeps its centre), until
    the assignment no longer changes or :data:`KMEANS_CAP` iterations.  The purity is the
    weight of each cluster's majority label, summed, over the total weight.
    """
    import numpy as np  # here: the registry loads without NumPy
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    total = float(w.sum())
    pos = w > 0.0
    if total <= 0.0 or not pos.any():
        return 1.0
    lo, hi = X[pos].min(axis=0), X[pos].max(axis=0)
    span = hi - lo
    ok = span > 0.0
    Z = np.zeros_like(X)
    Z[:, ok] = 2.0 * (X[:, ok] - lo[ok]) / span[ok] - 1.0
    centres = np.zeros((2, X.shape[1]))
    for c, label in enumerate((-1.0, 1.0)):
        wc = w * (y == label)
        if wc.sum() > 0.0:
            centres[c] = wc @ Z / wc.sum()
    assign = None
    for _ in range(KMEANS_CAP):
        d0 = ((Z - centres[0]) ** 2).sum(axis=1)
        d1 = ((Z - centres[1]) ** 2).sum(axis=1)
        new = (d1 < d0).astype(np.int64)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for c in range(2):
            wc = w * (assign == c)
            if wc.sum() > 0.0:
                centres[c] = wc @ Z / wc.sum()
    out = 0.0
    for c in range(2):
        inside = assign == c
        out += max(float(w[inside & (y > 0)].sum()), float(w[inside & (y < 0)].sum()))
    return out / total


def reset_steps(p, steps: int) -> list[int]:
    """The steps whose weights are the reset ones: t + 1 for t = every, 2 every, ... (count)."""
    every, count = int(p["every"]), int(p["count"])
    return [k * every + 1 for k in range(1, count + 1) if k * every + 1 <= steps]


def strength(reset_scale: float, purity_train: float, purity_holdout: float) -> float:
    return math.tanh(reset_scale * abs(purity_train - purity_holdout))


class TheoryHook:
    """The same diagnosis and reset on patterns (docs/theory.md 15.7)."""

    def __init__(self, p, steps, ctx):
        self.p, self.ctx = p, ctx
        self.steps = reset_steps(p, steps)
        self.a0 = None
        self.last = None

    def start(self, a):
        self.a0 = a.copy()

    def __call__(self, t, a, args):
        import numpy as np  # here: the registry loads without NumPy
        ctx = self.ctx
        h = ctx.units(a)  # (K, B, m, P)
        K = a.shape[0]
        last = np.zeros((3, K))
        for r in range(K):
            H = h[r].reshape(-1, h.shape[-1]).T
            pt = purity(H, ctx.y, ctx.w)
            pv = purity(H, ctx.y, ctx.w_holdout)
            mix = strength(float(self.p["reset_scale"]), pt, pv)
            a[r] = mix * self.a0[r] + (1.0 - mix) * a[r]
            last[:, r] = pt, pv, mix
        self.last = last

    def stats(self, t0, t1, stats):
        """The last diagnosis, reported at every step from the first reset on."""
        if self.last is not None:
            stats[0:3, t0:t1, :] = self.last[:, None, :]


def _noop(method):
    if method.reset_scale == 0.0:
        return "method relearning with method.reset_scale 0 never moves a weight"
    if method.count == 0:
        return "method relearning with method.count 0 never resets"
    return None


# The held-out sample calibrate would use: calibrate's toy trains on the population
# (data.population), and a held-out sample drawn from the same distribution is then the
# population itself (as simcomp's population mode does).  Training set and held-out sample
# coincide, so the method's signal -- the gap between them -- is 0 by construction; a
# finite held-out draw would only add a gap set by a size the measurements do not give.
# Its prediction would say that the toy does not overfit, nothing about the user's
# network, so calibrate refuses it (stating this) rather than report a gain.
_REFUSED = ("its diagnosis is the purity gap between the training set and a held-out sample; "
            "calibrate's toy trains on the population, where the two coincide, so it never "
            "resets and would predict plain training for every setting")


SPEC = MethodSpec(
    name="relearning",
    summary="every `every` steps (count times) each encoder moves towards its initial weights "
            "by tanh(reset_scale |purity on train - purity on held-out|)",
    settings=(Setting("reset_scale", "float", 3.0, lo=0.0,
                      doc="move_lambda >= 0 (strength of the reset per unit of purity gap)"),
              Setting("every", "int", 20, lo=1, doc="steps between diagnoses >= 1"),
              Setting("count", "int", 3, lo=0, doc="number of resets >= 0"),
              Setting("holdout", "count", None, lo=2,
                      doc="held-out sample size >= 2 (data.n_train; population mode: the "
                          "population)")),
    source="Wei, Li, Feng, Hu, ECCV 2024, arXiv:2407.09705 (github.com/GeWu-Lab/"
           "Diagnosing_Relearning_ECCV2024, code/ours.py; BalanceBenchmark "
           "balancemm/trainer/ReLearning_trainer.py)",
    published_default="move_lambda = 3, every 20 epochs, at most 3 times",
    dynamics="none",
    # rows: the last diagnosis (purity on the training set, on the held-out sample, strength),
    # then the number of resets done (column 0)
    state_shape=lambda K, B, m, n, D: (4, K),
    holdout=True,
    hook="RelearningHook",
    theory_hook=TheoryHook,
    noop=_noop,
    calibration=Calibration(
        "reset_scale", 3.0, (1.0, 3.0, 10.0),
        settings=lambda value, start, K, winner, T: {"reset_scale": value},
        note="the published move_lambda (every 20 steps, 3 times)", refused=_REFUSED),
)
