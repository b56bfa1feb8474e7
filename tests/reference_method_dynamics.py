"""The Python implementation of ``simcomp.theory.mitigation.method_dynamics`` before it
was compiled: the slow reference the compiled kernel is tested against.

Kept as it was (one vectorised NumPy step per GD step, a Python loop over the
steps), so that every method's compiled dynamics can be compared with it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from simcomp.theory.mitigation import MethodDynamics, _resolve


# --------------------------------------------------------------------------- learner on patterns


def _srelu(z, q, rho):
    zc = np.clip(z, 0.0, rho)
    return np.where(z <= 0.0, 0.0, np.where(z <= rho, zc**q / (q * rho ** (q - 1.0)),
                                            z - (1.0 - 1.0 / q) * rho))


def _srelu_prime(z, q, rho):
    zc = np.clip(z, 0.0, rho)
    return np.where(z <= 0.0, 0.0, np.where(z <= rho, (zc / rho) ** (q - 1.0), 1.0))


def _unit(z, form, q, rho):
    """Unit output and derivative: psi (symmetric), srelu or relu (class banks)."""
    if form == "symmetric":
        az = np.abs(z)
        return np.sign(z) * _srelu(az, q, rho), _srelu_prime(az, q, rho)
    if form == "srelu":
        return _srelu(z, q, rho), _srelu_prime(z, q, rho)
    return np.maximum(z, 0.0), (z > 0.0).astype(np.float64)


def _sigmoid(u):
    return np.exp(-np.logaddexp(0.0, -u))


def _lprime(u):
    """l'(u) = -sigmoid(-u), the derivative of log(1 + e^-u)."""
    return -_sigmoid(-u)


@dataclass
class _Patterns:
    beta: np.ndarray  # (K,)
    y: np.ndarray  # (P,)
    s: np.ndarray  # (P, K) float
    w: np.ndarray  # (P,)
    q: float
    rho: float
    form: str  # "symmetric", "srelu" (class banks) or "relu" (class banks)

    def encoders(self, a):
        """z, h, h' of shape (K, B, m, P), phi (P, K) and dphi/da (K, B, m, P) at alignments a."""
        B = a.shape[1]
        c = np.array([1.0, -1.0])[:B]
        ysb = (self.y[:, None] * self.s * self.beta[None, :]).T  # (K, P): y s_r beta_r
        z = c[None, :, None, None] * a[..., None] * ysb[:, None, None, :]
        h, dh = _unit(z, self.form, self.q, self.rho)
        phi = np.einsum("b,rbip->pr", c, h)
        return c, z, h, dh, phi, dh * ysb[:, None, None, :]


def _check_patterns(alignment0, beta, y_pat, s_pat, w_pat, learner, activation):
    a = np.array(alignment0, dtype=np.float64, copy=True)
    beta = np.asarray(beta, dtype=np.float64).reshape(-1)
    y = np.asarray(y_pat, dtype=np.float64).reshape(-1)
    s = np.asarray(s_pat, dtype=np.float64)
    w = np.asarray(w_pat, dtype=np.float64).reshape(-1)
    if learner not in ("symmetric", "class_banks") or activation not in ("srelu", "relu"):
        raise ValueError(f"unknown learner/activation {learner!r}/{activation!r}")
    if learner == "symmetric" and activation != "srelu":
        raise ValueError("the symmetric learner is built from srelu only")
    banks = 1 if learner == "symmetric" else 2
    if a.ndim != 3 or a.shape[0] != beta.size or a.shape[1] != banks or a.shape[2] < 1:
        raise ValueError(
            f"alignment0 must have shape (K_run={beta.size}, B={banks}, m >= 1), got {a.shape}")
    if s.shape != (y.size, beta.size) or w.size != y.size:
        raise ValueError(f"pattern shapes disagree: y {y.shape}, s {s.shape}, w {w.shape}, "
                         f"beta {beta.shape}")
    form = "symmetric" if learner == "symmetric" else activation
    return a, beta, y, s, w, form


# --------------------------------------------------------------------------- one step


def _others_mean(x):
    return (x.sum() - x) / (x.size - 1)


def _mmpareto(g_m, g_u):
    """Combined direction, cosine and scale of MMPareto for one encoder's two gradients."""
    mm, uu, mu = float(np.vdot(g_m, g_m)), float(np.vdot(g_u, g_u)), float(np.vdot(g_m, g_u))
    cos = mu / np.sqrt(mm * uu) if mm > 0.0 and uu > 0.0 else 0.0
    if cos > 0.0:
        k0 = 0.5
    else:
        den = mm + uu - 2.0 * mu  # |g_m - g_u|^2
        k0 = min(max((uu - mu) / den, 0.001), 0.999) if den > 0.0 else 0.5
    new = 2.0 * k0 * g_m + 2.0 * (1.0 - k0) * g_u
    n_new = np.sqrt(float(np.vdot(new, new)))
    n_sum = np.sqrt(mm + uu + 2.0 * mu)
    scale = 1.5 * max(1.0, n_sum / n_new) if n_new > 0.0 else 1.5
    return scale * new, cos, scale


def _loss_derivative(method, p, pat, phi, masks):
    """D (P, K): derivative of the method's loss with respect to phi_r on each pattern."""
    y, w = pat.y, pat.w
    f = phi.sum(axis=1)
    u = y[:, None] * phi
    if method == "dropout":
        # Expected update: average over every mask pattern delta of its probability.
        D = np.zeros_like(phi)
        for delta, prob in masks:
            gain = delta / (1.0 - p["drop"]) if p["rescale"] else delta
            ftil = phi @ gain
            D += prob * (w * y * _lprime(y * ftil))[:, None] * gain[None, :]
        return D
    if method == "aux":
        return (w * y)[:, None] * (p["fused_weight"] * _lprime(y * f)[:, None]
                                  + p["aux_weight"][None, :] * _lprime(u))
    if method in ("alternating", "ume"):
        return (w * y)[:, None] * _lprime(u)
    return np.repeat((w * y * _lprime(y * f))[:, None], phi.shape[1], axis=1)


def _scales(method, p, pat, phi, t, sbar, stats):
    """k_r for the step (ogm, ogm_ge, agm); records score and ratio; updates agm's running mean."""
    K = phi.shape[1]
    k = np.ones(K)
    if method not in ("ogm", "ogm_ge", "agm"):
        return k, sbar
    u = pat.y[:, None] * phi
    active = p["start"] <= t < p["stop"]
    if method == "agm":
        score = pat.w @ (-np.log(np.maximum(_sigmoid(u), 1e-8)))
    else:
        score = pat.w @ _sigmoid(u)
    stats["score"][t] = score
    if K >= 2:
        if method == "agm":
            ratio = np.exp(_others_mean(score) - score)
            optimal = np.exp(_others_mean(sbar) - sbar)
            k_on = np.exp(p["alpha"] * np.minimum(optimal - ratio, 10.0))
        else:
            ratio = score / _others_mean(score)
            k_on = np.where(ratio > 1.0, 1.0 - np.tanh(p["alpha"] * ratio), 1.0)
        stats["ratio"][t] = ratio
        if active:
            k = k_on
    stats["scale"][t] = k
    if method == "agm":
        sbar = (t * sbar + score) / (t + 1)
    return k, sbar


# --------------------------------------------------------------------------- dynamics


def ref_method_dynamics(alignment0, beta, y_pat, s_pat, w_pat, q: float, rho: float, eta: float,
                    steps: int, method: str = "none", params: dict | None = None,
                    learner: str = "symmetric", activation: str = "srelu",
                    threshold: float | None = None, record_every: int = 1,
                    teacher_alignment=None) -> MethodDynamics:
    """Gradient descent under ``method`` on the pattern loss, in alignment coordinates.

    Parameters
    ----------
    alignment0 : array_like, shape (K_run, B, m)
        Initial alignments (B = 1 symmetric, 2 class banks; bank 0 is c = +1).
    beta : array_like, shape (K_run,)
    y_pat, s_pat, w_pat : array_like
        Patterns: labels (P,), presence (P, K_run), weights (P,).
    q, rho, eta : float
    steps : int
        Number of GD steps T.
    method : str
        Any method; ``dropout`` gives the expected-update dynamics and
        ``ogm_ge`` ogm's; ``ume`` is the uni-modal runs (as ``alternating``).
    params : dict, optional
        The method's settings (see :func:`method_params`); missing ones take
        the method defaults.
    learner, activation : str
    threshold : float, optional
        Learn threshold on beta_r * max alignment (default rho).
    record_every : int
    teacher_alignment : array_like, shape (K_run, B, m)
        umt only: the frozen teachers' alignments (see :func:`teacher_alignment`).

    Returns
    -------
    MethodDynamics
    """
    import reference_method_dynamics_more as more  # the second set of methods
    import reference_methods_more

    if method in reference_methods_more.METHODS:
        return more.ref_dynamics_more(alignment0, beta, y_pat, s_pat, w_pat, q, rho, eta, steps,
                                      method, params, learner, activation, threshold,
                                      record_every)
    a, beta, y, s, w, form = _check_patterns(alignment0, beta, y_pat, s_pat, w_pat, learner,
                                            activation)
    K, B, m = a.shape
    p = _resolve(method, params, K)
    steps, record_every = int(steps), int(record_every)
    if steps < 0 or record_every < 1:
        raise ValueError(f"need steps >= 0 and record_every >= 1, got {steps}, {record_every}")
    pat = _Patterns(beta, y, s, w, float(q), float(rho), form)
    teacher_h = None
    if method == "umt":
        if teacher_alignment is None:
            raise ValueError("method umt needs teacher_alignment")
        aT = np.asarray(teacher_alignment, dtype=np.float64)
        if aT.shape != a.shape:
            raise ValueError(f"teacher_alignment must have shape {a.shape}, got {aT.shape}")
        teacher_h = pat.encoders(aT)[2]
    masks = None
    if method == "dropout":
        masks = []
        for bits in itertools.product((0.0, 1.0), repeat=K):
            delta = np.array(bits)
            prob = float(np.prod(np.where(delta == 1.0, 1.0 - p["drop"], p["drop"])))
            masks.append((delta, prob))
    eta_r = float(eta) * (p["lr_scale"] if method == "lr_scale" else np.ones(K))
    thr = float(rho if threshold is None else threshold)
    rec_steps = np.arange(0, steps + 1, record_every, dtype=np.int64)
    if rec_steps[-1] != steps:
        rec_steps = np.append(rec_steps, np.int64(steps))
    rec = np.empty((rec_steps.size,) + a.shape)
    stats = {key: np.full((steps, K), np.nan) for key in ("score", "ratio", "scale", "cosine")}
    learned_bank = np.full((K, B), -1, dtype=np.int64)
    sbar = np.zeros(K)
    ri = 0
    for t in range(steps + 1):
        hit = (learned_bank < 0) & (beta[:, None] * a.max(axis=2) >= thr)
        learned_bank[hit] = t
        if rec_steps[ri] == t:
            rec[ri] = a
            ri += 1
        if t == steps:
            break
        c, z, h, dh, phi, dphi = pat.encoders(a)
        k, sbar = _scales(method, p, pat, phi, t, sbar, stats)
        D = _loss_derivative(method, p, pat, phi, masks)
        grad = np.einsum("pr,rbip->rbi", D, dphi)
        if method == "mmpareto":
            D_u = (w * y)[:, None] * _lprime(y[:, None] * phi)
            grad_u = np.einsum("pr,rbip->rbi", D_u, dphi)
            step = np.empty_like(grad)
            for r in range(K):
                step[r], stats["cosine"][t, r], stats["scale"][t, r] = _mmpareto(grad[r], grad_u[r])
        else:
            step = k[:, None, None] * grad
        if method == "umt":
            coef = p["distill_weight"] * (2.0 / (B * m)) * w[None, None, None, :] * (h - teacher_h) * dh
            ysb = (y[:, None] * s * beta[None, :]).T
            step = step + c[None, :, None] * np.einsum("rbip,rp->rbi", coef, ysb)
        a = a - eta_r[:, None, None] * step
    never = np.iinfo(np.int64).max
    first = np.where(learned_bank >= 0, learned_bank, never).min(axis=1)
    return MethodDynamics(
        method=method, steps=rec_steps, alignment=rec, leading_alignment=rec.max(axis=(2, 3)),
        learned_step=np.where(first == never, -1, first).astype(np.int64),
        learned_step_bank=learned_bank, final_alignment=a, **stats,
    )
