"""Noise-free data as (y, s) patterns, and the fused network's margins on them.

A noise-free, distractor-free sample is fully described by its label y and
its presence pattern s (which modalities carry signal); a data set is a
weighted list of such patterns (docs/theory.md section 1).  This module
lists the population patterns, measures the presence fraction pi of a
pattern set (of the training set, in :func:`simcomp.theory.predict`), and
evaluates the network's margins y f(y, s) and loss in alignment coordinates
(docs/theory.md section 2).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from simcomp.theory.activation import _act, _check_form, _sigmoid_neg, srelu, srelu_prime
from simcomp.theory.orthant import presence_pattern_probabilities

__all__ = ["population_patterns", "presence_fraction", "pattern_margins", "population_loss"]


def population_patterns(presence: Sequence[float],
                        correlation: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 2^(K+1) (y, s) patterns of the noise-free distribution and their probabilities.

    Order: ``itertools.product([-1, +1], [0, 1], ..., [0, 1])`` over
    ``(y, s_1, ..., s_K)``, i.e. index ``[y=+1] 2^K + sum_r s_r 2^(K-1-r)``.
    P(y, s) = 1/2 P(s): with independent coins (``correlation`` c = 0)
    P(s) = prod_r p_r^s_r (1 - p_r)^(1 - s_r), else the orthant probability of
    :func:`simcomp.theory.orthant.presence_pattern_probabilities`.  Patterns
    of probability zero (p_r in {0, 1}) are kept.

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
    if correlation == 0.0:
        w_pat = 0.5 * np.prod(np.where(s_pat == 1, p, 1.0 - p), axis=1)
    else:
        w_pat = 0.5 * np.tile(presence_pattern_probabilities(p, correlation), 2)
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


# --------------------------------------------------------------------------- forward pass


class _Forward:
    """The noise-free forward pass and alignment update, vectorised over neurons.

    Holds the pattern data so that one GD step is a handful of numpy calls.
    Used by :func:`pattern_margins`, :func:`population_loss` and the NumPy
    reference ``simcomp.theory.reduced._reduced_dynamics_numpy``;
    :func:`simcomp.theory.reduced_dynamics` runs the same arithmetic compiled.
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
