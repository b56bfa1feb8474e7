"""Slow, plain-NumPy reference of four methods of the second set: ``reconboost``,
``relearning``, ``gblending`` and ``greedy`` (an analogue), see docs/methods.md
("The second set of methods") and docs/theory.md section 15.

Two independent transcriptions of each method, written from those pages and
sharing no code with simcomp:

* :func:`train` -- full-batch GD in weight space on samples ``X`` (the layout
  of ``reference_methods.py``: a list of (n, d_r) inputs and a list of
  (B, m, d_r) weights, bank 0 has sign c = +1, bank 1 c = -1).  Every step
  recomputes the forward pass, forms the derivative D_{j,r} of the method's
  loss with respect to phi_{j,r} and applies the chain rule.
* :func:`dynamics` -- the same method on (y, s) patterns in alignment
  coordinates (docs/theory.md 15.1: a_{r,b,i} <- a_{r,b,i} - eta k_r
  sum_P D_{P,r} y_P s_{P,r} beta_r h'(z)).

On noise-free samples X_j = y_j s_{j,r} beta_r v_r the two agree to rounding
(tests/test_reference_methods_more_b.py checks it), which is what the
compiled kernels and the package's reduced dynamics are then held to.

Held-out data (``relearning``, ``gblending``): :func:`train` takes
``holdout = (Xh, yh, omega_h)``, :func:`dynamics` a second weight vector
``w_holdout`` over the same patterns (a noise-free held-out sample is the same
patterns with its own empirical weights; in population mode it is the
population itself, ``w_holdout = w``).
"""

from __future__ import annotations

import numpy as np

from reference_methods import chain, encoder, lprime, sigmoid, signs, softplus_neg, unit

METHODS = ("reconboost", "relearning", "gblending", "greedy")

DEFAULTS = {
    "reconboost": {"boost_steps": 4, "correct_steps": 4, "boost_weight": 5.0,
                   "ensemble_weight": 1.0},
    "relearning": {"reset_scale": 3.0, "every": 20, "count": 3},
    "gblending": {"every": 10, "probe_steps": 10},
    "greedy": {"epsilon": 0.01, "window": 5, "start": 2},
}

O2_FLOOR = 1e-12  # gblending's floor on O^2
KMEANS_CAP = 300  # relearning's 2-means: at most this many Lloyd iterations


def resolve(method, params):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    p = dict(DEFAULTS[method])
    for key, value in dict(params or {}).items():
        if key not in p:
            raise ValueError(f"{method} takes no setting {key!r}")
        p[key] = value
    return p


# --------------------------------------------------------------------------- shared pieces


def reconboost_schedule(t, K, boost_steps, correct_steps):
    """The encoder boosted at step t, or None in a correcting step."""
    L = boost_steps + correct_steps
    if t % L < boost_steps:
        return (t // L) % K
    return None


def reconboost_coef(phi, y, omega, rs, w1, w2):
    """Boosting step of encoder rs: (D (n, K), k (K,), q (n,)).

    q_j = sigma(y_j (f_j - phi_{j,rs})) is the rest of the ensemble's true-class
    probability (a constant, no gradient); D_{j,rs} = omega_j (w1 - w2 q_j)/2 y_j l'(u_{j,rs}).
    """
    K = phi.shape[1]
    f = phi.sum(axis=1)
    q = sigmoid(y * (f - phi[:, rs]))
    D = np.zeros_like(phi)
    D[:, rs] = omega * (w1 - w2 * q) / 2.0 * y * lprime(y * phi[:, rs])
    k = np.zeros(K)
    k[rs] = 1.0
    return D, k, q


def reconboost_loss(phi_rs, y, omega, q, w1, w2):
    """The boosted learner's loss with q held constant:
    sum_j omega_j (w1 - w2 q_j)/2 l(u_{j,rs})."""
    return float(np.sum(omega * (w1 - w2 * q) / 2.0 * softplus_neg(y * phi_rs)))


def soft_accuracy(g, y, omega):
    return float(np.sum(omega * sigmoid(y * g)))


def greedy_util(phi, y, omega):
    """util_r = (S(f) - S(f - phi_r)) / S(f), S(g) = sum_j omega_j sigma(y_j g_j)."""
    f = phi.sum(axis=1)
    S = soft_accuracy(f, y, omega)
    return np.array([(S - soft_accuracy(f - phi[:, r], y, omega)) / S
                     for r in range(phi.shape[1])])


def greedy_coef(phi, y, omega, c, mbar):
    """Re-balancing step caring for modality c: D (n, K).

    ``mbar`` (K,) are the modalities' mean outputs sum_j omega_j phi_{j,s} measured at the
    previous step (the stand-in for the published running mean): encoder c trains on
    l(y (phi_c + sum_{s != c} mbar_s)), the others plainly.
    """
    K = phi.shape[1]
    f = phi.sum(axis=1)
    D = (omega * y * lprime(y * f))[:, None] * np.ones((1, K))
    g = phi[:, c] + (mbar.sum() - mbar[c])
    D[:, c] = omega * y * lprime(y * g)
    return D


class GreedyController:
    """The threshold-and-window controller of the greedy analogue (plain Python)."""

    def __init__(self, epsilon, window, start):
        self.epsilon, self.window, self.start = float(epsilon), int(window), int(start)
        self.curating, self.caring, self.counter = False, -1, 0

    def step(self, t, util):
        """The modality cared for at step t (-1: a plain step); advances the state."""
        if self.curating:
            c = self.caring
            self.counter += 1
            if self.counter == self.window:
                self.curating = False
            return c
        if t >= self.start and util.max() - util.min() > self.epsilon:
            self.curating, self.caring, self.counter = True, int(np.argmin(util)), 0
        return -1


def purity(X, y, omega):
    """Weighted purity of the 2-means clustering of the rows of X (n, p).

    Columns min-max scaled to [-1, 1] over the rows of positive weight (a
    constant column becomes 0); Lloyd's iterations from the two class means
    (y = -1 first), nearest centre by squared distance with ties to cluster 0,
    weighted means as centres (an empty cluster keeps its centre), until the
    assignment no longer changes or KMEANS_CAP iterations; then the sum over
    the clusters of the weight of their majority label over the total weight.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    pos = omega > 0
    total = omega.sum()
    if not pos.any() or total <= 0:
        return 1.0
    lo = X[pos].min(axis=0)
    hi = X[pos].max(axis=0)
    span = hi - lo
    Z = np.where(span > 0, 2.0 * (X - lo) / np.where(span > 0, span, 1.0) - 1.0, 0.0)
    centres = np.zeros((2, X.shape[1]))
    for c, lab in enumerate((-1.0, 1.0)):
        wc = omega * (y == lab)
        if wc.sum() > 0:
            centres[c] = wc @ Z / wc.sum()
    assign = None
    for _ in range(KMEANS_CAP):
        d0 = ((Z - centres[0]) ** 2).sum(axis=1)
        d1 = ((Z - centres[1]) ** 2).sum(axis=1)
        new = np.where(d1 < d0, 1, 0)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for c in range(2):
            wc = omega * (assign == c)
            if wc.sum() > 0:
                centres[c] = wc @ Z / wc.sum()
    out = 0.0
    for c in range(2):
        inside = assign == c
        out += max(np.sum(omega[inside & (y > 0)]), np.sum(omega[inside & (y < 0)]))
    return float(out / total)


def relearning_strength(reset_scale, purity_train, purity_holdout):
    return float(np.tanh(reset_scale * abs(purity_train - purity_holdout)))


def gblending_weights(LT1, LV1, LTS, LVS):
    """(wts (K+1,), G (K+1,), O (K+1,)) from each head's losses after probe steps 1 and S."""
    LT1, LV1, LTS, LVS = (np.asarray(v, dtype=np.float64) for v in (LT1, LV1, LTS, LVS))
    G = LVS - LV1
    O = (LVS - LTS) - (LV1 - LT1)
    w = np.abs(G) / np.maximum(O * O, O2_FLOOR)
    tot = w.sum()
    wts = w / tot if tot > 0 else np.full(w.size, 1.0 / w.size)
    return wts, G, O


def aux_coef(phi, y, omega, fused_weight, aux_weight):
    f = phi.sum(axis=1)
    return (omega * y)[:, None] * (fused_weight * lprime(y * f)[:, None]
                                   + np.asarray(aux_weight)[None, :] * lprime(y[:, None] * phi))


# --------------------------------------------------------------------------- weight space


def _phis(X, W, form, q, rho):
    enc = [encoder(Xr, Wr, form, q, rho) for Xr, Wr in zip(X, W)]
    return enc, np.stack([e[3] for e in enc], axis=1)


def _gblending_probe_ws(X, y, omega, W, holdout, form, q, rho, eta, S):
    """Each head's (LT(1), LV(1), LT(S), LV(S)); heads 0..K-1 uni-modal, K fused."""
    Xh, yh, oh = holdout
    K = len(X)
    out = np.zeros((4, K + 1))
    for h in range(K + 1):
        Wp = [w.copy() for w in W]
        for s in range(1, S + 1):
            enc, phi = _phis(X, Wp, form, q, rho)
            f = phi.sum(axis=1)
            if h < K:
                D = omega * y * lprime(y * phi[:, h])
                Wp[h] = Wp[h] - eta * chain(X[h], Wp[h], enc[h][2], D)
            else:
                D = omega * y * lprime(y * f)
                Wp = [Wr - eta * chain(Xr, Wr, e[2], D) for Xr, Wr, e in zip(X, Wp, enc)]
            if s in (1, S):
                _, phi = _phis(X, Wp, form, q, rho)
                _, phih = _phis(Xh, Wp, form, q, rho)
                g, gh = (phi[:, h], phih[:, h]) if h < K else (phi.sum(axis=1), phih.sum(axis=1))
                LT = float(np.sum(omega * softplus_neg(y * g)))
                LV = float(np.sum(oh * softplus_neg(yh * gh)))
                if s == 1:
                    out[0, h], out[1, h] = LT, LV
                if s == S:
                    out[2, h], out[3, h] = LT, LV
    return out


def train(X, y, omega, W0, *, method, params=None, form="symmetric", q=3.0, rho=1.0, eta=1.0,
          steps=10, holdout=None, signals=None):
    """Full-batch training under one of :data:`METHODS` (weight space).

    Returns a dict: ``W`` (final weights), ``score``, ``ratio``, ``scale`` ((steps, K),
    NaN where undefined), ``cared`` (greedy: the cared modality per step, -1 none),
    ``resets`` (relearning: list of (t, w (K,))), ``wts`` (gblending: (steps, K+1)),
    and ``alignment`` (steps + 1, K, B, m) when ``signals`` is given.
    """
    p = resolve(method, params)
    K = len(X)
    X = [np.asarray(Xr, dtype=np.float64) for Xr in X]
    y = np.asarray(y, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    W = [np.array(Wr, dtype=np.float64) for Wr in W0]
    Winit = [w.copy() for w in W]
    if holdout is not None:
        holdout = ([np.asarray(v, dtype=np.float64) for v in holdout[0]],
                   np.asarray(holdout[1], dtype=np.float64),
                   np.asarray(holdout[2], dtype=np.float64))
    stats = {key: np.full((steps, K), np.nan) for key in ("score", "ratio", "scale")}
    out = {"cared": np.full(steps, -1), "resets": [], "wts": np.full((steps, K + 1), np.nan)}
    ctl = GreedyController(p["epsilon"], p["window"], p["start"]) if method == "greedy" else None
    wts = G = None
    mbar = np.zeros(K)  # greedy: the mean outputs of the previous step
    last = None  # relearning: (purity_T, purity_V, w) of the last reset
    done = 0
    record = []

    def align():
        return np.stack([signs(Wr.shape[0])[:, None] * np.einsum("bid,d->bi", Wr, v)
                         for Wr, v in zip(W, signals)])

    for t in range(steps):
        if signals is not None:
            record.append(align())
        if method == "gblending" and (t == 0 or (p["every"] > 0 and t % p["every"] == 0)):
            L = _gblending_probe_ws(X, y, omega, W, holdout, form, q, rho, eta, p["probe_steps"])
            wts, G, _ = gblending_weights(*L)
        enc, phi = _phis(X, W, form, q, rho)
        f = phi.sum(axis=1)
        k = np.ones(K)
        D = (omega * y * lprime(y * f))[:, None] * np.ones((1, K))
        if method == "reconboost":
            rs = reconboost_schedule(t, K, p["boost_steps"], p["correct_steps"])
            if rs is not None:
                D, k, qv = reconboost_coef(phi, y, omega, rs, p["boost_weight"],
                                           p["ensemble_weight"])
                stats["score"][t, rs] = float(omega @ qv)
            stats["scale"][t] = k
        elif method == "greedy":
            util = greedy_util(phi, y, omega)
            c = ctl.step(t, util)
            if c >= 0:
                D = greedy_coef(phi, y, omega, c, mbar)
            mbar = omega @ phi
            stats["score"][t] = util
            stats["scale"][t] = 0.0
            if c >= 0:
                stats["scale"][t, c] = 1.0
            out["cared"][t] = c
        elif method == "gblending":
            D = aux_coef(phi, y, omega, wts[K], wts[:K])
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = G[:K], wts[K], wts[:K]
            out["wts"][t] = wts
        # relearning: the last diagnosis, reported from the step after it
        if method == "relearning" and last is not None:
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = last
        W = [Wr - eta * k[r] * chain(X[r], Wr, enc[r][2], D[:, r]) for r, Wr in enumerate(W)]
        if method == "relearning" and t > 0 and t % p["every"] == 0 and done < p["count"]:
            Xh, yh, oh = holdout
            w_r = np.zeros(K)
            pt, pv = np.zeros(K), np.zeros(K)
            for r in range(K):
                hT = encoder(X[r], W[r], form, q, rho)[1]  # (B, m, n)
                hV = encoder(Xh[r], W[r], form, q, rho)[1]
                pt[r] = purity(hT.reshape(-1, hT.shape[-1]).T, y, omega)
                pv[r] = purity(hV.reshape(-1, hV.shape[-1]).T, yh, oh)
                w_r[r] = relearning_strength(p["reset_scale"], pt[r], pv[r])
            W = [w_r[r] * Winit[r] + (1.0 - w_r[r]) * W[r] for r in range(K)]
            done += 1
            out["resets"].append((t, w_r.copy()))
            last = (pt, pv, w_r)
    out.update(W=W, **stats)
    if signals is not None:
        record.append(align())
        out["alignment"] = np.stack(record)
    return out


# --------------------------------------------------------------------------- patterns


class Patterns:
    """Noise-free patterns: labels y (P,), presence s (P, K), weights w (P,), and the learner."""

    def __init__(self, beta, y, s, w, form="symmetric", q=3.0, rho=1.0):
        self.beta = np.asarray(beta, dtype=np.float64).reshape(-1)
        self.y = np.asarray(y, dtype=np.float64).reshape(-1)
        self.s = np.asarray(s, dtype=np.float64)
        self.w = np.asarray(w, dtype=np.float64).reshape(-1)
        self.form, self.q, self.rho = form, float(q), float(rho)
        self.ysb = (self.y[:, None] * self.s * self.beta[None, :]).T  # (K, P)

    def units(self, a):
        """h, h' (K, B, m, P) and phi (P, K) at alignments a (K, B, m)."""
        c = signs(a.shape[1])
        z = c[None, :, None, None] * a[..., None] * self.ysb[:, None, None, :]
        h, dh = unit(z, self.form, self.q, self.rho)
        return h, dh, np.einsum("b,rbip->pr", c, h)

    def grad(self, D, dh):
        """Alignment-space gradient sum_P D_{P,r} h'(z) y s_r beta_r, (K, B, m)."""
        return np.einsum("pr,rbip,rp->rbi", D, dh, self.ysb)

    def loss(self, g, w=None):
        return float(np.sum((self.w if w is None else w) * softplus_neg(self.y * g)))


def _gblending_probe_pat(pat, a, w_hold, eta, S):
    K = a.shape[0]
    y, w = pat.y, pat.w
    out = np.zeros((4, K + 1))
    for h in range(K + 1):
        ap = a.copy()
        for s in range(1, S + 1):
            _, dh, phi = pat.units(ap)
            if h < K:
                D = np.zeros_like(phi)
                D[:, h] = w * y * lprime(y * phi[:, h])
            else:
                D = (w * y * lprime(y * phi.sum(axis=1)))[:, None] * np.ones((1, K))
            ap = ap - eta * pat.grad(D, dh)
            if s in (1, S):
                phi = pat.units(ap)[2]
                g = phi[:, h] if h < K else phi.sum(axis=1)
                LT, LV = pat.loss(g), pat.loss(g, w_hold)
                if s == 1:
                    out[0, h], out[1, h] = LT, LV
                if s == S:
                    out[2, h], out[3, h] = LT, LV
    return out


def dynamics(a0, beta, y, s, w, *, method, params=None, form="symmetric", q=3.0, rho=1.0,
             eta=1.0, steps=10, w_holdout=None, threshold=None):
    """The method on patterns in alignment coordinates (docs/theory.md 15.5-15.7, 15.9).

    Returns a dict: ``alignment`` (steps + 1, K, B, m), ``score``, ``ratio``, ``scale``
    ((steps, K)), ``cared``, ``resets``, ``wts`` as :func:`train`, and
    ``learned_step`` (K,) (first t with beta_r max_{b,i} a >= threshold, -1 never).
    """
    p = resolve(method, params)
    pat = Patterns(beta, y, s, w, form, q, rho)
    a = np.array(a0, dtype=np.float64)
    a_init = a.copy()
    K = a.shape[0]
    yv, wv = pat.y, pat.w
    w_hold = wv if w_holdout is None else np.asarray(w_holdout, dtype=np.float64)
    thr = rho if threshold is None else threshold
    stats = {key: np.full((steps, K), np.nan) for key in ("score", "ratio", "scale")}
    out = {"cared": np.full(steps, -1), "resets": [], "wts": np.full((steps, K + 1), np.nan)}
    ctl = GreedyController(p["epsilon"], p["window"], p["start"]) if method == "greedy" else None
    wts = G = None
    mbar = np.zeros(K)
    last = None
    done = 0
    learned = np.full(K, -1)
    record = []
    for t in range(steps + 1):
        hit = (learned < 0) & (pat.beta * a.max(axis=(1, 2)) >= thr)
        learned[hit] = t
        record.append(a.copy())
        if t == steps:
            break
        if method == "gblending" and (t == 0 or (p["every"] > 0 and t % p["every"] == 0)):
            L = _gblending_probe_pat(pat, a, w_hold, eta, p["probe_steps"])
            wts, G, _ = gblending_weights(*L)
        h, dh, phi = pat.units(a)
        f = phi.sum(axis=1)
        k = np.ones(K)
        D = (wv * yv * lprime(yv * f))[:, None] * np.ones((1, K))
        if method == "reconboost":
            rs = reconboost_schedule(t, K, p["boost_steps"], p["correct_steps"])
            if rs is not None:
                D, k, qv = reconboost_coef(phi, yv, wv, rs, p["boost_weight"],
                                           p["ensemble_weight"])
                stats["score"][t, rs] = float(wv @ qv)
            stats["scale"][t] = k
        elif method == "greedy":
            util = greedy_util(phi, yv, wv)
            c = ctl.step(t, util)
            if c >= 0:
                D = greedy_coef(phi, yv, wv, c, mbar)
            mbar = wv @ phi
            stats["score"][t] = util
            stats["scale"][t] = 0.0
            if c >= 0:
                stats["scale"][t, c] = 1.0
            out["cared"][t] = c
        elif method == "gblending":
            D = aux_coef(phi, yv, wv, wts[K], wts[:K])
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = G[:K], wts[K], wts[:K]
            out["wts"][t] = wts
        if method == "relearning" and last is not None:
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = last
        a = a - eta * k[:, None, None] * pat.grad(D, dh)
        if method == "relearning" and t > 0 and t % p["every"] == 0 and done < p["count"]:
            h = pat.units(a)[0]  # (K, B, m, P)
            w_r = np.zeros(K)
            pt, pv = np.zeros(K), np.zeros(K)
            for r in range(K):
                H = h[r].reshape(-1, h.shape[-1]).T
                pt[r] = purity(H, yv, wv)
                pv[r] = purity(H, yv, w_hold)
                w_r[r] = relearning_strength(p["reset_scale"], pt[r], pv[r])
            a = w_r[:, None, None] * a_init + (1.0 - w_r[:, None, None]) * a
            done += 1
            out["resets"].append((t, w_r.copy()))
            last = (pt, pv, w_r)
    out.update(alignment=np.stack(record), learned_step=learned, **stats)
    return out
