"""Exact Shapley values of the modalities for test accuracy.

Late fusion makes "leaving a modality out" simple: an absent modality
contributes nothing to the fused output (its encoder output is dropped,
which is what zero-padding its input gives, since phi_r(0) = 0).  The value
of a coalition S of modalities is the weighted test accuracy of
sign(sum_{r in S} phi_r); an output of exactly 0 is a fair coin and counts
as half right, so the empty coalition is worth 1/2.  The Shapley value of
modality r averages its marginal contribution over all orders in which the
modalities could join: with K modalities that is 2^K coalition values, so K
is limited to :data:`MAX_MODALITIES`.
"""

from __future__ import annotations

from math import factorial

import numpy as np

__all__ = ["MAX_MODALITIES", "coalition_accuracy", "shapley_values", "predictor_error"]

MAX_MODALITIES = 8


def _inputs(phi, y, weight):
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if phi.ndim != 2 or phi.shape[0] != y.size:
        raise ValueError(f"phi must have shape (n, K) with n = len(y) = {y.size}, got {phi.shape}")
    if weight is None:
        weight = np.full(y.size, 1.0 / max(y.size, 1))
    weight = np.asarray(weight, dtype=np.float64).reshape(-1)
    if weight.size != y.size:
        raise ValueError(f"weight has {weight.size} entries, y has {y.size}")
    return phi, y, weight


def _accuracy(output, y, weight):
    """Weighted accuracy of sign(output); exact zeros count half."""
    margin = y[:, None] * output
    return weight @ ((margin > 0) + 0.5 * (margin == 0))


def coalition_accuracy(phi, y, weight=None) -> np.ndarray:
    """Accuracy of every coalition: entry ``mask`` is the coalition {r : bit r of mask set}.

    Parameters
    ----------
    phi : array_like, shape (n, K)
        Per-sample encoder outputs.
    y : array_like, shape (n,)
        Labels in {-1, +1}.
    weight : array_like, shape (n,), optional
        Sample weights (default 1/n each).

    Returns
    -------
    ndarray, shape (2^K,)
    """
    phi, y, weight = _inputs(phi, y, weight)
    K = phi.shape[1]
    if K > MAX_MODALITIES:
        raise ValueError(
            f"exact Shapley values need 2^K coalitions; K = {K} modalities is more than the "
            f"supported {MAX_MODALITIES}"
        )
    masks = np.arange(2**K)
    member = ((masks[None, :] >> np.arange(K)[:, None]) & 1).astype(np.float64)  # (K, 2^K)
    return _accuracy(phi @ member, y, weight)


def shapley_values(phi, y, weight=None) -> np.ndarray:
    """Exact Shapley value of each modality for the weighted test accuracy.

    The values sum to acc(all modalities) - 1/2 (efficiency); a modality
    whose output is always 0 gets 0, and two modalities with identical
    outputs get the same value.

    Raises
    ------
    ValueError
        For more than :data:`MAX_MODALITIES` modalities or mismatched shapes.
    """
    acc = coalition_accuracy(phi, y, weight)
    K = int(np.log2(acc.size))
    sizes = np.array([bin(mask).count("1") for mask in range(acc.size)])
    values = np.zeros(K)
    for r in range(K):
        bit = 1 << r
        without = np.array([mask for mask in range(acc.size) if not mask & bit], dtype=np.int64)
        s = sizes[without]
        coef = np.array([factorial(k) * factorial(K - k - 1) for k in s], dtype=np.float64) / factorial(K)
        values[r] = coef @ (acc[without | bit] - acc[without])
    return values


def predictor_error(phi, y, weight=None, mix=None) -> float:
    """Weighted test error of sign(sum_r mix_r phi_r); exact zeros count half.

    ``mix`` defaults to ones (the plain fused output).  Used for the
    alternating method's predictor and, with the uni-modal networks'
    outputs as ``phi``, for the uni-modal ensemble.
    """
    phi, y, weight = _inputs(phi, y, weight)
    mix = np.ones(phi.shape[1]) if mix is None else np.asarray(mix, dtype=np.float64).reshape(-1)
    if mix.size != phi.shape[1]:
        raise ValueError(f"mix has {mix.size} weights, phi has {phi.shape[1]} modalities")
    return float(1.0 - _accuracy((phi @ mix)[:, None], y, weight)[0])
