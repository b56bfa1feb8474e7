"""Correlated presence coins: how the simulation draws s and weighs presence patterns.

Modality r carries signal on a sample when a standard Gaussian z_r falls
below the threshold h_r = Phi^-1(p_r), so P(s_r = 1) = p_r whatever the
correlation.  The z_r of one sample are jointly Gaussian with one equal
correlation c between every pair (docs/model.md section 1.1).  c = 0 is the
independent presence of the original model; the data module keeps its own
code path for it, so that c = 0 draws exactly what it always drew.

Two jobs live here:

* :func:`correlated_presence` draws s for sampled data from per-modality
  standard normals e_r, mixed by the symmetric square root of the
  correlation matrix (which exists for every valid c, including c < 0);
* :func:`pattern_probabilities` gives the exact probability of every
  presence pattern, the weights of population mode.

The theory computes the same probabilities with its own code and a
different method (``simcomp.theory.orthant``); tests hold the two against
each other and against Monte Carlo.  Here: for 0 < c < 1 the one-factor
integral by composite Gauss-Legendre with panels placed at the steps of the
integrand, for c = 1 the nested intervals of one shared coin, and for c < 0
Plackett's identity (the derivative of an orthant probability in a
correlation is a bivariate density times a lower-dimensional orthant
probability), integrated along c from the independent case.
"""

from __future__ import annotations

import math
from itertools import combinations, product

import numpy as np

from .config import MAX_NEGATIVE_POPULATION_K

__all__ = [
    "normal_cdf",
    "normal_quantile",
    "presence_thresholds",
    "correlated_presence",
    "pattern_probabilities",
    "MAX_NEGATIVE_POPULATION_K",
]

# Plackett's recursion nests floor(K/2) integrals: its cost grows like (nodes * K^2)^(K/2),
# so population mode with c < 0 stops at MAX_NEGATIVE_POPULATION_K uncertain modalities.

_ERFC = np.frompyfunc(math.erfc, 1, 1)
_SQRT2 = math.sqrt(2.0)


def normal_cdf(x) -> np.ndarray:
    """Standard normal CDF to full double precision (math.erfc, elementwise)."""
    x = np.asarray(x, dtype=float)
    return 0.5 * np.asarray(_ERFC(-x / _SQRT2), dtype=float)


def normal_quantile(p) -> np.ndarray:
    """Inverse standard normal CDF on [0, 1] (-inf at 0, +inf at 1), to a few ulps.

    A rational start (Hastings, |error| < 4.5e-4) refined by Newton steps
    on math.erfc, which converge quadratically from there.
    """
    p = np.asarray(p, dtype=float)
    out = np.empty_like(p)
    flat_p, flat = p.reshape(-1), out.reshape(-1)
    for i, u in enumerate(flat_p):
        if u <= 0.0:
            flat[i] = -math.inf
        elif u >= 1.0:
            flat[i] = math.inf
        else:
            flat[i] = _quantile_one(float(u))
    return out


def _quantile_one(u: float) -> float:
    # Start: the logistic-free tail/center approximation x ~ sign * sqrt(-2 ln(min(u, 1-u)))
    # corrected (Hastings 26.2.23, |error| < 4.5e-4), then Newton steps on Phi(x) - u.
    t = math.sqrt(-2.0 * math.log(min(u, 1.0 - u)))
    x = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (
        1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t ** 3)
    x = -x if u < 0.5 else x
    for _ in range(4):
        # Work in the tail where Phi is smaller, for relative accuracy there.
        if x < 0.0:
            err = 0.5 * math.erfc(-x / _SQRT2) - u
        else:
            err = (1.0 - u) - 0.5 * math.erfc(x / _SQRT2)  # Phi(x) - u = Q(u) - Q(x)
        dens = math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        if dens == 0.0:
            break
        x -= err / dens
    return x


def presence_thresholds(presence) -> np.ndarray:
    """h_r = Phi^-1(p_r): modality r is present where z_r < h_r."""
    return normal_quantile(np.asarray(presence, dtype=float))


def correlated_presence(normals: np.ndarray, presence, correlation: float) -> np.ndarray:
    """Presence s (n, K) int8 from independent standard normals (n, K).

    z = sqrt(1 - c) (e - mean(e)) + sqrt(1 + (K - 1) c) mean(e), the symmetric
    square root of the equicorrelation matrix applied to e (covariance
    (1 - c) I + c 11^T); s_r = [z_r < Phi^-1(p_r)].
    """
    e = np.asarray(normals, dtype=float)
    K = e.shape[1]
    c = float(correlation)
    mean = e.mean(axis=1, keepdims=True)
    common = math.sqrt(max(0.0, 1.0 + (K - 1) * c))
    z = math.sqrt(max(0.0, 1.0 - c)) * (e - mean) + common * mean
    return (z < presence_thresholds(presence)[None, :]).astype(np.int8)


# --------------------------------------------------------------------------- pattern weights


def pattern_probabilities(presence, correlation: float) -> np.ndarray:
    """P(s) for every s in {0, 1}^K, in ``itertools.product`` order (s_1 most significant).

    Exact up to quadrature rounding (about 1e-14).  Modalities with p_r in
    {0, 1} are deterministic and factor out; the rest are equicorrelated
    with the same c (a sub-vector of an equicorrelated vector is one).
    """
    p = np.asarray(presence, dtype=float).reshape(-1)
    K = p.size
    c = float(correlation)
    patterns = np.array(list(product((0, 1), repeat=K)), dtype=np.int64).reshape(2 ** K, K)
    fixed = (p <= 0.0) | (p >= 1.0)
    free = np.flatnonzero(~fixed)
    out = np.zeros(2 ** K)
    # Patterns that disagree with a deterministic modality have probability 0.
    agree = np.all((patterns[:, fixed] == (p[fixed] >= 1.0)), axis=1)
    if free.size == 0:
        out[agree] = 1.0
        return out
    sub = _free_probabilities(p[free], c)  # (2^F,) over the free modalities' patterns
    sub_index = patterns[:, free] @ (2 ** np.arange(free.size - 1, -1, -1))
    out[agree] = sub[sub_index[agree]]
    return out


def _free_probabilities(p: np.ndarray, c: float) -> np.ndarray:
    F = p.size
    h = presence_thresholds(p)
    patterns = np.array(list(product((0, 1), repeat=F)), dtype=np.int64)
    if c == 0.0 or F == 1:
        return np.prod(np.where(patterns == 1, p, 1.0 - p), axis=1)
    if c >= 1.0:
        return _shared_coin(h, patterns)
    if c > 0.0:
        return _one_factor(h, c, patterns)
    if F > MAX_NEGATIVE_POPULATION_K:
        raise ValueError(
            f"exact presence-pattern weights for a negative correlation support at most "
            f"{MAX_NEGATIVE_POPULATION_K} modalities with 0 < p < 1, got {F}")
    sigma = np.where(patterns == 1, 1.0, -1.0)  # s_r = 1: z_r < h_r; s_r = 0: -z_r < -h_r
    # Quadrature rounding can leave an impossible pattern (at c = -1/(K-1)) at -1e-9.
    return np.maximum([_orthant(sig * h, sig, c) for sig in sigma], 0.0)


def _shared_coin(h: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """c = 1: one z for all; pattern s has the probability of the z-interval that produces it."""
    edges = np.concatenate([[-math.inf], np.sort(h), [math.inf]])
    out = np.zeros(len(patterns))
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        z_mid = 0.0 if not (math.isfinite(lo) or math.isfinite(hi)) else (
            hi - 1.0 if not math.isfinite(lo) else lo + 1.0 if not math.isfinite(hi)
            else 0.5 * (lo + hi))
        s = (z_mid < h).astype(np.int64)
        index = int(s @ (2 ** np.arange(h.size - 1, -1, -1)))
        out[index] += float(normal_cdf(hi) - normal_cdf(lo))
    return out


_GL_X, _GL_W = np.polynomial.legendre.leggauss(20)


def _panels(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights of every panel [edges[i], edges[i+1]]."""
    lo, hi = edges[:-1, None], edges[1:, None]
    x = 0.5 * (hi - lo) * _GL_X[None, :] + 0.5 * (hi + lo)
    w = 0.5 * (hi - lo) * _GL_W[None, :]
    return x.reshape(-1), w.reshape(-1)


def _one_factor(h: np.ndarray, c: float, patterns: np.ndarray) -> np.ndarray:
    """0 < c < 1: z_r = sqrt(c) t + sqrt(1 - c) e_r; given t the coins are independent.

    P(s) = int phi(t) prod_r Phi_r(t)^s_r (1 - Phi_r(t))^(1 - s_r) dt with
    Phi_r(t) = Phi((h_r - sqrt(c) t) / sqrt(1 - c)).  Each Phi_r steps from 1
    to 0 around t = h_r / sqrt(c) over a width sqrt(1 - c) / sqrt(c); the
    panels are refined there so every panel sees a smooth piece.
    """
    root_c, root_1c = math.sqrt(c), math.sqrt(1.0 - c)
    width = root_1c / root_c
    centers = h / root_c
    edges = [np.linspace(-13.0, 13.0, 53)]
    for t0 in centers:
        edges.append(t0 + width * np.linspace(-12.0, 12.0, 49))
    edges = np.unique(np.clip(np.concatenate(edges), -13.0, 13.0))
    t, w = _panels(edges)
    w = w * np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    below = normal_cdf((h[None, :] - root_c * t[:, None]) / root_1c)  # (N, F) P(s_r = 1 | t)
    above = normal_cdf((root_c * t[:, None] - h[None, :]) / root_1c)  # P(s_r = 0 | t), no 1 - x
    out = np.empty(len(patterns))
    for i, s in enumerate(patterns):
        out[i] = w @ np.prod(np.where(s[None, :] == 1, below, above), axis=1)
    return out


_PL_X, _PL_W = np.polynomial.legendre.leggauss(32)
_PL_X = 0.5 * (_PL_X + 1.0)  # on (0, 1)
_PL_W = 0.5 * _PL_W


def _orthant(b: np.ndarray, sigma: np.ndarray, c: float) -> float:
    """P(sigma_r z_r < b_r for all r), z equicorrelated with c (any sign), by Plackett."""
    return float(_orthant_batch(np.asarray(b, dtype=float)[None, :], sigma,
                                np.array([float(c)]))[0])


def _orthant_batch(b: np.ndarray, sigma: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Row-wise P(x < b_n) for x = sigma * z, z equicorrelated with c_n; b (N, K), c (N,).

    The correlation of x_i, x_j is sigma_i sigma_j c.  Plackett: d/dc of the
    probability is sum_{i<j} sigma_i sigma_j phi2(b_i, b_j; sigma_i sigma_j c)
    P(rest | x_i = b_i, x_j = b_j), and given two coordinates the rest is
    again of this form: mean c sigma_k (x_i + x_j) / (1 + c) in sigma_k units,
    variance (1 - c)(1 + 2c)/(1 + c), correlation c / (1 + 2c).  With
    c = sin(theta) the bivariate density's 1/sqrt(1 - c^2) cancels against
    d c = cos(theta) d theta, which keeps the integrand smooth near c = -1.
    """
    N, K = b.shape
    if K == 0:
        return np.ones(N)
    base = np.prod(normal_cdf(b), axis=1)
    if K == 1:
        return base
    theta_end = np.arcsin(np.clip(c, -1.0, 1.0))  # (N,)
    theta = theta_end[:, None] * _PL_X[None, :]  # (N, n)
    wt = theta_end[:, None] * _PL_W[None, :]
    rho = np.sin(theta)
    cos2 = np.cos(theta) ** 2
    total = base.copy()
    for i, j in combinations(range(K), 2):
        sij = sigma[i] * sigma[j]
        bi, bj = b[:, i:i + 1], b[:, j:j + 1]
        dens = np.exp(-(bi * bi + bj * bj - 2.0 * sij * rho * bi * bj) / (2.0 * cos2))
        dens *= sij / (2.0 * math.pi)
        rest = [k for k in range(K) if k not in (i, j)]
        if rest:
            sr = sigma[rest]
            shift = (rho / (1.0 + rho))[:, :, None] * sr[None, None, :] * (
                sigma[i] * bi + sigma[j] * bj)[:, :, None]
            scale = np.sqrt(np.maximum((1.0 - rho) * (1.0 + 2.0 * rho) / (1.0 + rho), 1e-300))
            b_rest = (b[:, None, rest] - shift) / scale[:, :, None]
            c_rest = rho / (1.0 + 2.0 * rho)
            inner = _orthant_batch(b_rest.reshape(-1, len(rest)), sr, c_rest.reshape(-1))
            dens = dens * inner.reshape(N, -1)
        total += np.sum(wt * dens, axis=1)
    return total
