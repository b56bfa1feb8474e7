"""An independent reference of the theory's objects, for the tests of simcomp.theory.

Written without simcomp.theory: explicit input points X = y s beta v in R^d
(with a random orthogonal dictionary), the fused network evaluated neuron by
neuron on them (:class:`BruteNet`), the activations, and the (label,
presence) patterns enumerated directly.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

QS = [2.0, 2.5, 3.0, 4.0, 5.0]  # the exponents q the theory tests sweep


# --------------------------------------------------------------------------- independent reference


def ref_srelu(z, q, rho):
    if z <= 0:
        return 0.0
    if z <= rho:
        return z**q / (q * rho ** (q - 1))
    return z - (1 - 1 / q) * rho


def ref_srelu_prime(z, q, rho):
    if z <= 0:
        return 0.0
    if z <= rho:
        return (z / rho) ** (q - 1)
    return 1.0


def ref_act(z, activation, q, rho):
    return max(z, 0.0) if activation == "relu" else ref_srelu(z, q, rho)


def ref_act_prime(z, activation, q, rho):
    return float(z > 0) if activation == "relu" else ref_srelu_prime(z, q, rho)


class BruteNet:
    """Weights in input space, explicit pattern points, docs/model.md section 2-3 verbatim."""

    def __init__(self, beta, presence_patterns, q, rho, learner, activation, d, seed):
        self.beta = list(beta)
        self.K = len(beta)
        self.y, self.s, self.w = presence_patterns
        self.q, self.rho, self.learner, self.activation = q, rho, learner, activation
        self.d = d
        rng = np.random.default_rng(seed)
        self.v = []
        for _ in range(self.K):
            qm, r = np.linalg.qr(rng.normal(size=(d, d)))
            qm = qm * np.sign(np.diag(r))
            self.v.append(qm[:, 0])
        # X[p][r] = y s_r beta_r v_r
        self.X = [
            [self.y[p] * self.s[p, r] * self.beta[r] * self.v[r] for r in range(self.K)]
            for p in range(len(self.y))
        ]
        self.banks = [1] if learner == "symmetric" else [1, -1]

    def f(self, W, p):
        """W[r][b] is an (m, d) array."""
        total = 0.0
        for r in range(self.K):
            for b, c in enumerate(self.banks):
                for wi in W[r][b]:
                    z = float(wi @ self.X[p][r])
                    if self.learner == "symmetric":
                        total += ref_srelu(z, self.q, self.rho) - ref_srelu(-z, self.q, self.rho)
                    else:
                        total += c * ref_act(z, self.activation, self.q, self.rho)
        return total

    def loss(self, W):
        return sum(
            self.w[p] * math.log1p(math.exp(-self.y[p] * self.f(W, p))) for p in range(len(self.y))
        )

    def grad(self, W):
        """The weight-space gradient formula of docs/model.md section 3."""
        G = [[np.zeros_like(W[r][b]) for b in range(len(self.banks))] for r in range(self.K)]
        for p in range(len(self.y)):
            fp = self.f(W, p)
            lp = -self.y[p] / (1.0 + math.exp(self.y[p] * fp))
            for r in range(self.K):
                for b, c in enumerate(self.banks):
                    for i, wi in enumerate(W[r][b]):
                        z = float(wi @ self.X[p][r])
                        if self.learner == "symmetric":
                            dz = ref_srelu_prime(abs(z), self.q, self.rho)
                        else:
                            dz = c * ref_act_prime(z, self.activation, self.q, self.rho)
                        G[r][b][i] += self.w[p] * lp * dz * self.X[p][r]
        return G

    def alignments(self, W):
        return np.array(
            [[[c * float(wi @ self.v[r]) for wi in W[r][b]] for b, c in enumerate(self.banks)]
             for r in range(self.K)]
        )

    def random_weights(self, m, scale, seed):
        rng = np.random.default_rng(seed)
        return [[rng.normal(0, scale, size=(m, self.d)) for _ in self.banks] for _ in range(self.K)]


FORMS = [("symmetric", "srelu"), ("class_banks", "srelu"), ("class_banks", "relu")]


def ref_patterns(presence):
    rows = list(itertools.product([-1, 1], *([[0, 1]] * len(presence))))
    y = np.array([r[0] for r in rows], dtype=float)
    s = np.array([r[1:] for r in rows], dtype=int)
    w = np.array([0.5 * np.prod([p if si else 1 - p for si, p in zip(r[1:], presence)])
                  for r in rows])
    return y, s, w
