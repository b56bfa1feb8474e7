"""Theory the simulation is compared with (spec section 5).

Everything here is computed from the configuration, the pattern weights of a
run's training data and the run's initial alignments -- never from the
simulator's kernels, data generator or training loop, so that the two can
not share a mistake.  The derivations are in ``docs/theory.md``.

Conventions shared with the simulator
-------------------------------------
* Alignment arrays have shape ``(K_run, B, m)``: ``B = 1`` for the symmetric
  learner, ``B = 2`` for class banks (bank 0 is c = +1, bank 1 is c = -1).
  An alignment is ``a = c <w, v_r>`` (c = 1 for the symmetric learner), signed
  so that positive points the useful way.
* Noise-free data are described by ``(y, s)`` patterns: ``y_pat`` (P,) of
  +-1, ``s_pat`` (P, K_run) of 0/1 and ``w_pat`` (P,) weights.
  :func:`population_patterns` lists all ``2^(K+1)`` patterns in
  ``itertools.product`` order over ``(y, s_1, ..., s_K)`` with ``y = -1``
  before ``y = +1`` and ``s_r = 0`` before ``s_r = 1``: pattern index
  ``p = [y = +1] * 2^K + sum_r s_r * 2^(K-1-r)`` (the first modality is the
  most significant presence bit).
* A modality is learned at the first step t (t = 0..T, every step checked)
  with ``beta_r * max(alignment) >= threshold``; ``-1`` means never.

This module imports only numpy, :mod:`simcomp.config` and the numba
decorator of :mod:`simcomp._jit` (for its two small kernels: the step loop
of the reduced dynamics and the optional noise-aware race).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from simcomp._jit import jit
from simcomp.config import Config

__all__ = [
    "srelu",
    "srelu_prime",
    "rate",
    "race_learn_step",
    "race_learn_step_iterated",
    "race_learn_step_noisy",
    "population_patterns",
    "presence_fraction",
    "initial_gamma",
    "predicted_winner",
    "ReducedDynamics",
    "reduced_dynamics",
    "pattern_margins",
    "population_loss",
    "test_error_noiseless",
    "test_error_coinflip",
    "Prediction",
    "predict",
    "winner_coordinate",
    "phase_boundary",
]

_LEARNERS = ("symmetric", "class_banks")
_ACTIVATIONS = ("srelu", "relu")
_Q2_TOL = 1e-12  # |q - 2| below this uses the q = 2 (logarithmic) branch


# --------------------------------------------------------------------------- activations


def srelu(z: np.ndarray, q: float, rho: float) -> np.ndarray:
    """Smoothed ReLU: 0, z^q / (q rho^(q-1)), z - (1 - 1/q) rho on z<=0, (0, rho], z>rho."""
    z = np.asarray(z, dtype=float)
    zp = np.maximum(z, 0.0)
    poly = zp**q / (q * rho ** (q - 1.0))
    return np.where(z > rho, z - (1.0 - 1.0 / q) * rho, poly)


def srelu_prime(z: np.ndarray, q: float, rho: float) -> np.ndarray:
    """Derivative of :func:`srelu`: 0, (z/rho)^(q-1), 1 on the same pieces."""
    z = np.asarray(z, dtype=float)
    zp = np.maximum(z, 0.0)
    return np.where(z > rho, 1.0, np.where(z > 0.0, (zp / rho) ** (q - 1.0), 0.0))


def _act(z: np.ndarray, activation: str, q: float, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """(act(z), act'(z)) for the class-bank activation."""
    if activation == "relu":
        return np.maximum(z, 0.0), (z > 0.0).astype(float)
    return srelu(z, q, rho), srelu_prime(z, q, rho)


def _check_form(learner: str, activation: str) -> None:
    if learner not in _LEARNERS:
        raise ValueError(f"learner must be one of {', '.join(_LEARNERS)}; got {learner!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}; got {activation!r}")
    if learner == "symmetric" and activation != "srelu":
        raise ValueError("the symmetric learner is built from srelu only")


def _sigmoid_neg(g: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(g)) without overflow for any g."""
    e = np.exp(-np.abs(g))
    return np.where(g >= 0.0, e / (1.0 + e), 1.0 / (1.0 + e))


def _as_result(x: np.ndarray):
    """A 0-d array becomes a numpy scalar; anything else is returned as is."""
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


# --------------------------------------------------------------------------- 5.1 / 5.2 race


def rate(beta, pi, q: float, rho: float):
    """Growth rate kappa = pi beta^q / (2 rho^(q-1)) of the leading neuron (spec 5.1).

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
    """Predicted learn step of a leading neuron, in (fractional) GD steps (spec 5.2).

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
def _noisy_race_kernel(lam0, step, beta, noise, perp, q, rho, thr, symmetric, zg, zw, max_steps):
    out = np.full(lam0.size, np.inf)
    for e in range(lam0.size):
        lam, b = lam0[e], beta[e]
        if not step[e] > 0.0:
            continue
        if b * lam >= thr:
            out[e] = 0.0
            continue
        for n in range(1, max_steps + 1):
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
                break
            lam += step[e] * drift
            if b * lam >= thr:
                out[e] = float(n)
                break
    return out


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
    """Extension (not in the spec): the race with Gaussian input noise, iterated.

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
    out = _noisy_race_kernel(lam, step, b, sig, perp, float(q), float(rho), thr, bool(symmetric),
                             _Z_GRID, _Z_WEIGHT, int(max_steps))
    return _as_result(out.reshape(shape))


# --------------------------------------------------------------------------- patterns


def population_patterns(presence: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 2^(K+1) (y, s) patterns of the noise-free distribution and their probabilities.

    Order: ``itertools.product([-1, +1], [0, 1], ..., [0, 1])`` over
    ``(y, s_1, ..., s_K)``, i.e. index ``[y=+1] 2^K + sum_r s_r 2^(K-1-r)``.
    P(y, s) = 1/2 prod_r p_r^s_r (1 - p_r)^(1 - s_r); patterns of probability
    zero (p_r in {0, 1}) are kept.

    Returns ``(y_pat (P,) float, s_pat (P, K) int, w_pat (P,) float)``.
    """
    p = np.asarray(presence, dtype=float).reshape(-1)
    K = p.size
    if K == 0:
        raise ValueError("population_patterns needs at least one modality")
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError(f"presence probabilities must lie in [0, 1], got {p.tolist()}")
    rows = np.array(list(itertools.product([-1, 1], *([[0, 1]] * K))), dtype=np.int64)
    y_pat = rows[:, 0].astype(float)
    s_pat = rows[:, 1:]
    w_pat = 0.5 * np.prod(np.where(s_pat == 1, p, 1.0 - p), axis=1)
    return y_pat, s_pat, w_pat


def presence_fraction(y_pat, s_pat, w_pat, banks: int) -> np.ndarray:
    """pi, shape (K_run, banks): weight of the patterns where the modality carries signal.

    banks = 1: pi_r = sum_{s_r = 1} w.  banks = 2: pi_{r,0} = weight with y = +1
    and s_r = 1 (bank c = +1), pi_{r,1} = weight with y = -1 and s_r = 1.
    The weights are not renormalised (they enter the gradient as they are).
    """
    y = np.asarray(y_pat, dtype=float)
    s = np.asarray(s_pat, dtype=float)
    w = np.asarray(w_pat, dtype=float)
    if banks == 1:
        return (w @ s)[:, None]
    if banks == 2:
        return np.stack([(w * (y > 0)) @ s, (w * (y < 0)) @ s], axis=1)
    raise ValueError(f"banks must be 1 or 2, got {banks}")


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


# --------------------------------------------------------------------------- 5.4 reduced dynamics


class _Forward:
    """The noise-free forward pass and alignment update, vectorised over neurons.

    Holds the pattern data so that one GD step is a handful of numpy calls.
    Used by :func:`pattern_margins`, :func:`population_loss` and the NumPy
    reference :func:`_reduced_dynamics_numpy`; :func:`reduced_dynamics`
    runs the same arithmetic compiled (:func:`_reduced_kernel`).
    """

    def __init__(self, beta, y_pat, s_pat, w_pat, q, rho, learner, activation):
        _check_form(learner, activation)
        self.beta = np.asarray(beta, dtype=float).reshape(-1)
        self.bcol = self.beta[:, None, None]
        self.y = np.asarray(y_pat, dtype=float).reshape(-1)
        self.s = np.asarray(s_pat, dtype=float)
        self.w = np.asarray(w_pat, dtype=float).reshape(-1)
        shape_ok = self.s.ndim == 2 and self.s.shape == (self.y.size, self.beta.size)
        if not shape_ok or self.w.size != self.y.size:
            raise ValueError(
                f"pattern shapes disagree: y_pat {self.y.shape}, s_pat {self.s.shape}, "
                f"w_pat {self.w.shape}, beta {self.beta.shape}"
            )
        self.q, self.rho = float(q), float(rho)
        self.symmetric = learner == "symmetric"
        self.activation = activation
        self.pos = self.y > 0
        self.w_pos = self.w * self.pos
        self.w_neg = self.w * ~self.pos

    def margins(self, a: np.ndarray, need_grad: bool = False):
        """y f(y, s) for every pattern; with need_grad also the pieces of the update."""
        z = self.bcol * a
        if self.symmetric:
            az = np.abs(z)  # psi(z) = sign(z) srelu(|z|), psi'(z) = srelu'(|z|)
            psi_sum = np.sum(np.copysign(srelu(az, self.q, self.rho), z), axis=(1, 2))  # (K,)
            g = self.s @ psi_sum  # y f = sum_r s_r Psi_r, the same for both labels
            if not need_grad:
                return g
            return g, srelu_prime(az, self.q, self.rho)
        act_p, dact_p = _act(z, self.activation, self.q, self.rho)  # act(+beta a)
        act_n, dact_n = _act(-z, self.activation, self.q, self.rho)  # act(-beta a)
        sp, sn = act_p.sum(axis=2), act_n.sum(axis=2)  # (K, 2)
        # y = +1: f = F_+(beta a_+) - F_-(-beta a_-); y = -1: -f = F_-(beta a_-) - F_+(-beta a_+)
        g_pos = self.s @ (sp[:, 0] - sn[:, 1])
        g_neg = self.s @ (sp[:, 1] - sn[:, 0])
        g = np.where(self.pos, g_pos, g_neg)
        if not need_grad:
            return g
        return g, dact_p, dact_n

    def loss(self, g: np.ndarray) -> float:
        return float(self.w @ np.logaddexp(0.0, -g))

    def increment(self, a: np.ndarray):
        """(delta a / eta, y f) at alignments a."""
        if self.symmetric:
            g, dpsi = self.margins(a, need_grad=True)
            drive = (self.w * _sigmoid_neg(g)) @ self.s  # (K,)
            return self.bcol * dpsi * drive[:, None, None], g
        g, dact_p, dact_n = self.margins(a, need_grad=True)
        sig = _sigmoid_neg(g)
        d_pos = (self.w_pos * sig) @ self.s  # drive from y = +1 patterns, (K,)
        d_neg = (self.w_neg * sig) @ self.s
        same = np.stack([d_pos, d_neg], axis=1)[:, :, None]  # y = c
        opp = np.stack([d_neg, d_pos], axis=1)[:, :, None]  # y = -c
        return self.bcol * (dact_p * same + dact_n * opp), g


def pattern_margins(alignment, beta, y_pat, s_pat, q, rho, learner="symmetric", activation="srelu"):
    """y f(y, s) of every pattern for alignments of shape (K_run, B, m)."""
    no_weights = np.zeros(np.size(y_pat))
    fwd = _Forward(beta, y_pat, s_pat, no_weights, q, rho, learner, activation)
    return fwd.margins(np.asarray(alignment, dtype=float))


def population_loss(alignment, beta, y_pat, s_pat, w_pat, q, rho, learner="symmetric",
                    activation="srelu") -> float:
    """sum_P w log(1 + exp(-y f(y, s))), evaluated stably."""
    fwd = _Forward(beta, y_pat, s_pat, w_pat, q, rho, learner, activation)
    return fwd.loss(fwd.margins(np.asarray(alignment, dtype=float)))


@dataclass
class ReducedDynamics:
    """Trajectory of the reduced (alignment-only) gradient descent.

    Attributes
    ----------
    steps : (R,) int
        Recorded steps: 0, record_every, 2 record_every, ... and always the last.
    alignment : (R, K_run, B, m)
        Alignments at the recorded steps.
    leading_alignment : (R, K_run)
        Max over banks and neurons.
    learned_step : (K_run,) int
        First step with beta_r * max alignment >= threshold (every step checked); -1 never.
    learned_step_bank : (K_run, B) int
        The same per bank.
    final_alignment : (K_run, B, m)
        Alignments after the last step.
    loss : (R,)
        Loss over the patterns (population loss for population patterns).
    """

    steps: np.ndarray
    alignment: np.ndarray
    leading_alignment: np.ndarray
    learned_step: np.ndarray
    learned_step_bank: np.ndarray
    final_alignment: np.ndarray
    loss: np.ndarray


_POW_INT_MAX = 8  # q - 1 an integer up to this: powers by repeated multiplication


@jit()
def _srelu_pair(z, q, rho, shift, n):
    """srelu(z) and srelu'(z) for z >= 0 with one power at most.

    Parameters
    ----------
    z : float
        Pre-activation, >= 0 (not nan).
    q, rho : float
        srelu parameters.
    shift : float
        (1 - 1/q) rho.
    n : int
        q - 1 when it is an integer in [0, _POW_INT_MAX], else -1.

    Returns
    -------
    value, slope : float
        z - shift and 1 above rho; on (0, rho] the slope is d = (z/rho)^(q-1)
        (repeated multiplication when n >= 0, which for q = 3 is exactly
        ``pow``) and the value z d / q = z^q / (q rho^(q-1)); 0, 0 at z = 0.
    """
    if z > rho:
        return z - shift, 1.0
    if z > 0.0:
        x = z / rho
        if n >= 0:
            d = 1.0
            for _ in range(n):
                d *= x
        else:
            d = x ** (q - 1.0)
        return z * d / q, d
    return 0.0, 0.0


@jit()
def _reduced_kernel(a0, beta, y, s, w, w_pos, w_neg, q, rho, eta, thr, steps, symmetric, relu,
                    rec_steps):
    """The step loop of :func:`reduced_dynamics`, compiled.

    Parameters
    ----------
    a0 : (K, B, m) float64
        Initial alignments (not modified).
    beta : (K,) float64
        Signal strengths.
    y : (P,) float64
        Pattern labels, +-1.
    s : (P, K) float64
        Pattern presence, 0/1.
    w : (P,) float64
        Pattern weights.
    w_pos, w_neg : (P,) float64
        ``w`` times [y > 0] and times [y <= 0].
    q, rho : float
        srelu parameters (unused for ReLU).
    eta : float
        Learning rate.
    thr : float
        Learn threshold on beta_r * max alignment.
    steps : int
        Number of GD steps T.
    symmetric : bool
        Symmetric learner (B = 1, psi) rather than class banks (B = 2).
    relu : bool
        Class banks with plain ReLU rather than srelu.
    rec_steps : (R,) int64
        Increasing steps to record, the last one equal to ``steps``.

    Returns
    -------
    rec_a : (R, K, B, m) float64
        Alignments at the recorded steps.
    rec_loss : (R,) float64
        Pattern loss at the recorded steps.
    learned : (K, B) int64
        First step with beta_r * max_i a_{r,b,i} >= thr, -1 never.
    a : (K, B, m) float64
        Alignments after the last step.

    Notes
    -----
    The arithmetic is that of :class:`_Forward` element by element, except
    that srelu on (0, rho] is computed from its slope with one power
    (:func:`_srelu_pair`) and sums over neurons, patterns and modalities run
    in index order: results agree with the NumPy reference to a few ulp per
    step. ``nan`` propagates as in NumPy: a ``nan`` alignment is never
    learned and gives a ``nan`` loss.
    """
    K, B, m = a0.shape
    P = y.size
    R = rec_steps.size
    a = a0.copy()
    rec_a = np.empty((R, K, B, m))
    rec_loss = np.empty(R)
    learned = np.full((K, B), -1, dtype=np.int64)
    n_open = K * B
    shift = (1.0 - 1.0 / q) * rho  # srelu(z) = z - shift above rho
    qm1 = q - 1.0
    n_int = int(qm1) if qm1 == math.floor(qm1) and 0.0 <= qm1 <= _POW_INT_MAX else -1
    dact_p = np.empty((K, B, m))  # act'(beta a) (symmetric: psi'(beta a))
    dact_n = np.empty((K, B, m))  # act'(-beta a) (class banks only)
    g_pos = np.empty(K)  # y f = sum_r s_r g_pos[r] on y = +1 patterns
    g_neg = np.empty(K)  # ... and g_neg[r] on y = -1 patterns
    sig = np.empty(P)
    rec_i = 0
    for t in range(steps + 1):
        if n_open > 0:
            for r in range(K):
                for b in range(B):
                    if learned[r, b] >= 0:
                        continue
                    mx = a[r, b, 0]
                    for i in range(1, m):
                        v = a[r, b, i]
                        if v > mx or v != v:  # a nan stays the max, as in np.max
                            mx = v
                    if beta[r] * mx >= thr:
                        learned[r, b] = t
                        n_open -= 1
        # per-neuron activations and derivatives, summed per modality
        for r in range(K):
            if symmetric:
                total = 0.0
                for i in range(m):
                    z = beta[r] * a[r, 0, i]
                    az = abs(z)  # psi(z) = sign(z) srelu(|z|), psi'(z) = srelu'(|z|)
                    if az != az:
                        v, d = az, 0.0
                    else:
                        v, d = _srelu_pair(az, q, rho, shift, n_int)
                    total += math.copysign(v, z)
                    dact_p[r, 0, i] = d
                g_pos[r] = total
                g_neg[r] = total
            else:
                sp0 = sp1 = sn0 = sn1 = 0.0  # sum act(beta a_b), sum act(-beta a_b)
                for b in range(2):
                    sp = sn = 0.0
                    for i in range(m):
                        z = beta[r] * a[r, b, i]
                        # act(z), act'(z) and act(-z), act'(-z); at most one side is > 0
                        vp = dp = vn = dn = 0.0
                        if z != z:
                            vp = vn = z
                        elif relu:
                            if z > 0.0:
                                vp, dp = z, 1.0
                            elif z < 0.0:
                                vn, dn = -z, 1.0
                        elif z > 0.0:
                            vp, dp = _srelu_pair(z, q, rho, shift, n_int)
                        elif z < 0.0:
                            vn, dn = _srelu_pair(-z, q, rho, shift, n_int)
                        sp += vp
                        sn += vn
                        dact_p[r, b, i] = dp
                        dact_n[r, b, i] = dn
                    if b == 0:
                        sp0, sn0 = sp, sn
                    else:
                        sp1, sn1 = sp, sn
                # y = +1: f = F_+(beta a_+) - F_-(-beta a_-);
                # y = -1: -f = F_-(beta a_-) - F_+(-beta a_+)
                g_pos[r] = sp0 - sn1
                g_neg[r] = sp1 - sn0
        # margins, sigmoid(-y f) and the loss
        is_rec = rec_steps[rec_i] == t
        loss = 0.0
        for p in range(P):
            gr = g_pos if y[p] > 0.0 else g_neg
            g = 0.0
            for r in range(K):
                g += s[p, r] * gr[r]
            e = math.exp(-abs(g))
            sig[p] = e / (1.0 + e) if g >= 0.0 else 1.0 / (1.0 + e)
            if is_rec:  # log(1 + exp(-g)) as np.logaddexp(0, -g)
                if g > 0.0:
                    lg = math.log1p(e)
                elif g == 0.0:
                    lg = math.log(2.0)
                else:
                    lg = -g + math.log1p(e)
                loss += w[p] * lg
        if is_rec:
            rec_a[rec_i] = a
            rec_loss[rec_i] = loss
            rec_i += 1
        if t == steps:
            break
        # the drive (class banks: from the y = +1 and the y = -1 patterns), then the step
        for r in range(K):
            if symmetric:
                drive = 0.0
                for p in range(P):
                    drive += w[p] * sig[p] * s[p, r]
                for i in range(m):
                    a[r, 0, i] += eta * (beta[r] * dact_p[r, 0, i] * drive)
            else:
                d_pos = 0.0
                d_neg = 0.0
                for p in range(P):
                    d_pos += w_pos[p] * sig[p] * s[p, r]
                    d_neg += w_neg[p] * sig[p] * s[p, r]
                for b in range(2):
                    same = d_pos if b == 0 else d_neg  # y = c
                    opp = d_neg if b == 0 else d_pos  # y = -c
                    for i in range(m):
                        a[r, b, i] += eta * (beta[r] * (dact_p[r, b, i] * same
                                                        + dact_n[r, b, i] * opp))
    return rec_a, rec_loss, learned, a


def _reduced_setup(alignment0, beta, y_pat, s_pat, w_pat, q, rho, steps, learner, activation,
                   threshold, record_every):
    """Validate the inputs of :func:`reduced_dynamics`.

    Returns
    -------
    a : (K_run, B, m) float64
        A contiguous copy of ``alignment0``.
    fwd : _Forward
        The pattern data, checked against ``beta`` and each other.
    thr : float
        The learn threshold.
    rec_steps : (R,) int64
        The steps to record.
    """
    a = np.array(alignment0, dtype=float, copy=True, order="C")
    if a.ndim != 3:
        raise ValueError(f"alignment0 must have shape (K_run, B, m), got {a.shape}")
    banks = 1 if learner == "symmetric" else 2
    if a.shape[1] != banks:
        raise ValueError(
            f"learner {learner!r} needs B = {banks} banks, alignment0 has {a.shape[1]}"
        )
    steps = int(steps)
    record_every = int(record_every)
    if steps < 0 or record_every < 1:
        raise ValueError(f"need steps >= 0 and record_every >= 1, got {steps}, {record_every}")
    fwd = _Forward(beta, y_pat, s_pat, w_pat, q, rho, learner, activation)
    if a.shape[0] != fwd.beta.size:
        raise ValueError(f"alignment0 has {a.shape[0]} modalities, beta has {fwd.beta.size}")
    if a.shape[2] == 0:
        raise ValueError("alignment0 needs at least one neuron (m >= 1)")
    thr = float(rho if threshold is None else threshold)
    rec_steps = np.arange(0, steps + 1, record_every, dtype=np.int64)
    if rec_steps[-1] != steps:
        rec_steps = np.append(rec_steps, np.int64(steps))
    return a, fwd, thr, rec_steps


def _reduced_result(rec_steps, rec_a, rec_loss, learned_bank, a) -> ReducedDynamics:
    """Bundle a trajectory; the learned step of a modality is the first of its banks."""
    never = np.iinfo(np.int64).max
    learned_any = np.where(learned_bank >= 0, learned_bank, never).min(axis=1)
    learned = np.where(learned_any == never, -1, learned_any).astype(np.int64)
    return ReducedDynamics(
        steps=rec_steps,
        alignment=rec_a,
        leading_alignment=rec_a.max(axis=(2, 3)),
        learned_step=learned,
        learned_step_bank=learned_bank,
        final_alignment=a,
        loss=rec_loss,
    )


def reduced_dynamics(
    alignment0,
    beta,
    y_pat,
    s_pat,
    w_pat,
    q: float,
    rho: float,
    eta: float,
    steps: int,
    learner: str = "symmetric",
    activation: str = "srelu",
    threshold: float | None = None,
    record_every: int = 1,
) -> ReducedDynamics:
    """Gradient descent on the pattern loss in alignment coordinates (spec 5.4).

    Symmetric:   a_{r,i}   += eta sum_P w s_r beta_r psi'(beta_r a_{r,i}) sigmoid(-y f)
    Class banks: a_{r,c,i} += eta sum_P w s_r beta_r act'(y c beta_r a_{r,c,i}) sigmoid(-y f)
    with y f(y, s) = sum_r s_r sum_c sum_i y c act(y c beta_r a_{r,c,i})
    (for the symmetric learner y f = sum_r s_r sum_i psi(beta_r a_{r,i})).
    Exact for noise-free, distractor-free data described by the patterns.

    Parameters
    ----------
    alignment0 : array_like, shape (K_run, B, m)
        Initial alignments; B = 1 for the symmetric learner, 2 for class banks.
    beta : array_like, shape (K_run,)
        Signal strengths.
    y_pat, s_pat, w_pat : array_like
        The patterns: labels (P,), presence (P, K_run) and weights (P,).
    q, rho : float
        srelu parameters.
    eta : float
        Learning rate.
    steps : int
        Number of GD steps T.
    learner : {"symmetric", "class_banks"}
    activation : {"srelu", "relu"}
        "relu" only with class banks.
    threshold : float, optional
        Learn threshold on beta_r * max alignment; defaults to rho.
    record_every : int
        Record at steps 0, record_every, 2 record_every, ... and at T.

    Returns
    -------
    ReducedDynamics

    Notes
    -----
    The step loop is compiled (``_reduced_kernel``); a step costs well under
    a microsecond for K = 2, m = 8. :func:`_reduced_dynamics_numpy` is the
    vectorised NumPy version it replaced, kept as the slow reference the
    tests compare it with.
    """
    a, fwd, thr, rec_steps = _reduced_setup(alignment0, beta, y_pat, s_pat, w_pat, q, rho, steps,
                                            learner, activation, threshold, record_every)
    patterns = (fwd.beta, fwd.y, fwd.s, fwd.w, fwd.w_pos, fwd.w_neg)
    rec_a, rec_loss, learned_bank, a = _reduced_kernel(
        a, *(np.ascontiguousarray(x) for x in patterns), fwd.q, fwd.rho, float(eta), thr,
        int(steps), bool(fwd.symmetric), fwd.activation == "relu", rec_steps,
    )
    return _reduced_result(rec_steps, rec_a, rec_loss, learned_bank, a)


def _reduced_dynamics_numpy(alignment0, beta, y_pat, s_pat, w_pat, q, rho, eta, steps,
                            learner="symmetric", activation="srelu", threshold=None,
                            record_every=1) -> ReducedDynamics:
    """:func:`reduced_dynamics` in vectorised NumPy: the slow reference of the compiled loop.

    Same parameters and result; each step is a handful of NumPy calls on
    :class:`_Forward`, about 30 (symmetric) / 50 (class banks) microseconds
    for K = 2, m = 8. Used only by the tests.
    """
    a, fwd, thr, rec_steps = _reduced_setup(alignment0, beta, y_pat, s_pat, w_pat, q, rho, steps,
                                            learner, activation, threshold, record_every)
    steps = int(steps)
    beta_col = fwd.beta[:, None]
    R = rec_steps.size
    rec_a = np.empty((R,) + a.shape)
    rec_loss = np.empty(R)
    learned_bank = np.full(a.shape[:2], -1, dtype=np.int64)
    open_ = np.ones(a.shape[:2], dtype=bool)
    rec_i = 0
    for t in range(steps + 1):
        if open_.any():
            hit = open_ & (beta_col * a.max(axis=2) >= thr)
            if hit.any():
                learned_bank[hit] = t
                open_ &= ~hit
        is_rec = rec_steps[rec_i] == t
        if t == steps:
            if is_rec:
                rec_a[rec_i] = a
                rec_loss[rec_i] = fwd.loss(fwd.margins(a))
            break
        inc, g = fwd.increment(a)
        if is_rec:
            rec_a[rec_i] = a
            rec_loss[rec_i] = fwd.loss(g)
            rec_i += 1
        a += eta * inc
    return _reduced_result(rec_steps, rec_a, rec_loss, learned_bank, a)


# --------------------------------------------------------------------------- 5.5 test error


def test_error_noiseless(final_alignment, beta, presence, learner="symmetric", activation="srelu",
                         q: float = 3.0, rho: float = 1.0) -> float:
    """Test error of the fused model on fresh noise-free samples (spec 5.5).

    A sample (y, s) is wrong when y f(y, s) < 0 and counts one half when
    y f(y, s) = 0 exactly; its weight is P(y, s) from the distribution's
    presence probabilities.  For the symmetric learner y f does not depend on
    y, which gives sum_s P(s) ([f(+1,s) < 0] + 0.5 [f(+1,s) = 0]).
    """
    y_pat, s_pat, w_pat = population_patterns(presence)
    g = pattern_margins(final_alignment, beta, y_pat, s_pat, q, rho, learner, activation)
    return float(w_pat @ ((g < 0.0) + 0.5 * (g == 0.0)))


test_error_noiseless.__test__ = False  # not a pytest test despite the name


def test_error_coinflip(learned_mask, presence) -> float:
    """0.5 prod_{r learned} (1 - p_r): a learned modality with signal decides, else a coin flip."""
    mask = np.asarray(learned_mask, dtype=bool).reshape(-1)
    p = np.asarray(presence, dtype=float).reshape(-1)
    if mask.size != p.size:
        raise ValueError(f"learned_mask has {mask.size} entries, presence {p.size}")
    return float(0.5 * np.prod(1.0 - p[mask]))


test_error_coinflip.__test__ = False


# --------------------------------------------------------------------------- 5.3 winner


def winner_coordinate(kappa, gamma, q: float) -> float:
    """x = ln(kappa_2 Gamma_2^(q-2) / (kappa_1 Gamma_1^(q-2))) for K = 2 (spec 5.3).

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
    """Solve q ln(beta_2/beta_1) + (q-2) ln(Gamma_2/Gamma_1) + ln(p_2/p_1) = 0 (spec 5.3).

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


# --------------------------------------------------------------------------- one run


def _json_value(x: Any):
    """Floats with inf/nan -> None, arrays -> lists, numpy scalars -> python."""
    if isinstance(x, np.ndarray):
        return [_json_value(v) for v in x.tolist()] if x.ndim else _json_value(x.item())
    if isinstance(x, (list, tuple)):
        return [_json_value(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


@dataclass
class Prediction:
    """Theory's prediction for one run (one trained set of modalities).

    Per-modality arrays are indexed like ``trained``; per-bank arrays have a
    second axis B (1 symmetric; 2 class banks, bank 0 is c = +1).
    """

    trained: list[int]
    pi: np.ndarray  # (K_run, B)
    kappa: np.ndarray  # (K_run, B)
    gamma: np.ndarray  # (K_run, B)
    race_learned_step_bank: np.ndarray  # (K_run, B) float, inf = never
    race_learned_step: np.ndarray  # (K_run,) float, min over banks
    predicted_winner: int | None  # index into trained
    reduced: ReducedDynamics = field(repr=False)
    predicted_learned_step: np.ndarray  # (K_run,) int, -1 never
    learned_by_horizon: np.ndarray  # (K_run,) bool
    test_error_noiseless: float
    test_error_coinflip: float
    # extension: the race with Gaussian input noise (None when every trained
    # modality is noise-free); (K_run,) float, inf = not within 10 T steps
    race_learned_step_noisy: np.ndarray | None = None

    def to_json(self, names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready dict; per-modality fields are dicts keyed by ``names[j]``.

        ``names`` are the names of the trained modalities, in ``trained`` order.
        Per-bank values are a float (B = 1) or a list [c = +1, c = -1] (B = 2);
        inf and -1 ("never") become None.
        """
        names = list(names)
        if len(names) != len(self.trained):
            raise ValueError(f"{len(names)} names for {len(self.trained)} trained modalities")

        def per_bank(arr):
            return {
                nm: _json_value(row[0] if row.size == 1 else row) for nm, row in zip(names, arr)
            }

        def per_mod(arr, never=None):
            return {
                nm: (None if never is not None and v == never else _json_value(v))
                for nm, v in zip(names, arr)
            }

        return {
            "pi": per_bank(self.pi),
            "kappa": per_bank(self.kappa),
            "gamma": per_bank(self.gamma),
            "race_learned_step": per_mod(self.race_learned_step),
            "race_learned_step_bank": per_bank(self.race_learned_step_bank),
            "predicted_winner": (
                None if self.predicted_winner is None else names[self.predicted_winner]
            ),
            "predicted_learned_step": per_mod(self.predicted_learned_step, never=-1),
            "learned_by_horizon": per_mod(self.learned_by_horizon),
            "test_error_noiseless": self.test_error_noiseless,
            "test_error_coinflip": self.test_error_coinflip,
            "race_learned_step_noisy": (
                None if self.race_learned_step_noisy is None
                else per_mod(self.race_learned_step_noisy)
            ),
        }


def predict(cfg: Config, trained: Sequence[int], alignment0, y_pat, s_pat, w_pat) -> Prediction:
    """All of spec section 5 for one run.

    ``trained`` indexes ``cfg.data.modality``; ``alignment0`` (K_run, B, m) are
    the run's initial alignments and the patterns its training data (or the
    population patterns).  The race uses pi from those patterns; the reduced
    dynamics runs cfg.train.steps steps at eta = cfg.train.lr, recording every
    cfg.train.trace_every steps; the test errors use the distribution's p_r.
    For plain ReLU the race is the constant-drift case (q = 1).  When a
    trained modality has noise, the noise-aware race (extension,
    :func:`race_learn_step_noisy`, with |w_perp| = init_scale sqrt(d - 1)) is
    added, capped at 10 cfg.train.steps.
    """
    trained = [int(r) for r in trained]
    mods = [cfg.data.modality[r] for r in trained]
    beta = np.array([mod.beta for mod in mods])
    presence = np.array([mod.presence for mod in mods])
    model = cfg.model
    q, rho, thr, eta = model.q, model.rho, model.threshold, cfg.train.lr
    a0 = np.asarray(alignment0, dtype=float)
    if a0.shape[:2] != (len(trained), model.banks):
        raise ValueError(
            f"alignment0 has shape {a0.shape}; expected ({len(trained)}, {model.banks}, m)"
        )
    pi = presence_fraction(y_pat, s_pat, w_pat, model.banks)
    q_race, rho_race = (1.0, thr) if model.activation == "relu" else (q, rho)
    kappa = rate(beta, pi, q_race, rho_race)
    gamma = initial_gamma(a0)
    race_bank = race_learn_step(gamma, kappa, beta[:, None], q_race, rho_race, eta, thr)
    race = race_bank.min(axis=1)
    reduced = reduced_dynamics(
        a0, beta, y_pat, s_pat, w_pat, q, rho, eta, cfg.train.steps,
        learner=model.learner, activation=model.activation, threshold=thr,
        record_every=cfg.train.trace_every,
    )
    learned = reduced.learned_step >= 0
    noise = np.array([mod.noise for mod in mods])
    race_noisy = None
    if np.any(noise > 0.0):
        perp = model.init_scale * np.sqrt(np.array([mod.dim for mod in mods]) - 1.0)
        race_noisy = race_learn_step_noisy(
            a0.max(axis=2), kappa, beta[:, None], q_race, rho_race, eta,
            noise[:, None], perp[:, None], thr, symmetric=model.learner == "symmetric",
            max_steps=10 * cfg.train.steps,
        ).min(axis=1)
    return Prediction(
        trained=trained,
        pi=pi,
        kappa=kappa,
        gamma=gamma,
        race_learned_step_bank=race_bank,
        race_learned_step=race,
        predicted_winner=predicted_winner(race),
        reduced=reduced,
        predicted_learned_step=reduced.learned_step,
        learned_by_horizon=learned,
        test_error_noiseless=test_error_noiseless(
            reduced.final_alignment, beta, presence, model.learner, model.activation, q, rho
        ),
        test_error_coinflip=test_error_coinflip(learned, presence),
        race_learned_step_noisy=race_noisy,
    )
