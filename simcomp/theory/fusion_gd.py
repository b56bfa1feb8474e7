"""Gradient descent on the distribution: half steps of width-1 linear fusion networks.

The closed forms of :mod:`simcomp.theory.fusion` are the leading order of
gradient *flow* from an infinitesimal, balanced start.  At the published step
size and initial scale three things they leave out matter (docs/fusion.md):
the finite step (a weight grows by the factor 1 + lr g per step, not
exp(lr g)), the time each sigmoidal rise takes near its plateau, and the
unequal initial sizes of the two modalities' weights.  None of them depends
on the sampled training set: for a linear network the squared loss on the
distribution is

    L(theta) = 1/2 (W - a)^T Sigma (W - a) + const,

where W = (W_1, ..., W_K) are the modalities' total weights (the product of
the layers on the path from x_r to the output), Sigma the inputs'
covariance and a the target's coefficients.  So the exact GD trajectory on
the distribution, from the run's own initial weights and at its learning
rate, is a prediction from the covariance alone; :func:`population_half_steps`
computes it for the published setting (one-dimensional modalities, width 1:
every layer is a scalar, the fusion layer one scalar per modality).

The network, for fusion at layer L_f of a depth-L network (two-layer late
fusion: L = L_f = 2; early fusion: L_f = 1):

    W_r = S * f_r * E_r,   E_r = prod_l e_{r,l} (its L_f - 1 encoder layers),
                           S = prod_l s_l (the L - L_f shared layers),

f_r the fusion layer's weight on modality r.  With g = Sigma (W - a), the
gradient of L in e_{r,l} is g_r W_r / e_{r,l}, in f_r it is g_r S E_r, in
s_l it is sum_r g_r W_r / s_l (each computed as the product of the other
factors, so a zero weight is no division by zero).
"""

from __future__ import annotations

import math

import numpy as np

from simcomp._jit import jit

__all__ = ["population_half_steps"]


@jit()
def _prod_except(values, skip):
    out = 1.0
    for i in range(values.shape[0]):
        if i != skip:
            out *= values[i]
    return out


@jit()
def _gd_halves(enc, fuse, shared, cov, a, lr, max_steps, halves):
    """GD on the population loss until every total weight has passed half its target
    (or ``max_steps``); fills ``halves`` (interpolated step, -1 never) and returns the
    last step run (-2: the weights stopped being finite)."""
    K = fuse.shape[0]
    n_enc = enc.shape[1]
    n_sh = shared.shape[0]
    W = np.empty(K)
    prev = np.empty(K)
    g = np.empty(K)
    g_enc = np.empty_like(enc)
    g_fuse = np.empty(K)
    g_sh = np.empty(n_sh)
    for r in range(K):
        halves[r] = -1.0
    S = _prod_except(shared, -1)
    for r in range(K):
        W[r] = S * fuse[r] * _prod_except(enc[r], -1)
    for r in range(K):
        if W[r] / a[r] >= 0.5:
            halves[r] = 0.0
    left = 0
    for r in range(K):
        if halves[r] < 0.0:
            left += 1
    step = 0
    while left > 0 and step < max_steps:
        for r in range(K):
            acc = 0.0
            for c in range(K):
                acc += cov[r, c] * (W[c] - a[c])
            g[r] = acc
        for r in range(K):
            E = _prod_except(enc[r], -1)
            g_fuse[r] = g[r] * S * E
            for l in range(n_enc):
                g_enc[r, l] = g[r] * S * fuse[r] * _prod_except(enc[r], l)
        for l in range(n_sh):
            other = _prod_except(shared, l)
            acc = 0.0
            for r in range(K):
                acc += g[r] * fuse[r] * _prod_except(enc[r], -1)
            g_sh[l] = acc * other
        for r in range(K):
            fuse[r] -= lr * g_fuse[r]
            for l in range(n_enc):
                enc[r, l] -= lr * g_enc[r, l]
        for l in range(n_sh):
            shared[l] -= lr * g_sh[l]
        step += 1
        S = _prod_except(shared, -1)
        for r in range(K):
            prev[r] = W[r]
            W[r] = S * fuse[r] * _prod_except(enc[r], -1)
            if not math.isfinite(W[r]):
                return -2
        for r in range(K):
            if halves[r] < 0.0 and W[r] / a[r] >= 0.5:
                f0, f1 = prev[r] / a[r], W[r] / a[r]
                halves[r] = step - 1 + (0.5 - f0) / (f1 - f0)
                left -= 1
    return step


def population_half_steps(cov, target, lr: float, enc, fuse, shared, max_steps: int):
    """Half steps of GD on the distribution's squared loss (half the mean squared error).

    Parameters
    ----------
    cov : (K, K) array
        The inputs' covariance (one dimension per modality).
    target : (K,) array
        The target's coefficients a (y = a . x + noise); nonzero.
    lr : float
        The GD learning rate.
    enc : (K, L_f - 1) array
        Each modality's encoder weights, input side first (empty for L_f = 1).
    fuse : (K,) array
        The fusion layer's weight on each modality's encoding (on its input for L_f = 1).
    shared : (L - L_f,) array
        The layers after the fusion layer.
    max_steps : int
        The horizon (the run's ``train.steps``).

    Returns
    -------
    list of float or None
        Per modality the first (interpolated) step at which W_r / a_r reaches 1/2, the
        target's value being the final total weight on the distribution; None if not
        within ``max_steps`` or if the weights stop being finite.
    """
    cov = np.ascontiguousarray(cov, dtype=np.float64)
    a = np.ascontiguousarray(target, dtype=np.float64)
    K = a.shape[0]
    if cov.shape != (K, K) or np.any(a == 0.0):
        raise ValueError(f"cov must be ({K}, {K}) and the target's coefficients nonzero")
    enc = np.array(enc, dtype=np.float64).reshape(K, -1)
    fuse = np.array(fuse, dtype=np.float64).reshape(K)
    shared = np.array(shared, dtype=np.float64).reshape(-1)
    halves = np.empty(K)
    last = _gd_halves(enc, fuse, shared, cov, a, float(lr), int(max_steps), halves)
    if last == -2:
        return [None] * K
    return [None if h < 0.0 else float(h) for h in halves]
