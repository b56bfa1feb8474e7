"""Reduced dynamics of method ``mmcosine`` on two-layer late fusion (docs/theory.md 15.10).

On noise-free sparse-coding data every sample is a (label, presence) pattern P
with x_r = y s_r beta_r v_r, so modality r's hidden unit i sees
z = y s_r beta_r a_{r,i} with a_{r,i} = <w_{r,i}, v_r>, and the gradient of a
hidden row is a multiple of v_r: the state (a_r, u_r) -- the alignments and
modality r's block of the head -- closes exactly.  One GD step of the
pattern-weighted logistic loss of

    f(P) = sum_r 2 s <h_r(P), u_r> / (max(||h_r(P)||, 1e-12) max(||u_r||, 1e-12)),
    h_{r,i}(P) = act(y s_r beta_r a_{r,i}),

is the recursion below; with the run's own initial weights and pattern
weights it is the engine's run itself, step for step (to rounding), and with
the population's pattern weights it is GD on the distribution.  The modality
total weights the engine records are a linear read-out of the outputs on the
training inputs; on noise-free data that read-out is a function of the
patterns alone (:func:`cosine_total_weights`).

Plain NumPy (the theory imports neither the kernels nor the training code).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cosine_dynamics", "cosine_total_weights"]

_FLOOR = 1e-12


def _act(z, activation, q, rho):
    if activation == "linear":
        return z, np.ones_like(z)
    if activation == "relu":
        return np.where(z > 0.0, z, 0.0), (z > 0.0).astype(np.float64)
    zc = np.clip(z, 0.0, rho)
    t = (zc / rho) ** (q - 1.0)
    value = np.where(z <= 0.0, 0.0, np.where(z > rho, z - (1.0 - 1.0 / q) * rho, z * t / q))
    return value, np.where(z <= 0.0, 0.0, np.where(z > rho, 1.0, t))


def _logistic(f, y):
    m = -y * f
    value = np.where(m > 0.0, m + np.log1p(np.exp(-np.abs(m))), np.log1p(np.exp(-np.abs(m))))
    slope = -y * _sigmoid(m)  # d/df of log(1 + e^m), m = -y f
    return value, slope


def _sigmoid(m):
    e = np.exp(-np.abs(m))
    return np.where(m >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def cosine_dynamics(a0, u0, beta, y_pat, s_pat, w_pat, scale: float, lr: float, steps: int,
                    every: int = 1, activation: str = "relu", q: float = 3.0, rho: float = 1.0):
    """GD of mmcosine's two-layer late-fusion network on weighted (label, presence) patterns.

    Parameters
    ----------
    a0 : (K, m) array
        Initial alignments <w_{r,i}, v_r> of each modality's hidden rows.
    u0 : (K, m) array
        Initial head blocks.
    beta : (K,) array
        Signal strengths.
    y_pat, s_pat, w_pat : arrays (P,), (P, K), (P,)
        The patterns' labels, presences and weights (summing to the loss's weight).
    scale : float
        The method's ``scaling`` s.
    lr, steps, every : float, int, int
        Learning rate, number of steps, record interval.

    Returns
    -------
    dict
        ``steps`` (records,), ``outputs`` (records, P) f(P), ``loss`` (records,),
        ``a`` and ``u`` (records, K, m); ``failed``: the first step whose loss was not
        finite, or None.
    """
    a = np.array(a0, dtype=np.float64)
    u = np.array(u0, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64).reshape(-1)
    y = np.asarray(y_pat, dtype=np.float64).reshape(-1)
    s = np.asarray(s_pat, dtype=np.float64)
    w = np.asarray(w_pat, dtype=np.float64).reshape(-1)
    K, m = a.shape
    if u.shape != (K, m) or beta.shape != (K,) or s.shape != (y.shape[0], K) or \
            w.shape != y.shape:
        raise ValueError(f"a0, u0 must be (K, m) = {a.shape}, beta (K,), s_pat (P, K), "
                         "y_pat and w_pat (P,)")
    if not (scale > 0.0 and lr > 0.0 and int(steps) >= 0 and int(every) >= 1):
        raise ValueError("need scale > 0, lr > 0, steps >= 0 and every >= 1")
    coef = (y[:, None] * s * beta[None, :])[:, :, None]  # z = coef * a, (P, K, 1)
    rec = []
    failed = None
    for t in range(int(steps) + 1):
        h, hp = _act(coef * a[None], activation, q, rho)
        nh = np.sqrt(np.sum(h * h, axis=2))                      # (P, K)
        Nh = np.maximum(nh, _FLOOR)
        Nu = np.maximum(np.sqrt(np.sum(u * u, axis=1)), _FLOOR)  # (K,)
        cos = np.sum(h * u[None], axis=2) / (Nh * Nu[None])
        f = 2.0 * scale * cos.sum(axis=1)
        value, slope = _logistic(f, y)
        loss = float(np.sum(w * value))
        if t % every == 0:
            rec.append((t, f.copy(), loss, a.copy(), u.copy()))
        if not np.isfinite(loss):
            failed = t
            break
        if t == steps:
            break
        D = np.where(nh >= _FLOOR, (w * slope)[:, None], 0.0)    # (P, K)
        hhat = h / Nh[:, :, None]
        uhat = u / Nu[:, None]
        gu = np.sum((D * 2.0 * scale / Nu[None])[:, :, None]
                    * (hhat - cos[:, :, None] * uhat[None]), axis=0)
        gh = (D * 2.0 * scale / Nh)[:, :, None] * (uhat[None] - cos[:, :, None] * hhat)
        ga = np.sum(gh * hp * coef, axis=0)
        u = u - lr * gu
        a = a - lr * ga
    return {"steps": np.array([r[0] for r in rec], dtype=np.int64),
            "outputs": np.array([r[1] for r in rec]), "loss": np.array([r[2] for r in rec]),
            "a": np.array([r[3] for r in rec]), "u": np.array([r[4] for r in rec]),
            "failed": failed}


def cosine_total_weights(outputs, beta, y_pat, s_pat, w_pat):
    """The engine's total weight of each modality from the outputs on noise-free patterns.

    The engine reads out the least-squares linear map from the training inputs to the
    outputs and projects modality r's part on its class-mean direction a_r.  With
    x_r = y s_r beta_r v_r (unit v_r, orthogonal blocks) both live on the span of the v_r:
    with Z_{P,r} = y s_r beta_r, M = Z^T W Z, c = pinv(M) Z^T W f and
    alpha_r = beta_r sum_P w_P s_{P,r} (a_r = alpha_r v_r), the total weight is
    c_r / alpha_r.  ``outputs`` is (records, P); returns (records, K).
    """
    y = np.asarray(y_pat, dtype=np.float64)
    s = np.asarray(s_pat, dtype=np.float64)
    w = np.asarray(w_pat, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    Z = y[:, None] * s * beta[None, :]
    M = Z.T @ (w[:, None] * Z)
    alpha = beta * (w @ s)
    c = np.asarray(outputs, dtype=np.float64) @ (w[:, None] * Z) @ np.linalg.pinv(M).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(alpha > 0.0, c / np.where(alpha > 0.0, alpha, 1.0), np.nan)
