"""Probabilities of presence patterns under correlated presence coins (docs/theory.md section 13).

Modality r is present where z_r < h_r = Phi^-1(p_r), with (z_1, ..., z_K)
standard Gaussians of equal pairwise correlation c.  The probability of a
pattern s is an orthant probability: with sigma_r = +1 where s_r = 1 and -1
where s_r = 0, P(s) = P(sigma_r z_r < sigma_r h_r for every r), and
sigma * z has correlations c sigma_i sigma_j.

* c = 0: the product of p_r and 1 - p_r (bit for bit the independent formula).
* 0 < c < 1: z_r = sqrt(c) t + sqrt(1 - c) e_r with t, e_r independent, so
  given t the coins are independent and
  P(s) = E_t prod_r Phi(sigma_r (h_r - sqrt(c) t) / sqrt(1 - c)),
  a one-dimensional integral: Gauss-Hermite quadrature of order 320 up to
  c = 0.9; above, where the integrand steps over a width
  sqrt((1 - c) / c) too narrow for the Hermite nodes, the trapezoidal rule
  on a grid finer than that width (spectrally accurate for such integrands).
* c = 1: one shared coin, P(s) = max(0, Phi(min_{s_r=1} h_r) - Phi(max_{s_r=0} h_r)).
* c < 0, two uncertain modalities: the bivariate normal CDF,
  Phi2(a, b; rho) = Phi(a) Phi(b) + (1/2 pi) int_0^asin(rho)
  exp(-(a^2 + b^2 - 2 a b sin u) / (2 cos^2 u)) du.
* c < 0, three or more: the same one-factor formula with an imaginary factor,
  sqrt(c) = i sqrt(-c): P(s) = Re E_t prod_r Phi((sigma_r h_r - i sigma_r
  sqrt(-c) t) / sqrt(1 - c)), with Phi of a complex argument from the
  Faddeeva function (Weideman's rational approximation), summed in log space
  by the trapezoidal rule.  Both sides are analytic in the factor loading and
  agree for real loadings, hence everywhere the integral converges, which is
  c > -1/(K-1); near that bound the integrand decays slowly and the accuracy
  drops (about 1e-13 at 98 % of the way to it, 1e-8 at 99.8 %).

Modalities with p_r in {0, 1} are deterministic and factor out; the others
keep the correlation c (every sub-vector of an equicorrelated vector is
equicorrelated with the same c).  This module is the theory's own: the
simulation computes population-mode weights with different code and methods
(simcomp.presence), and tests hold the two against each other.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

from simcomp.theory.normal import normal_quantile

__all__ = ["presence_pattern_probabilities", "all_absent_probability"]

_SQRT2 = math.sqrt(2.0)
_ERFC = np.frompyfunc(math.erfc, 1, 1)
_HERMITE_ORDER = 320
_HERMITE_MAX_C = 0.9


def _phi_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF of real x, to full precision in both tails."""
    return 0.5 * np.asarray(_ERFC(-np.asarray(x, dtype=float) / _SQRT2), dtype=float)


def _quantile(p: np.ndarray) -> np.ndarray:
    """Phi^-1 on (0, 1): Acklam's approximation polished by one Halley step (a few ulps)."""
    x = normal_quantile(p)
    err = _phi_cdf(x) - p
    u = err * math.sqrt(2.0 * math.pi) * np.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


def presence_pattern_probabilities(presence, correlation: float = 0.0) -> np.ndarray:
    """P(s) of every presence pattern s in {0, 1}^K, ``itertools.product`` order.

    Parameters
    ----------
    presence : sequence of float
        p_r in [0, 1].
    correlation : float
        The equal correlation c of the Gaussians behind the coins, in
        [-1/(K-1), 1].

    Returns
    -------
    ndarray (2^K,)
        Index ``sum_r s_r 2^(K-1-r)`` (the first modality most significant).
    """
    p = np.asarray(presence, dtype=float).reshape(-1)
    K = p.size
    c = float(correlation)
    s_all = np.array(list(itertools.product([0, 1], repeat=K)), dtype=np.int64).reshape(2 ** K, K)
    if c == 0.0:
        return np.prod(np.where(s_all == 1, p, 1.0 - p), axis=1)
    if not -1.0 <= c <= 1.0 or (K > 1 and c < -1.0 / (K - 1) - 1e-12):
        raise ValueError(f"presence correlation must lie in [-1/(K-1), 1] for K = {K}, got {c}")
    certain = (p == 0.0) | (p == 1.0)
    uncertain = np.flatnonzero(~certain)
    # A pattern is possible only where it agrees with every certain modality.
    possible = np.all(s_all[:, certain] == (p[certain] == 1.0).astype(np.int64), axis=1)
    out = np.zeros(2 ** K)
    if uncertain.size == 0:
        out[possible] = 1.0
        return out
    sub = _uncertain_patterns(p[uncertain], c)
    weights = 2 ** np.arange(uncertain.size - 1, -1, -1)
    out[possible] = sub[s_all[possible][:, uncertain] @ weights]
    return out


def all_absent_probability(presence, correlation: float = 0.0) -> float:
    """P(s_r = 0 for every r): no modality of the set carries signal (1 for an empty set)."""
    p = np.asarray(presence, dtype=float).reshape(-1)
    if p.size == 0:
        return 1.0
    if correlation == 0.0:
        return float(np.prod(1.0 - p))
    return float(presence_pattern_probabilities(p, correlation)[0])


def _uncertain_patterns(p: np.ndarray, c: float) -> np.ndarray:
    K = p.size
    h = _quantile(p)
    s_all = np.array(list(itertools.product([0, 1], repeat=K)), dtype=np.int64)
    sign = np.where(s_all == 1, 1.0, -1.0)  # (2^K, K)
    if K == 1:
        return np.array([1.0 - p[0], p[0]])
    if c >= 1.0:
        hi = np.where(s_all == 1, h, np.inf).min(axis=1)
        lo = np.where(s_all == 0, h, -np.inf).max(axis=1)
        return np.maximum(_phi_cdf(hi) - _phi_cdf(lo), 0.0)
    if c > 0.0:
        return _one_factor(h, sign, c)
    if K == 2:
        return np.array([_bivariate(sg[0] * h[0], sg[1] * h[1], sg[0] * sg[1] * c)
                         for sg in sign])
    return _complex_factor(h, sign, c)


@lru_cache(maxsize=None)
def _hermite(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for E over t ~ N(0, 1), without BLAS.

    The nodes are the eigenvalues of the Jacobi matrix of the probabilists'
    Hermite polynomials (zero diagonal, off-diagonal sqrt(k)), found all at
    once by bisection on Sturm counts; the weights are Christoffel's,
    1 / sum_k p_k(t)^2 over the orthonormal polynomials.  A dense symmetric
    eigensolver gives the same numbers but goes through multi-threaded BLAS,
    which on a busy machine takes seconds for this 320 x 320 matrix.
    """
    b2 = np.arange(1.0, order)  # squared off-diagonal entries
    bound = 2.0 * math.sqrt(order)  # Gershgorin
    lo, hi = np.full(order, -bound), np.full(order, bound)
    rank = np.arange(order)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        q = -mid.copy()
        below = (q < 0.0).astype(np.int64)
        for k in range(1, order):
            q = np.where(q == 0.0, 1e-300, q)
            q = -mid - b2[k - 1] / q
            below += q < 0.0
        right = below > rank  # the rank-th eigenvalue lies below mid
        hi = np.where(right, mid, hi)
        lo = np.where(right, lo, mid)
    t = 0.5 * (lo + hi)
    # Christoffel weights, rescaling the recurrence before it overflows far out in the tails.
    p_prev, p = np.zeros(order), np.ones(order)
    total, log_scale = np.ones(order), np.zeros(order)
    for k in range(1, order):
        p_prev, p = p, (t * p - math.sqrt(k - 1.0) * p_prev) / math.sqrt(k)
        total += p * p
        big = total > 1e200
        if big.any():
            p[big] *= 1e-100
            p_prev[big] *= 1e-100
            total[big] *= 1e-200
            log_scale[big] += 200.0 * math.log(10.0)
    return t, np.exp(-np.log(total) - log_scale)


def _one_factor(h: np.ndarray, sign: np.ndarray, c: float) -> np.ndarray:
    root_c, root_1c = math.sqrt(c), math.sqrt(1.0 - c)
    if c <= _HERMITE_MAX_C:
        t, w = _hermite(_HERMITE_ORDER)
    else:
        step = min(0.25, 0.5 * root_1c / root_c)
        t = np.arange(-13.0, 13.0 + 0.5 * step, step)
        w = step * np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    arg = (h[None, :] - root_c * t[:, None]) / root_1c  # (N, K)
    present, absent = _phi_cdf(arg), _phi_cdf(-arg)  # P(s_r = 1 | t), P(s_r = 0 | t)
    out = np.empty(sign.shape[0])
    for i, sg in enumerate(sign):
        out[i] = w @ np.prod(np.where(sg[None, :] > 0, present, absent), axis=1)
    return out


_BVN_X, _BVN_W = np.polynomial.legendre.leggauss(40)


def _bivariate(a: float, b: float, rho: float) -> float:
    """P(X < a, Y < b) for standard normals of correlation rho in [-1, 1]."""
    end = math.asin(max(-1.0, min(1.0, rho)))
    u = 0.5 * end * (_BVN_X + 1.0)
    cos2 = np.cos(u) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.exp(-(a * a + b * b - 2.0 * a * b * np.sin(u)) / (2.0 * cos2))
    f = np.where(np.isfinite(f), f, 0.0)
    base = float(_phi_cdf(np.array([a]))[0] * _phi_cdf(np.array([b]))[0])
    return max(0.0, base + 0.5 * end * float(_BVN_W @ f) / (2.0 * math.pi))


# --------------------------------------------------------------------------- complex Phi


@lru_cache(maxsize=None)
def _weideman(N: int = 36) -> tuple[np.ndarray, float]:
    """Coefficients of Weideman's (1994) rational approximation of the Faddeeva function."""
    M = 2 * N
    L = math.sqrt(N / math.sqrt(2.0))
    theta = np.arange(-M + 1, M) * math.pi / M
    t = L * np.tan(0.5 * theta)
    f = np.concatenate([[0.0], np.exp(-t * t) * (L * L + t * t)])
    a = np.real(np.fft.fft(np.fft.fftshift(f))) / (2 * M)
    return np.flipud(a[1:N + 1]), L


def _faddeeva_upper(z: np.ndarray) -> np.ndarray:
    """w(z) = exp(-z^2) erfc(-i z) for Im z >= 0 (relative error about 1e-15)."""
    a, L = _weideman()
    d = L - 1j * z
    return 2.0 * np.polyval(a, (L + 1j * z) / d) / (d * d) + (1.0 / math.sqrt(math.pi)) / d


def _log_phi_complex(w: np.ndarray) -> np.ndarray:
    """log Phi(w) for complex w, via erfc(x) = exp(-x^2) w(i x) kept in the upper half plane."""
    w = np.asarray(w, dtype=complex)
    out = np.empty_like(w)
    left = w.real < 0.0
    wl = w[left]
    out[left] = -0.5 * wl * wl + np.log(0.5 * _faddeeva_upper(-1j * wl / _SQRT2))
    wr = w[~left]
    tail = -0.5 * wr * wr + np.log(0.5 * _faddeeva_upper(1j * wr / _SQRT2))  # log(1 - Phi)
    huge = tail.real > 30.0  # 1 - exp(tail) is -exp(tail) to double precision
    res = np.empty_like(wr)
    res[~huge] = np.log1p(-np.exp(tail[~huge]))
    res[huge] = tail[huge] + 1j * math.pi
    out[~left] = res
    return out


def _complex_factor(h: np.ndarray, sign: np.ndarray, c: float) -> np.ndarray:
    K = h.size
    s, a = math.sqrt(-c), math.sqrt(1.0 - c)
    # |integrand| <= exp(-(1 - K s^2 / a^2) t^2 / 2): the range that leaves exp(-40) behind
    decay = max(1.0 - K * s * s / (a * a), 1e-6)
    T = min(math.sqrt(80.0 / decay), 2000.0)
    step = 0.2
    t = np.arange(-T, T + 0.5 * step, step)
    w = (h[None, :] - 1j * s * t[:, None]) / a  # sigma_r = +1; sigma_r = -1 is -w
    log_present, log_absent = _log_phi_complex(w), _log_phi_complex(-w)
    out = np.empty(sign.shape[0])
    for i, sg in enumerate(sign):
        log_f = np.where(sg[None, :] > 0, log_present, log_absent).sum(axis=1) - 0.5 * t * t
        out[i] = step / math.sqrt(2.0 * math.pi) * float(np.exp(log_f).real.sum())
    return np.maximum(out, 0.0)
