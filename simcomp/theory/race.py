"""The race of the leading neurons: rates, learn times and the winner (docs/model.md 5.1-5.3).

Each modality's leading neuron (the largest initial alignment Gamma) grows by
dLambda/dt = eta kappa Lambda^(q-1); the first to reach the learn threshold
wins.  :func:`race_learn_step` is the closed form, :func:`race_learn_step_iterated`
the one-neuron recursion, :func:`race_learn_step_noisy` the recursion with the
srelu slope smoothed by Gaussian input noise.  Derivations: docs/theory.md
sections 3-5 and 8.
"""

from __future__ import annotations

import numpy as np

from simcomp._jit import jit
from simcomp.interrupts import chunks, deferred
from simcomp.theory.activation import _Q2_TOL, _as_result

__all__ = [
    "rate",
    "race_learn_step",
    "race_learn_step_iterated",
    "race_learn_step_noisy",
    "initial_gamma",
    "predicted_winner",
    "winner_coordinate",
    "phase_boundary",
]


def rate(beta, pi, q: float, rho: float):
    """Growth rate kappa = pi beta^q / (2 rho^(q-1)) of the leading neuron (docs/model.md section 5.1).

    ``pi`` is the weight of the samples on which the modality carries signal
    (per modality, shape (K,), or per bank for class banks, shape (K, B)).
    ``beta`` broadcasts against ``pi``; when ``pi`` has more axes than
    ``beta``, ``beta`` is indexed along the leading axis (beta[:, None]).
    For plain ReLU pass ``q = 1`` (any rho): kappa = pi beta / 2.
    """
    beta = np.asarray(beta, dtype=float)
    pi = np.asarray(pi, dtype=float)
    while beta.ndim < pi.ndim:
        beta = beta[..., None]
    return _as_result(pi * beta**q / (2.0 * rho ** (q - 1.0)))


def race_learn_step(gamma, kappa, beta, q: float, rho: float, eta: float, threshold=None):
    """Predicted learn step of a leading neuron, in (fractional) GD steps (docs/model.md section 5.2).

    The leading alignment grows by dLambda/dt = eta kappa Lambda^(q-1) from
    Lambda(0) = gamma until beta * Lambda reaches ``threshold`` (default
    ``rho``); the forward-Euler lag ((q-1)/2) ln(Lambda_end / gamma) is added.

    * q > 2: (1 - (gamma/Lambda_end)^(q-2)) / ((q-2) eta kappa gamma^(q-2)) + lag,
      evaluated as -expm1(-(q-2) L) / (q-2) with L = ln(Lambda_end/gamma), so
      it is continuous in q at 2;
    * |q - 2| < 1e-12: L / (eta kappa) + L / 2;
    * 1 <= q < 2 uses the same closed form (q = 1 is plain ReLU: constant drift
      eta kappa, no lag).

    If ``threshold > rho`` the neuron leaves srelu's polynomial part at
    Lambda = rho/beta and then grows linearly at eta kappa (rho/beta)^(q-1)
    up to threshold/beta (no lag: Euler is exact for a constant drift).
    ``threshold < rho`` simply moves the target to threshold/beta.

    Returns np.inf where gamma <= 0, kappa <= 0 or eta <= 0, and 0 where
    beta * gamma >= threshold already.  Vectorised over gamma, kappa, beta.
    """
    thr = float(rho if threshold is None else threshold)
    g, k, b = np.broadcast_arrays(
        np.asarray(gamma, dtype=float), np.asarray(kappa, dtype=float),
        np.asarray(beta, dtype=float),
    )
    out = np.full(g.shape, np.inf)
    ok = (g > 0.0) & (k > 0.0) & (eta > 0.0) & np.isfinite(g)
    if not np.any(ok):
        return _as_result(out)
    g, k, b = g[ok], k[ok], b[ok]
    ek = eta * k
    lam_poly = min(thr, rho) / b  # end of the polynomial phase (or the target, if below rho)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        L = np.log(np.maximum(lam_poly / g, 1.0))  # 0 when already past the polynomial phase
        e = q - 2.0
        if abs(e) < _Q2_TOL:
            t_cont = L / ek
        else:
            t_cont = g ** (-e) * (-np.expm1(-e * L)) / e / ek
        t = t_cont + 0.5 * (q - 1.0) * L
        if thr > rho:
            lin_rate = ek * (rho / b) ** (q - 1.0)
            t = t + np.maximum(thr / b - np.maximum(g, rho / b), 0.0) / lin_rate
    t = np.where(b * g >= thr, 0.0, t)
    out[ok] = t
    return _as_result(out)


def race_learn_step_iterated(
    gamma, kappa, beta, q: float, rho: float, eta: float, threshold=None, max_steps: int = 10**7
):
    """The one-neuron recursion, iterated: first n with beta * Lambda_n >= threshold.

    Lambda_{n+1} = Lambda_n + eta kappa min(Lambda_n, rho/beta)^(q-1), Lambda_0 = gamma
    (the min is srelu's linear part, which matters only when threshold > rho).
    Returns an integral float, np.inf when gamma <= 0 or the threshold is not
    reached within ``max_steps``.  Vectorised (element by element) over
    gamma, kappa, beta.
    """
    thr = float(rho if threshold is None else threshold)
    g, k, b = np.broadcast_arrays(
        np.asarray(gamma, dtype=float), np.asarray(kappa, dtype=float),
        np.asarray(beta, dtype=float),
    )
    out = np.full(g.shape, np.inf)
    for idx in np.ndindex(g.shape):
        lam, kk, bb = float(g[idx]), float(k[idx]), float(b[idx])
        if not (lam > 0.0) or not (kk > 0.0) or not (eta > 0.0):
            continue
        step, lam_lin, target = eta * kk, rho / bb, thr / bb
        qm1 = q - 1.0
        n = 0
        while lam < target and n < max_steps:
            lam += step * min(lam, lam_lin) ** qm1
            n += 1
        if lam >= target:
            out[idx] = float(n)
    return _as_result(out)


# Quadrature of E_Z[.] for Z ~ N(0, 1): normal weights on an even grid.  srelu'
# has kinks, so a plain grid is as good as Gauss-Hermite here; 161 points on
# [-8, 8] change no learn step against 801 points in the cases checked.
_Z_GRID = np.linspace(-8.0, 8.0, 161)
_Z_WEIGHT = np.exp(-0.5 * _Z_GRID**2)
_Z_WEIGHT /= _Z_WEIGHT.sum()


@jit()
def _noisy_race_kernel(neurons, form, quad, state, span):
    """Steps ``n0 <= n < n1`` of the iterated noisy race of :func:`race_learn_step_noisy`.

    The race is run in pieces of steps (``span``) so that Python sees a
    signal between two of them (simcomp.interrupts); every neuron does
    exactly the operations of one uninterrupted loop.

    Parameters
    ----------
    neurons : tuple of five (E,) float64 arrays
        (lam0, step, beta, noise, perp): initial alignment, eta kappa
        (rho/beta)^(q-1), signal strength, sigma and |w_perp| per neuron.
    form : tuple (q, rho, thr, symmetric)
        srelu parameters, learn threshold, and whether D is srelu'(|z|).
    quad : tuple of two (J,) float64 arrays
        Standard-normal nodes and weights.
    state : tuple (lam (E,) float64, out (E,) float64, running (E,) bool)
        Each neuron's alignment, its learn step (inf: not yet or never) and
        whether it still races; updated in place.  Start with lam = lam0,
        out = inf, running = True.
    span : tuple (n0, n1)
        The steps of this piece, 1 <= n0 < n1 <= max_steps + 1.

    Returns
    -------
    int
        The number of neurons still racing.
    """
    lam0, step, beta, noise, perp = neurons
    q, rho, thr, symmetric = form
    zg, zw = quad
    lams, out, running = state
    n0, n1 = span
    left = 0
    for e in range(lam0.size):
        if not running[e]:
            continue
        lam, b = lams[e], beta[e]
        if n0 == 1:  # before the first step
            if not step[e] > 0.0:
                running[e] = False
                continue
            if b * lam >= thr:
                out[e] = 0.0
                running[e] = False
                continue
        for n in range(n0, n1):
            tau = noise[e] * np.sqrt(lam * lam + perp[e] * perp[e])
            drift = 0.0
            for j in range(zg.size):
                z = b * lam + tau * zg[j]
                if symmetric:
                    z = abs(z)
                if z > rho:
                    drift += zw[j]
                elif z > 0.0:
                    drift += zw[j] * (z / rho) ** (q - 1.0)
            if drift <= 0.0:  # stuck for good: no noise and srelu'(beta Lambda) = 0
                running[e] = False
                break
            lam += step[e] * drift
            if b * lam >= thr:
                out[e] = float(n)
                running[e] = False
                break
        lams[e] = lam
        if running[e]:
            left += 1
    return left


def race_learn_step_noisy(
    gamma,
    kappa,
    beta,
    q: float,
    rho: float,
    eta: float,
    noise,
    perp_norm,
    threshold=None,
    symmetric: bool = True,
    max_steps: int = 10**5,
):
    """Extension beyond docs/model.md section 5: the race with Gaussian input noise, iterated.

    With noise xi ~ N(0, sigma^2 I) a neuron's pre-activation on a sample
    carrying signal is y beta a + n with n ~ N(0, tau^2),
    tau^2 = sigma^2 (a^2 + |w_perp|^2).  Averaging the signal part of the
    gradient over n replaces srelu'(beta Lambda) by its Gaussian smoothing:

        Lambda <- Lambda + eta kappa (rho/beta)^(q-1) E_Z[D(beta Lambda + tau Z)]

    with D(z) = srelu'(|z|) (symmetric learner) or srelu'(z) (a class bank;
    q = 1 is plain ReLU), ``noise`` = sigma and ``perp_norm`` = |w_perp| held
    at its initial value (about init_scale sqrt(d - 1)).  Noise lifts the
    drift of a small neuron (a neuron at 0 moves at all), so the learn time
    is shorter than the noise-free race, markedly so when beta Gamma is not
    large against tau.  ``gamma`` here is the largest initial alignment, not
    clipped at 0.  Returns the first step n with beta Lambda_n >= threshold
    (integral float), np.inf when kappa <= 0 or not reached within
    ``max_steps``.  Vectorised over gamma, kappa, beta, noise, perp_norm.
    With noise = 0 it is :func:`race_learn_step_iterated`.
    """
    thr = float(rho if threshold is None else threshold)
    arrays = np.broadcast_arrays(*(np.asarray(x, dtype=float)
                                   for x in (gamma, kappa, beta, noise, perp_norm)))
    shape = arrays[0].shape
    lam, k, b, sig, perp = (np.ascontiguousarray(x).reshape(-1) for x in arrays)
    step = eta * k * (rho / b) ** (q - 1.0)  # = eta pi beta / 2
    neurons, form = (lam, step, b, sig, perp), (float(q), float(rho), thr, bool(symmetric))
    state = (lam.copy(), np.full(lam.size, np.inf), np.ones(lam.size, dtype=np.bool_))
    max_steps = int(max_steps)
    # Short compiled calls, so that a signal is seen between them (max_steps = 0 still checks
    # the neurons that start learned, in one empty piece).
    for n0, n1 in chunks(max(max_steps, 1)):
        with deferred():
            left = _noisy_race_kernel(neurons, form, (_Z_GRID, _Z_WEIGHT), state,
                                      (n0 + 1, min(n1, max_steps) + 1))
        if left == 0:
            break
    return _as_result(state[1].reshape(shape))


# --------------------------------------------------------------------------- winner (5.3)


def initial_gamma(alignment0) -> np.ndarray:
    """Gamma, shape (K_run, B): max(0, max over neurons of the initial alignment)."""
    a = np.asarray(alignment0, dtype=float)
    if a.ndim != 3:
        raise ValueError(f"alignment0 must have shape (K_run, B, m), got {a.shape}")
    return np.maximum(a.max(axis=2), 0.0)


def predicted_winner(race_steps) -> int | None:
    """Index of the modality with the smallest finite race step; None if none is finite.

    A 2-D (K, B) input is first reduced by the minimum over banks (a
    modality is learned when its first bank is).  Ties go to the lower index.
    """
    t = np.asarray(race_steps, dtype=float)
    if t.ndim == 2:
        t = t.min(axis=1)
    if t.size == 0 or not np.any(np.isfinite(t)):
        return None
    return int(np.argmin(np.where(np.isfinite(t), t, np.inf)))


def winner_coordinate(kappa, gamma, q: float) -> float:
    """x = ln(kappa_2 Gamma_2^(q-2) / (kappa_1 Gamma_1^(q-2))) for K = 2 (docs/model.md section 5.3).

    x > 0 predicts modality 2 (index 1) wins, x < 0 modality 1.  For q = 2 the
    Gamma term is dropped (leading order).  ``kappa`` and ``gamma`` have a
    leading axis of length 2; with a bank axis (2, B) each modality uses its
    fastest bank (largest kappa Gamma^(q-2)).  A zero Gamma gives -inf for
    its modality's score (it never starts).
    """
    k = np.asarray(kappa, dtype=float)
    g = np.asarray(gamma, dtype=float)
    if k.shape[0] != 2 or g.shape[0] != 2:
        raise ValueError("winner_coordinate is defined for K = 2")
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.log(k)
        if abs(q - 2.0) >= _Q2_TOL:
            score = score + (q - 2.0) * np.log(g)
        score = score.reshape(2, -1).max(axis=1)
        return float(score[1] - score[0])


def phase_boundary(q: float, *, beta_ratio=None, presence_ratio=None, gamma_ratio=1.0):
    """Solve q ln(beta_2/beta_1) + (q-2) ln(Gamma_2/Gamma_1) + ln(p_2/p_1) = 0 (docs/model.md section 5.3).

    Ratios are modality 2 over modality 1.  Give exactly one of
    ``beta_ratio`` / ``presence_ratio``; the other is returned at the
    boundary.  Modality 2 wins on the side where beta_ratio or
    presence_ratio is larger than the returned value.  Vectorised.
    """
    if (beta_ratio is None) == (presence_ratio is None):
        raise ValueError("give exactly one of beta_ratio and presence_ratio")
    lg = (q - 2.0) * np.log(np.asarray(gamma_ratio, dtype=float))
    if beta_ratio is not None:
        return _as_result(np.exp(-q * np.log(np.asarray(beta_ratio, dtype=float)) - lg))
    return _as_result(np.exp((-np.log(np.asarray(presence_ratio, dtype=float)) - lg) / q))
