"""Slow, plain-NumPy reference of every training method (see docs/methods.md).

Written from the definitions, deliberately sharing no code with the compiled
kernels nor with ``simcomp.theory.mitigation``: every step recomputes the
forward pass with whole-array NumPy operations, forms the derivative of the
method's loss with respect to each encoder output phi_{j,r}, and turns it
into a weight gradient by the chain rule.

Layout: ``X`` is a list over the trained modalities of (n, d_r) arrays,
``W`` a list of (B, m, d_r) weight arrays (bank 0 has sign c = +1, bank 1
c = -1); ``form`` is "symmetric", "class_banks" (srelu) or "relu" (class
banks with plain ReLU).

The general step (one per t = 0..steps-1) is

    W_r <- W_r - eta_r * ( k_r(t) * sum_j D_{j,r} d phi_{j,r}/d W_r + xi_r(t) [+ distillation] )

where D_{j,r} = g_{j,r} y_j is the derivative of the method's loss with
respect to phi_{j,r}.  mmpareto forms two such gradients and combines them.

Randomness (dropout masks, ogm_ge noise) is injected by the caller through
``masks(t) -> (n, K) array of 0/1`` and ``noise(t, r, shape) -> standard
normal array``, so that a test can feed the very numbers a kernel drew.
"""

from __future__ import annotations

import numpy as np

METHODS = ("none", "lr_scale", "ogm", "ogm_ge", "agm", "dropout", "aux", "alternating",
           "mmpareto", "umt")

DEFAULTS = {
    "lr_scale": None, "alpha": None, "start": 0, "stop": None, "drop": None, "rescale": False,
    "fused_weight": 1.0, "aux_weight": None, "mix": None, "distill_weight": 10.0,
}


# --------------------------------------------------------------------------- learner


def srelu(z, q, rho):
    z = np.asarray(z, dtype=np.float64)
    zc = np.minimum(np.maximum(z, 0.0), rho)
    return np.where(z <= 0, 0.0, np.where(z <= rho, zc**q / (q * rho ** (q - 1)), z - (1 - 1 / q) * rho))


def srelu_prime(z, q, rho):
    z = np.asarray(z, dtype=np.float64)
    zc = np.minimum(np.maximum(z, 0.0), rho)
    return np.where(z <= 0, 0.0, np.where(z <= rho, (zc / rho) ** (q - 1), 1.0))


def unit(z, form, q, rho):
    """Unit output h = psi(z) (symmetric) or act(z) (class banks), and its derivative."""
    if form == "symmetric":
        return np.sign(z) * srelu(np.abs(z), q, rho), srelu_prime(np.abs(z), q, rho)
    if form == "class_banks":
        return srelu(z, q, rho), srelu_prime(z, q, rho)
    if form == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(np.float64)
    raise ValueError(f"unknown learner form {form!r}")


def signs(B):
    return np.array([1.0, -1.0])[:B]


def encoder(Xr, Wr, form, q, rho):
    """Pre-activations z (B, m, n), unit outputs h, their derivative dh and phi (n,)."""
    z = np.einsum("bid,jd->bij", Wr, Xr)
    h, dh = unit(z, form, q, rho)
    phi = np.einsum("b,bij->j", signs(Wr.shape[0]), h)
    return z, h, dh, phi


def chain(Xr, Wr, dh, D):
    """sum_j D_j d phi_j / d W_r = sum_j D_j c_b h'(z_{b,i,j}) X_j, shape of W_r."""
    c = signs(Wr.shape[0])
    return np.einsum("bij,jd->bid", c[:, None, None] * dh * D[None, None, :], Xr)


def sigmoid(u):
    return np.exp(-np.logaddexp(0.0, -u))


def lprime(u):
    """l'(u) = -sigmoid(-u) for l(u) = log(1 + e^-u)."""
    return -sigmoid(-u)


def softplus_neg(u):
    return np.logaddexp(0.0, -u)


# --------------------------------------------------------------------------- method losses


def aux_loss(X, y, omega, W, form, q, rho, fused_weight, aux_weight):
    """w_0 L(f) + sum_r lambda_r L(phi_r)."""
    phis = [encoder(Xr, Wr, form, q, rho)[3] for Xr, Wr in zip(X, W)]
    f = np.sum(phis, axis=0)
    out = fused_weight * np.sum(omega * softplus_neg(y * f))
    for lam, phi in zip(aux_weight, phis):
        out += lam * np.sum(omega * softplus_neg(y * phi))
    return float(out)


def aux_grad(X, y, omega, W, form, q, rho, fused_weight, aux_weight):
    """Hand-written gradient of :func:`aux_loss`: D_{j,r} = omega_j y_j (w_0 l'(y f) + lambda_r l'(y phi_r))."""
    enc = [encoder(Xr, Wr, form, q, rho) for Xr, Wr in zip(X, W)]
    f = np.sum([e[3] for e in enc], axis=0)
    out = []
    for r, (Xr, Wr) in enumerate(zip(X, W)):
        D = omega * y * (fused_weight * lprime(y * f) + aux_weight[r] * lprime(y * enc[r][3]))
        out.append(chain(Xr, Wr, enc[r][2], D))
    return out


def fused_loss(X, y, omega, W, form, q, rho):
    f = np.sum([encoder(Xr, Wr, form, q, rho)[3] for Xr, Wr in zip(X, W)], axis=0)
    return float(np.sum(omega * softplus_neg(y * f)))


def unimodal_loss(Xr, y, omega, Wr, form, q, rho):
    phi = encoder(Xr, Wr, form, q, rho)[3]
    return float(np.sum(omega * softplus_neg(y * phi)))


def mmpareto_grads(X, y, omega, W, form, q, rho):
    """Per encoder r: (g_m, g_u), the gradients of L(f) and of L(phi_r) with respect to W_r."""
    enc = [encoder(Xr, Wr, form, q, rho) for Xr, Wr in zip(X, W)]
    f = np.sum([e[3] for e in enc], axis=0)
    out = []
    for r, (Xr, Wr) in enumerate(zip(X, W)):
        g_m = chain(Xr, Wr, enc[r][2], omega * y * lprime(y * f))
        g_u = chain(Xr, Wr, enc[r][2], omega * y * lprime(y * enc[r][3]))
        out.append((g_m, g_u))
    return out


def umt_loss(X, y, omega, W, form, q, rho, distill_weight, teacher_units):
    """L(f) + lambda sum_r sum_j omega_j (1/m_r) sum_i (h_{j,r,i} - hT_{j,r,i})^2, m_r = B m."""
    out = fused_loss(X, y, omega, W, form, q, rho)
    for r, (Xr, Wr) in enumerate(zip(X, W)):
        _, h, _, _ = encoder(Xr, Wr, form, q, rho)
        m_r = h.shape[0] * h.shape[1]
        out += distill_weight * np.sum(omega * np.sum((h - teacher_units[r]) ** 2, axis=(0, 1))) / m_r
    return float(out)


def umt_grad(X, y, omega, W, form, q, rho, distill_weight, teacher_units):
    """Hand-written gradient of :func:`umt_loss`."""
    enc = [encoder(Xr, Wr, form, q, rho) for Xr, Wr in zip(X, W)]
    f = np.sum([e[3] for e in enc], axis=0)
    out = []
    for r, (Xr, Wr) in enumerate(zip(X, W)):
        _, h, dh, _ = enc[r]
        grad = chain(Xr, Wr, dh, omega * y * lprime(y * f))
        m_r = h.shape[0] * h.shape[1]
        coef = distill_weight * (2.0 / m_r) * omega[None, None, :] * (h - teacher_units[r]) * dh
        out.append(grad + np.einsum("bij,jd->bid", coef, Xr))
    return out


def mmpareto_combine(g_m, g_u):
    """MMPareto's combination of one encoder's two gradients: (direction, cosine, scale).

    Returns the update direction 1.5 max(1, |g_m + g_u| / |new|) new, with
    new = 2 k0 g_m + 2 k1 g_u, (k0, k1) = (1/2, 1/2) when cos(g_m, g_u) > 0
    and the min-norm weights (clipped to [0.001, 0.999]) otherwise; the
    cosine; and the factor 1.5 max(1, ...).
    """
    a, b = g_m.ravel(), g_u.ravel()
    nm, nu = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(a @ b / (nm * nu)) if nm > 0 and nu > 0 else 0.0
    if cos > 0:
        k0 = 0.5
    else:
        diff = a - b
        den = float(diff @ diff)
        k0 = float(np.clip((b @ b - a @ b) / den, 0.001, 0.999)) if den > 0 else 0.5
    new = 2 * k0 * g_m + 2 * (1 - k0) * g_u
    n_new = np.linalg.norm(new)
    scale = 1.5 * max(1.0, float(np.linalg.norm(a + b) / n_new)) if n_new > 0 else 1.5
    return scale * new, cos, scale


# --------------------------------------------------------------------------- scales k_r


def _others_mean(x):
    K = x.size
    return (x.sum() - x) / (K - 1)


def ogm_scale(score, alpha):
    """(ratio, k) of OGM: rho_r = score_r / mean of the others; k = 1 - tanh(alpha rho) if rho > 1."""
    if score.size < 2:
        return np.full(score.size, np.nan), np.ones(score.size)
    ratio = score / _others_mean(score)
    k = np.where(ratio > 1.0, 1.0 - np.tanh(alpha * ratio), 1.0)
    return ratio, k


def agm_scale(s, sbar, alpha):
    """(ratio, k) of AGM from the step's scores s and the running mean sbar."""
    if s.size < 2:
        return np.full(s.size, np.nan), np.ones(s.size)
    ratio = np.exp(_others_mean(s) - s)
    optimal = np.exp(_others_mean(sbar) - sbar)
    return ratio, np.exp(alpha * np.minimum(optimal - ratio, 10.0))


# --------------------------------------------------------------------------- trainer


def train(X, y, omega, W0, *, form="symmetric", q=3.0, rho=1.0, eta=1.0, steps=10,
          method="none", params=None, teacher_units=None, masks=None, noise=None,
          signals=None, draws=None):
    """Full-batch training of the trained encoders under ``method``.

    Parameters
    ----------
    X : list of (n, d_r) arrays
    y, omega : (n,) arrays
    W0 : list of (B, m, d_r) arrays (copied)
    method : str
        One of :data:`METHODS`.
    params : dict
        The method's settings, as ``make_rule`` takes them (per-modality
        lists of length K = len(X)); missing keys take :data:`DEFAULTS`.
    teacher_units : list of (B, m, n) arrays
        umt: the teachers' unit outputs on the training set.
    masks, noise : callables
        dropout masks ``masks(t) -> (n, K)`` and ogm_ge draws
        ``noise(t, r, shape)``; a seeded default is used when None.
    signals : list of (d_r,) arrays, optional
        Record the alignments c_b <w, v_r> at every step 0..steps.
    draws : callable, optional
        opm's coin and masks ``draws(t, q) -> (executed, delta)``; the methods of
        ``reference_methods_more`` are trained by its ``train``.

    Returns
    -------
    dict
        ``W`` (list of final weights), ``score``, ``ratio``, ``scale``,
        ``cosine`` (each (steps, K), NaN where undefined), and
        ``alignment`` (steps + 1, K, B, m) when ``signals`` is given.
    """
    import reference_methods_more as more  # the second set of methods (imports this module)

    if method in more.METHODS:
        return more.train(X, y, omega, W0, form=form, q=q, rho=rho, eta=eta, steps=steps,
                          method=method, params=params, draws=draws, signals=signals)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    p = dict(DEFAULTS)
    p.update(params or {})
    K = len(X)
    X = [np.asarray(Xr, dtype=np.float64) for Xr in X]
    y = np.asarray(y, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    W = [np.array(Wr, dtype=np.float64) for Wr in W0]
    lr = eta * (np.ones(K) if p["lr_scale"] is None or method != "lr_scale" else np.asarray(p["lr_scale"], float))
    alpha = p["alpha"] if p["alpha"] is not None else {"agm": 1.0}.get(method, 0.1)
    drop = np.zeros(K) if p["drop"] is None else np.asarray(p["drop"], float)
    aux_w = np.ones(K) if p["aux_weight"] is None else np.asarray(p["aux_weight"], float)
    stop = np.inf if p["stop"] is None else p["stop"]
    rng = np.random.default_rng(12345)
    if masks is None:
        masks = lambda t: (rng.random((y.size, K)) >= drop[None, :]).astype(np.float64)  # noqa: E731
    if noise is None:
        noise = lambda t, r, shape: rng.standard_normal(shape)  # noqa: E731
    stats = {key: np.full((steps, K), np.nan) for key in ("score", "ratio", "scale", "cosine")}
    sbar = np.zeros(K)
    record = []

    def align():
        return np.stack([signs(Wr.shape[0])[:, None] * np.einsum("bid,d->bi", Wr, v)
                         for Wr, v in zip(W, signals)])

    for t in range(steps):
        if signals is not None:
            record.append(align())
        enc = [encoder(Xr, Wr, form, q, rho) for Xr, Wr in zip(X, W)]
        phi = np.stack([e[3] for e in enc], axis=1)  # (n, K)
        f = phi.sum(axis=1)
        u = y[:, None] * phi
        active = p["start"] <= t < stop
        k = np.ones(K)
        if method in ("ogm", "ogm_ge"):
            score = omega @ sigmoid(u)
            ratio, k_on = ogm_scale(score, alpha)
            k = k_on if active else k
            stats["score"][t], stats["ratio"][t] = score, ratio
        elif method == "agm":
            s = omega @ (-np.log(np.maximum(sigmoid(u), 1e-8)))
            ratio, k_on = agm_scale(s, sbar, alpha)
            k = k_on if active else k
            stats["score"][t], stats["ratio"][t] = s, ratio
            sbar = (t * sbar + s) / (t + 1)
        # D[:, r] = derivative of the method's loss with respect to phi_{j,r}
        if method == "dropout":
            delta = np.asarray(masks(t), dtype=np.float64)
            gain = delta / (1.0 - drop[None, :]) if p["rescale"] else delta
            ftil = (gain * phi).sum(axis=1)
            D = (omega * y * lprime(y * ftil))[:, None] * gain
        elif method == "aux":
            D = (omega * y)[:, None] * (p["fused_weight"] * lprime(y * f)[:, None] + aux_w[None, :] * lprime(u))
        elif method == "alternating":
            D = (omega * y)[:, None] * lprime(u)
        else:
            D = (omega * y * lprime(y * f))[:, None] * np.ones((1, K))
        if method in ("ogm", "ogm_ge", "agm"):
            stats["scale"][t] = k
        for r in range(K):
            Xr, Wr = X[r], W[r]
            dh = enc[r][2]
            if method == "mmpareto":
                g_m = chain(Xr, Wr, dh, D[:, r])
                g_u = chain(Xr, Wr, dh, omega * y * lprime(u[:, r]))
                step, cos, scale = mmpareto_combine(g_m, g_u)
                stats["cosine"][t, r], stats["scale"][t, r] = cos, scale
            else:
                grad = chain(Xr, Wr, dh, D[:, r])
                step = k[r] * grad
                if method == "ogm_ge" and active:
                    std = np.std(grad, ddof=1) + 1e-8  # over all B*m*d_r entries
                    step = step + std * np.asarray(noise(t, r, grad.shape), dtype=np.float64)
                if method == "umt":
                    h = enc[r][1]
                    m_r = h.shape[0] * h.shape[1]
                    coef = p["distill_weight"] * (2.0 / m_r) * omega[None, None, :] \
                        * (h - teacher_units[r]) * dh
                    step = step + np.einsum("bij,jd->bid", coef, Xr)
            W[r] = Wr - lr[r] * step
    out = {"W": W, **stats}
    if signals is not None:
        record.append(align())
        out["alignment"] = np.stack(record)
    return out


def teacher_unit_outputs(X, y, omega, W0, *, form="symmetric", q=3.0, rho=1.0, eta=1.0, steps=10):
    """umt's teachers: each encoder trained alone (plainly) for ``steps``, then its unit outputs."""
    units = []
    for Xr, Wr in zip(X, W0):
        res = train([Xr], y, omega, [Wr], form=form, q=q, rho=rho, eta=eta, steps=steps)
        units.append(encoder(np.asarray(Xr, float), res["W"][0], form, q, rho)[1])
    return units


def predictor_error(X, y, omega, W, mix, *, form="symmetric", q=3.0, rho=1.0):
    """Weighted error of sign(sum_r mix_r phi_r); an output of exactly 0 counts half."""
    g = np.sum([a * encoder(np.asarray(Xr, float), Wr, form, q, rho)[3]
                for a, Xr, Wr in zip(mix, X, W)], axis=0)
    return float(omega @ ((y * g < 0) + 0.5 * (g == 0)))
