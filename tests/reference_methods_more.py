"""Slow, plain-NumPy reference of the second set of methods (docs/methods.md).

The companion of ``reference_methods.py`` (same layout, same learner helpers,
no code shared with the kernels nor with ``simcomp.theory``) for
``ogm_boost``, ``opm``, ``pmr`` and ``inforeg``. Every step recomputes the
forward pass with whole-array NumPy operations, forms the derivative of the
method's loss with respect to each encoder output phi_{j,r} (and, for
``pmr``, with respect to each unit output h_{j,r,b,i}) and turns it into a
weight gradient by the chain rule.

Randomness (``opm``: the execution coin and the masks) is injected by the
caller through ``draws(t, q) -> (executed, delta)``, ``q`` the step's drop
probabilities (K,), ``delta`` an (n, K) array of 0/1, so that a test can
feed the very numbers a kernel drew.
"""

from __future__ import annotations

import numpy as np

from reference_methods import chain, encoder, lprime, sigmoid, signs

METHODS = ("ogm_boost", "opm", "pmr", "inforeg")

DEFAULTS = {
    "ogm_boost": {"boost": 4.0, "start": 6, "stop": None},
    "opm": {"q_base": 0.5, "alpha": 0.5, "execute_prob": 0.7, "start": 6, "stop": None},
    "pmr": {"alpha": 0.6, "momentum": 0.2, "proto_every": 1, "start": 0, "stop": None},
    "inforeg": {"prox_weight": 0.02, "gap_scale": 64.0, "threshold": 0.04, "trace_window": 10,
                "every": 10, "aux_weight": None},
}


def resolve(method, params, K):
    """The method's settings with defaults filled in (per-modality values as (K,) arrays)."""
    p = dict(DEFAULTS[method])
    p.update({k: v for k, v in (params or {}).items() if v is not None})
    if p.get("stop") is None:
        p["stop"] = np.inf
    if method == "inforeg":
        aw = p["aux_weight"]
        p["aux_weight"] = np.ones(K) if aw is None else np.broadcast_to(
            np.asarray(aw, dtype=np.float64), (K,)).copy()
    return p


# --------------------------------------------------------------------------- statistics


def scores(omega, y, phi):
    """OGM's confidence score_r = sum_j omega_j sigmoid(y_j phi_{j,r}), shape (K,)."""
    return omega @ sigmoid(y[:, None] * phi)


def score_ratio(score):
    """ratio_r = score_r / mean of the others' scores (1 for a single modality)."""
    K = score.size
    if K < 2:
        return np.ones(K)
    return score / ((score.sum() - score) / (K - 1))


def ogm_boost_scale(ratio, boost, active):
    """k_r = boost for a modality behind (ratio_r < 1) inside the window, else 1."""
    return np.where(active & (ratio < 1.0), boost, 1.0)


def opm_drop(ratio, q_base, alpha):
    """OPM's drop probabilities q_r (0 unless the modality leads) and theta = mean_r q_r."""
    g = np.tanh(np.maximum(ratio - 1.0, 0.0))
    q = np.where(g > 0.0, np.minimum(1.0, q_base * (1.0 + alpha * g)), 0.0)
    return q, float(q.mean())


def opm_coefficients(omega, y, phi, delta, theta):
    """D (n, K) of one executed OPM step with masks ``delta`` (n, K) and rescale 1 / (1 - theta)."""
    g = 1.0 / (1.0 - theta)
    ft = g * (delta * phi).sum(axis=1)
    return (omega * y * lprime(y * ft))[:, None] * delta * g


# --------------------------------------------------------------------------- pmr


def class_index(y):
    """Prototype index of each label: 0 for y = -1, 1 for y = +1."""
    return (np.asarray(y) > 0).astype(int)


def class_means(H, y, omega):
    """Cm (2, F): the weighted mean feature of each class (0 if a class has no weight)."""
    c = class_index(y)
    out = np.zeros((2, H.shape[1]))
    for k in (0, 1):
        wk = omega * (c == k)
        tot = wk.sum()
        if tot > 0:
            out[k] = wk @ H / tot
    return out


def pmr_margin(H, y, proto):
    """(Delta, d_true, d_other, diff_true, diff_other) of the prototype classifier.

    ``H`` (n, F) features, ``proto`` (2, F); Delta_j = d(h_j, P_{-y_j}) - d(h_j, P_{y_j}).
    """
    c = class_index(y)
    diff_t = H - proto[c]
    diff_o = H - proto[1 - c]
    d_t = np.linalg.norm(diff_t, axis=1)
    d_o = np.linalg.norm(diff_o, axis=1)
    return d_o - d_t, d_t, d_o, diff_t, diff_o


def pmr_unit_coefficients(H, y, omega, proto, lam):
    """E (n, F) = lam omega_j (-sigmoid(-Delta_j)) Gamma_j: the derivative of
    lam sum_j omega_j (-log sigmoid(Delta_j)) with respect to h_j (prototypes constant;
    a zero distance contributes nothing, see :func:`pmr_coincide`)."""
    delta, d_t, d_o, diff_t, diff_o = pmr_margin(H, y, proto)
    c = class_index(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        u_o = np.where(~pmr_coincide(d_o, proto[1 - c])[:, None], diff_o / d_o[:, None], 0.0)
        u_t = np.where(~pmr_coincide(d_t, proto[c])[:, None], diff_t / d_t[:, None], 0.0)
    return (lam * omega * -sigmoid(-delta))[:, None] * (u_o - u_t)


PMR_TOL = 1e-20


def pmr_coincide(d, P):
    """A feature on its prototype (up to rounding): d^2 <= 1e-20 |P|^2. The distance has no
    derivative there; its direction would be rounding noise, so it counts 0."""
    return d * d <= PMR_TOL * np.sum(P * P, axis=-1)


def pmr_loss(Xr, y, omega, Wr, form, q, rho, proto, lam):
    """lam sum_j omega_j (-log sigmoid(Delta_j)) of encoder r's features (prototypes fixed)."""
    _, h, _, _ = encoder(Xr, Wr, form, q, rho)
    H = h.reshape(-1, h.shape[2]).T
    delta = pmr_margin(H, y, proto)[0]
    return float(lam * np.sum(omega * np.logaddexp(0.0, -delta)))


def pmr_unit_grad(Xr, y, omega, Wr, form, q, rho, proto, lam):
    """Hand-written gradient of :func:`pmr_loss` with respect to W_r: sum_j E_{j,b,i} h'(z) x_j."""
    _, h, dh, _ = encoder(Xr, Wr, form, q, rho)
    B, m, n = h.shape
    H = h.reshape(B * m, n).T
    E = pmr_unit_coefficients(H, y, omega, proto, lam).T.reshape(B, m, n)
    return np.einsum("bij,jd->bid", E * dh, Xr)


def pmr_lambda(pscore, alpha, active):
    """lam_r = alpha clip(max_s pscore_s / pscore_r - 1, 0, 1) inside the window, else 0."""
    if not active:
        return np.zeros(pscore.size)
    return alpha * np.clip(pscore.max() / pscore - 1.0, 0.0, 1.0)


# --------------------------------------------------------------------------- inforeg


def inforeg_window_stat(history, window):
    """k = (tr1 - tr2) / tr1 from the closed epoch traces ``history`` (list, oldest first).

    tr1 is the mean of the last ``window`` traces, tr2 of the ``window`` before the newest;
    missing epochs count 0; no history gives 1 (the first epoch), tr1 = 0 gives 0.
    """
    if len(history) == 0:
        return 1.0
    h = [0.0] * (window + 1) + list(history)
    tr1 = sum(h[-window:]) / window
    tr2 = sum(h[-window - 1:-1]) / window
    return (tr1 - tr2) / tr1 if tr1 != 0.0 else 0.0


def inforeg_beta(score, k, prox_weight, gap_scale, threshold):
    """(leader, beta): the leader (argmax score, first on ties) and its proximal strength."""
    K = score.size
    if K < 2:
        return 0, 0.0
    lead = int(np.argmax(score))
    gap = score[lead] - (score.sum() - score[lead]) / (K - 1)
    if k[lead] > threshold and gap > 0.0:
        return lead, float(prox_weight * np.exp(np.tanh(gap_scale * gap)))
    return lead, 0.0


# --------------------------------------------------------------------------- trainer


def train(X, y, omega, W0, *, form="symmetric", q=3.0, rho=1.0, eta=1.0, steps=10,
          method="ogm_boost", params=None, draws=None, signals=None):
    """Full-batch training of the trained encoders under one of :data:`METHODS`.

    Same arguments and outputs as ``reference_methods.train`` (``draws`` replaces its
    ``masks``/``noise`` for ``opm``); the statistics are ``score``, ``ratio``, ``scale``
    and ``cosine`` per step (NaN where undefined), as the kernels record them:

    ========== =============== =================== ====================
    method     score           ratio               scale
    ========== =============== =================== ====================
    ogm_boost  score_r         ratio_r             k_r
    opm        score_r         ratio_r             q_r used (0 outside the window)
    pmr        pscore_r        pscore_r / max      lam_r used
    inforeg    score_r         window statistic k  beta (leader), 0
    ========== =============== =================== ====================

    ``opm`` also returns ``executed`` (steps,) bool.

    ``opm`` and ``pmr`` use statistics of the whole training set that are only known after
    a pass over it: here, as in the kernels, a step uses those of the previous step
    (opm: q_r from the previous step's score ratios, so no dropping at step 0; pmr: the
    prototypes refreshed at the previous refresh step and lam_r from the previous step's
    pscore with the prototypes it used, so no prototypes at step 0 and no pull before
    step 2). The statistics recorded at step t are the step's own scores and the q_r /
    lam_r the step used.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    K = len(X)
    p = resolve(method, params, K)
    X = [np.asarray(Xr, dtype=np.float64) for Xr in X]
    y = np.asarray(y, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    W = [np.array(Wr, dtype=np.float64) for Wr in W0]
    rng = np.random.default_rng(12345)
    if draws is None:
        def draws(t, qd):  # noqa: F811 - a seeded default
            return bool(rng.random() < p["execute_prob"]), \
                (rng.random((y.size, K)) >= qd[None, :]).astype(np.float64)
    stats = {key: np.full((steps, K), np.nan) for key in ("score", "ratio", "scale", "cosine")}
    executed = np.zeros(steps, dtype=bool)
    record = []
    # method state
    proto, lam_state = None, np.zeros(K)  # pmr: prototypes (K, 2, F), lam of the next step
    prev_ratio = None  # opm: the previous step's score ratios
    anchor, history, acc, kwin = None, [[] for _ in range(K)], np.zeros(K), np.ones(K)

    def align():
        return np.stack([signs(Wr.shape[0])[:, None] * np.einsum("bid,d->bi", Wr, v)
                         for Wr, v in zip(W, signals)])

    for t in range(steps):
        if signals is not None:
            record.append(align())
        enc = [encoder(Xr, Wr, form, q, rho) for Xr, Wr in zip(X, W)]
        phi = np.stack([e[3] for e in enc], axis=1)  # (n, K)
        f = phi.sum(axis=1)
        active = p["start"] <= t < p["stop"] if "start" in p else True
        D = (omega * y * lprime(y * f))[:, None] * np.ones((1, K))
        k = np.ones(K)
        extra = [np.zeros_like(Wr) for Wr in W]  # per-unit or weight-space terms
        if method == "ogm_boost":
            sc = scores(omega, y, phi)
            ratio = score_ratio(sc)
            k = ogm_boost_scale(ratio, p["boost"], active)
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = sc, ratio, k
        elif method == "opm":
            # q_r from the previous step's scores (the lag of docs/methods.md)
            qd, theta = np.zeros(K), 0.0
            if active and prev_ratio is not None:
                qd, theta = opm_drop(prev_ratio, p["q_base"], p["alpha"])
            sc = scores(omega, y, phi)
            prev_ratio = score_ratio(sc)
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = sc, prev_ratio, qd
            if active:
                ex, delta = draws(t, qd)
                executed[t] = ex
                if ex:
                    D = opm_coefficients(omega, y, phi, np.asarray(delta, float), theta)
        elif method == "pmr":
            # prototypes and lam from earlier passes (the lag of docs/methods.md): the step
            # uses lam_state, computed at the previous step from its pscore
            H = [e[1].reshape(-1, y.size).T for e in enc]  # (n, B m) per modality
            pscore = np.full(K, np.nan)
            if proto is not None:
                pscore = np.array([omega @ sigmoid(pmr_margin(H[r], y, proto[r])[0])
                                   for r in range(K)])
                for r in range(K):
                    if lam_state[r] != 0.0:
                        B, m, n = enc[r][1].shape
                        E = pmr_unit_coefficients(H[r], y, omega, proto[r],
                                                  lam_state[r]).T.reshape(B, m, n)
                        extra[r] = np.einsum("bij,jd->bid", E * enc[r][2], X[r])
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = \
                pscore, pscore / pscore.max(), lam_state
            lam_state = np.zeros(K)
            if proto is not None and p["start"] <= t + 1 < p["stop"]:
                lam_state = pmr_lambda(pscore, p["alpha"], True)
            if t % p["proto_every"] == 0:
                new = np.stack([class_means(Hr, y, omega) for Hr in H])
                proto = new if proto is None else (1 - p["momentum"]) * new + p["momentum"] * proto
        elif method == "inforeg":
            if t % p["every"] == 0:
                anchor = [Wr.copy() for Wr in W]
                if t > 0:
                    for r in range(K):
                        history[r].append(acc[r])
                    acc = np.zeros(K)
                kwin = np.array([inforeg_window_stat(history[r], p["trace_window"])
                                 for r in range(K)])
            u = y[:, None] * phi
            D = (omega * y)[:, None] * (lprime(y * f)[:, None] + p["aux_weight"][None, :]
                                        * lprime(u))
            sc = scores(omega, y, phi)
            lead, bt = inforeg_beta(sc, kwin, p["prox_weight"], p["gap_scale"], p["threshold"])
            extra[lead] = bt * (W[lead] - anchor[lead])
            scale = np.zeros(K)
            scale[lead] = bt
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = sc, kwin, scale
        for r in range(K):
            grad = chain(X[r], W[r], enc[r][2], D[:, r])
            step = k[r] * grad + extra[r]
            if method == "inforeg":
                acc[r] += float(np.sum(step * step)) / step.size
            W[r] = W[r] - eta * step
    out = {"W": W, **stats}
    if method == "opm":
        out["executed"] = executed
    if signals is not None:
        record.append(align())
        out["alignment"] = np.stack(record)
    return out
