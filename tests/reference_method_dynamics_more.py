"""Slow NumPy reduced dynamics of the second set of methods (docs/theory.md section 15).

The companion of ``reference_method_dynamics.py`` for ``ogm_boost``, ``opm``
(its expected update), ``pmr`` and ``inforeg``: one vectorised NumPy step per GD
step on the population patterns, in alignment coordinates, written from the
formulas of docs/theory.md 15.1-15.8 and sharing no code with the compiled
kernels. The tests compare it with the weight-space reference trainer in
population mode (``reference_methods_more.train``) and with the compiled
theory.
"""

from __future__ import annotations

import itertools

import numpy as np

from reference_method_dynamics import _check_patterns, _lprime, _Patterns, _sigmoid
from reference_methods_more import (
    inforeg_beta,
    inforeg_window_stat,
    ogm_boost_scale,
    opm_drop,
    pmr_coincide,
    pmr_lambda,
    resolve,
    score_ratio,
)
from simcomp.theory.mitigation import MethodDynamics


def _class_means(H, y, w):
    """(2, F) weighted class means of the pattern features H (P, F); class 0 is y = -1."""
    out = np.zeros((2, H.shape[1]))
    for k, lab in ((0, -1.0), (1, 1.0)):
        wk = w * (y == lab)
        if wk.sum() > 0:
            out[k] = wk @ H / wk.sum()
    return out


def _pmr_unit_coef(H, y, w, proto, lam):
    """Y (P, F) of the prototype loss on the patterns (15.4)."""
    c = (y > 0).astype(int)
    diff_t, diff_o = H - proto[c], H - proto[1 - c]
    d_t, d_o = np.linalg.norm(diff_t, axis=1), np.linalg.norm(diff_o, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = (np.where(~pmr_coincide(d_o, proto[1 - c])[:, None], diff_o / d_o[:, None], 0.0)
                 - np.where(~pmr_coincide(d_t, proto[c])[:, None], diff_t / d_t[:, None], 0.0))
    margin = d_o - d_t
    return (lam * w * -_sigmoid(-margin))[:, None] * gamma, margin


def ref_dynamics_more(alignment0, beta, y_pat, s_pat, w_pat, q, rho, eta, steps, method,
                      params=None, learner="symmetric", activation="srelu", threshold=None,
                      record_every=1) -> MethodDynamics:
    """Reduced dynamics (opm: expected update) of one of the four methods."""
    a, beta, y, s, w, form = _check_patterns(alignment0, beta, y_pat, s_pat, w_pat, learner,
                                            activation)
    K, B, m = a.shape
    p = resolve(method, params, K)
    pat = _Patterns(beta, y, s, w, float(q), float(rho), form)
    ysb = (y[:, None] * s * beta[None, :]).T  # (K, P)
    c = np.array([1.0, -1.0])[:B]
    thr = float(rho if threshold is None else threshold)
    rec_steps = np.arange(0, steps + 1, record_every, dtype=np.int64)
    if rec_steps[-1] != steps:
        rec_steps = np.append(rec_steps, np.int64(steps))
    rec = np.empty((rec_steps.size,) + a.shape)
    stats = {key: np.full((steps, K), np.nan) for key in ("score", "ratio", "scale", "cosine")}
    learned = np.full((K, B), -1, dtype=np.int64)
    masks = np.array(list(itertools.product((0.0, 1.0), repeat=K))).reshape(-1, K)
    proto, lam_state, prev_ratio = None, np.zeros(K), None
    anchor, history, acc, kwin = None, [[] for _ in range(K)], np.zeros(K), np.ones(K)
    ri = 0
    for t in range(steps + 1):
        hit = (learned < 0) & (beta[:, None] * a.max(axis=2) >= thr)
        learned[hit] = t
        if rec_steps[ri] == t:
            rec[ri] = a
            ri += 1
        if t == steps:
            break
        _, _, h, dh, phi, dphi = pat.encoders(a)  # h, dh (K, B, m, P); dphi = dh y s beta
        f = phi.sum(axis=1)
        u = y[:, None] * phi
        score = w @ _sigmoid(u)
        active = p["start"] <= t < p["stop"] if "start" in p else True
        D = np.repeat((w * y * _lprime(y * f))[:, None], K, axis=1)
        k = np.ones(K)
        extra = np.zeros_like(a)
        if method == "ogm_boost":
            ratio = score_ratio(score)
            k = ogm_boost_scale(ratio, p["boost"], active)
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = score, ratio, k
        elif method == "opm":
            qd, theta = np.zeros(K), 0.0
            if active and prev_ratio is not None:
                qd, theta = opm_drop(prev_ratio, p["q_base"], p["alpha"])
            prev_ratio = score_ratio(score)
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = score, prev_ratio, qd
            if active:
                e = p["execute_prob"]
                Dm = np.zeros_like(D)
                for delta in masks:
                    prob = float(np.prod(np.where(delta == 1.0, 1.0 - qd, qd)))
                    if prob == 0.0:
                        continue
                    g = 1.0 / (1.0 - theta)
                    ft = g * phi @ delta
                    Dm += prob * (w * y * _lprime(y * ft))[:, None] * (g * delta)[None, :]
                D = (1.0 - e) * D + e * Dm
        elif method == "pmr":
            H = h.transpose(0, 3, 1, 2).reshape(K, y.size, B * m)  # (K, P, F)
            pscore = np.full(K, np.nan)
            if proto is not None:
                coefs = [_pmr_unit_coef(H[r], y, w, proto[r], 1.0) for r in range(K)]
                pscore = np.array([w @ _sigmoid(mg) for _, mg in coefs])
                for r in range(K):
                    Y = lam_state[r] * coefs[r][0].T.reshape(B, m, -1)  # (B, m, P)
                    extra[r] = c[:, None] * np.einsum("bip,bip,p->bi", Y, dh[r], ysb[r])
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = \
                pscore, pscore / pscore.max(), lam_state
            lam_state = np.zeros(K)
            if proto is not None and p["start"] <= t + 1 < p["stop"]:
                lam_state = pmr_lambda(pscore, p["alpha"], True)
            if t % p["proto_every"] == 0:
                new = np.stack([_class_means(H[r], y, w) for r in range(K)])
                proto = new if proto is None else (1 - p["momentum"]) * new + p["momentum"] * proto
        elif method == "inforeg":
            if t % p["every"] == 0:
                anchor = a.copy()
                if t > 0:
                    for r in range(K):
                        history[r].append(acc[r])
                    acc = np.zeros(K)
                kwin = np.array([inforeg_window_stat(history[r], p["trace_window"])
                                 for r in range(K)])
            D = (w * y)[:, None] * (_lprime(y * f)[:, None] + p["aux_weight"][None, :] * _lprime(u))
            lead, bt = inforeg_beta(score, kwin, p["prox_weight"], p["gap_scale"],
                                    p["threshold"])
            extra[lead] = bt * (a[lead] - anchor[lead])
            scale = np.zeros(K)
            scale[lead] = bt
            stats["score"][t], stats["ratio"][t], stats["scale"][t] = score, kwin, scale
        grad = np.einsum("pr,rbip->rbi", D, dphi)
        step = k[:, None, None] * grad + extra
        if method == "inforeg":
            acc += np.sum(step * step, axis=(1, 2))
        a = a - eta * step
    never = np.iinfo(np.int64).max
    first = np.where(learned >= 0, learned, never).min(axis=1)
    return MethodDynamics(
        method=method, steps=rec_steps, alignment=rec, leading_alignment=rec.max(axis=(2, 3)),
        learned_step=np.where(first == never, -1, first).astype(np.int64),
        learned_step_bank=learned, final_alignment=a, **stats)
