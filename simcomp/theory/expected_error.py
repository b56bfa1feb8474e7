"""Exact expected test error of trained weights on the data distribution.

A finite test set measures a network's error with sampling noise of about
sqrt(err (1 - err) / n_test); this module computes the error the test set
estimates, so that theory and simulation can be compared without it
(docs/theory.md section 10).

For a test sample with label y and presence pattern s, modality r's
pre-activations u_r = W_r X_r (one per neuron, all banks) are

    u_r = y beta_r s_r A_r[:, 0] + gamma_r sum_{j in S_r} eps_j A_r[:, j] + W_r xi_r,

with A_r = W_r M_r (the weights in dictionary coordinates) and
W_r xi_r ~ N(0, sigma_r^2 W_r W_r^T).  Given the distractor pattern, u_r is
Gaussian and the modalities are independent.  The expectation over the
Gaussian is taken by randomly shifted quasi-Monte Carlo (a Kronecker
sequence in sum_r rank(W_r) dimensions, mapped through the inverse normal
CDF), the distractor patterns are drawn at random with a fixed seed, one per
point, and (y, s) is enumerated exactly with its probability.  Independent
random shifts give the standard error that is returned with every estimate:
the stated accuracy of the result.  Tie rule: an output of exactly 0 counts
as half an error (docs/model.md section 4.1).

Imports only numpy and the theory's activation helpers; never the simulator.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from simcomp.theory.activation import _check_form, srelu
from simcomp.theory.normal import normal_quantile
from simcomp.theory.orthant import presence_pattern_probabilities

__all__ = [
    "ExpectedTestError",
    "GaussianEncoder",
    "encoders_from_weights",
    "expected_test_error",
    "expected_error_gaussian",
    "normal_quantile",
]

def _kronecker_alpha(dim: int) -> np.ndarray:
    """Fractional parts of the square roots of the first ``dim`` primes (a Kronecker sequence)."""
    primes: list[int] = []
    n = 2
    while len(primes) < dim:
        if all(n % p for p in primes if p * p <= n):
            primes.append(n)
        n += 1
    return np.sqrt(np.array(primes, dtype=float)) % 1.0


class ExpectedTestError(NamedTuple):
    """Expected test errors and their standard errors (the stated accuracy).

    ``fused`` and ``per_modality`` (one per trained modality, the encoder
    used alone) are the estimates; ``fused_stderr`` and
    ``per_modality_stderr`` their standard errors over the independent
    random shifts.  ``fused, per_modality = expected_test_error(...)[:2]``.
    """

    fused: float
    per_modality: np.ndarray
    fused_stderr: float
    per_modality_stderr: np.ndarray


def _encoder_output(u: np.ndarray, banks: int, activation: str, q: float, rho: float) -> np.ndarray:
    """phi_r from pre-activations u of shape (N, B, m): the encoder's output per point."""
    if banks == 1:  # psi(z) = sign(z) srelu(|z|)
        return np.sum(np.copysign(srelu(np.abs(u), q, rho), u), axis=(1, 2))
    act = np.maximum(u, 0.0) if activation == "relu" else srelu(u, q, rho)
    return act[:, 0].sum(axis=1) - act[:, 1].sum(axis=1)


def _tie_error(margin: np.ndarray) -> np.ndarray:
    """1 where y f < 0, 1/2 where f = 0 exactly, else 0 (docs/model.md section 4.1)."""
    return (margin < 0.0) + 0.5 * (margin == 0.0)


@dataclass
class GaussianEncoder:
    """One modality's pre-activations on a fresh test sample, as a Gaussian (plus distractors).

    For label y and presence s_r the B m pre-activations (bank-major, the
    order of ``W.reshape(-1, d)``) are
    ``y beta s_r signal + factor @ Z + strength * sum_{j in S} eps_j atoms[:, j]``
    with Z ~ N(0, I) and S a uniform ``distractors``-subset of the columns of
    ``atoms`` (None: no distractor part, e.g. when it is folded into ``factor``).
    """

    signal: np.ndarray  # (B m,) response to the unit signal vector, W v
    factor: np.ndarray  # (B m, rank), factor @ factor.T = noise covariance
    beta: float
    presence: float
    atoms: np.ndarray | None = None  # (B m, d - 1) responses to the distractor atoms
    distractors: int = 0
    strength: float = 0.0


def encoders_from_weights(weights, modalities, dictionaries=None, banks: int = 1):
    """The :class:`GaussianEncoder` of each trained modality from its weights (B, m, d_r).

    The noise factor is sigma_r times a square root of W_r W_r^T (eigenvalues
    below 1e-14 of the largest dropped); the atoms are the columns 2..d_r of
    W_r M_r.
    """
    K = len(weights)
    if len(modalities) != K:
        raise ValueError(f"{len(modalities)} modalities for {K} weight arrays")
    if dictionaries is None:
        dictionaries = [None] * K
    if len(dictionaries) != K:
        raise ValueError(f"{len(dictionaries)} dictionaries for {K} weight arrays")
    out = []
    for W, mod, M in zip(weights, modalities, dictionaries):
        W = np.asarray(W, dtype=float)
        if W.ndim != 3 or W.shape[0] != banks or W.shape[2] != mod.dim:
            raise ValueError(f"weights of modality {mod.name} have shape {W.shape}; "
                             f"expected ({banks}, m, {mod.dim})")
        Wf = W.reshape(-1, mod.dim)
        A = Wf if M is None else Wf @ np.asarray(M, dtype=float)
        factor = (mod.noise * _sqrt_psd(Wf @ Wf.T) if mod.noise > 0.0
                  else np.zeros((Wf.shape[0], 0)))
        out.append(GaussianEncoder(
            signal=A[:, 0].copy(), factor=factor,
            beta=float(mod.beta), presence=float(mod.presence), atoms=A[:, 1:].copy(),
            distractors=int(mod.distractors), strength=float(mod.distractor_strength)))
    return out


def _sqrt_psd(C: np.ndarray) -> np.ndarray:
    """L with L L^T = C for a symmetric positive semi-definite C (tiny eigenvalues dropped)."""
    lam, vec = np.linalg.eigh(C)
    keep = lam > max(lam.max(initial=0.0), 0.0) * 1e-14
    return vec[:, keep] * np.sqrt(lam[keep])


def expected_test_error(
    weights: Sequence[np.ndarray],
    modalities: Sequence,
    dictionaries: Sequence[np.ndarray | None] | None = None,
    learner: str = "symmetric",
    activation: str = "srelu",
    q: float = 3.0,
    rho: float = 1.0,
    *,
    points: int = 4096,
    replicates: int = 16,
    seed: int = 0,
    correlation: float = 0.0,
) -> ExpectedTestError:
    """Expected test error of the fused network and of each encoder alone.

    Parameters
    ----------
    weights : sequence of (B, m, d_r) arrays
        The trained weights, one per trained modality (``RunResult.final_weights``).
    modalities : sequence of ModalityConfig (or objects with the same fields)
        Each trained modality's name, dim, beta, presence, noise, distractors
        and distractor_strength, in the order of ``weights``.
    dictionaries : sequence of (d_r, d_r) arrays or None, optional
        The orthogonal dictionaries M_r; None (or a None entry) is the identity.
    learner, activation, q, rho
        The model (docs/model.md section 2).
    points : int
        Quasi-Monte Carlo points per random shift.
    replicates : int
        Independent random shifts (>= 2); their spread gives the standard error.
    seed : int
        Seed of the shifts and the distractor draws.
    correlation : float
        The presence correlation c of the data (docs/model.md section 1.1):
        the presence patterns are weighted by their orthant probabilities.

    Returns
    -------
    ExpectedTestError
        ``(fused, per_modality, fused_stderr, per_modality_stderr)``.

    Notes
    -----
    Without noise and distractors every pre-activation is fixed by (y, s)
    and the result is exact (standard error 0).
    """
    _check_form(learner, activation)
    banks = 1 if learner == "symmetric" else 2
    encoders = encoders_from_weights(weights, modalities, dictionaries, banks)
    return expected_error_gaussian(encoders, banks, activation, q, rho,
                                   points=points, replicates=replicates, seed=seed,
                                   correlation=correlation)


def expected_error_gaussian(encoders: Sequence[GaussianEncoder], banks: int, activation: str,
                            q: float, rho: float, *, points: int = 4096, replicates: int = 16,
                            seed: int = 0, correlation: float = 0.0) -> ExpectedTestError:
    """:func:`expected_test_error` from each modality's :class:`GaussianEncoder`."""
    K = len(encoders)
    points, replicates = int(points), int(replicates)
    if points < 1 or replicates < 2:
        raise ValueError(f"need points >= 1 and replicates >= 2, got {points}, {replicates}")
    rng = np.random.default_rng(seed)
    ranks = [enc.factor.shape[1] for enc in encoders]
    offsets = np.concatenate([[0], np.cumsum(ranks)]).astype(int)
    alpha = _kronecker_alpha(max(int(offsets[-1]), 1))
    has_dist = [enc.atoms is not None and enc.distractors > 0 and enc.strength > 0.0
                for enc in encoders]
    random_part = offsets[-1] > 0 or any(has_dist)
    n_pts = points if random_part else 1
    reps = replicates if random_part else 2

    # exact enumeration of (y, s) with its probability
    p = np.array([enc.presence for enc in encoders], dtype=float)
    combos = np.array(list(itertools.product([-1.0, 1.0], *([[0, 1]] * K))))
    ys, ss = combos[:, 0], combos[:, 1:].astype(int)
    if correlation == 0.0:
        w_pat = 0.5 * np.prod(np.where(ss == 1, p, 1.0 - p), axis=1)
    else:  # same order: y outermost, then s_1 .. s_K
        w_pat = 0.5 * np.tile(presence_pattern_probabilities(p, correlation), 2)

    fused_reps = np.zeros(reps)
    mod_reps = np.zeros((reps, K))
    idx = np.arange(1, n_pts + 1, dtype=float)[:, None]
    for rep in range(reps):
        z = None
        if offsets[-1] > 0:
            shift = rng.random(alpha.size)
            z = normal_quantile((idx * alpha[None, :] + shift[None, :]) % 1.0)
        # phi[r][(y, s_r)] = encoder r's output on the points, for the four label/presence cases
        phi = []
        for r, enc in enumerate(encoders):
            base = np.zeros((n_pts, enc.signal.size))
            if ranks[r] > 0:
                # A contiguous copy: with a strided operand the product takes a
                # path that costs ~100x more (2.4 ms against 0.02 at 2048 x 16).
                base += np.ascontiguousarray(z[:, offsets[r]:offsets[r + 1]]) @ enc.factor.T
            if has_dist[r]:
                n_atoms = enc.atoms.shape[1]
                chosen = np.argsort(rng.random((n_pts, n_atoms)), axis=1)[:, :enc.distractors]
                signs = rng.choice(np.array([-1.0, 1.0]), size=chosen.shape)
                base += enc.strength * np.einsum("nk,nkj->nj", signs, enc.atoms.T[chosen])
            out = {}
            silent = _encoder_output(base.reshape(n_pts, banks, -1), banks, activation, q, rho)
            for y in (-1.0, 1.0):
                out[(y, 0)] = silent  # without signal the label does not enter u
                u = base + (y * enc.beta) * enc.signal[None, :]
                out[(y, 1)] = _encoder_output(u.reshape(n_pts, banks, -1), banks,
                                              activation, q, rho)
            phi.append(out)
        for y, s, w in zip(ys, ss, w_pat):
            if w == 0.0:
                continue
            f = phi[0][(y, s[0])].copy()
            for r in range(1, K):
                f += phi[r][(y, s[r])]
            fused_reps[rep] += w * _tie_error(y * f).mean()
        for r, enc in enumerate(encoders):
            for y in (-1.0, 1.0):
                for s, ps in ((0, 1.0 - enc.presence), (1, enc.presence)):
                    if ps > 0.0:
                        mod_reps[rep, r] += 0.5 * ps * _tie_error(y * phi[r][(y, s)]).mean()
    se = np.sqrt(reps / (reps - 1.0)) / np.sqrt(reps)
    return ExpectedTestError(
        fused=float(fused_reps.mean()),
        per_modality=mod_reps.mean(axis=0),
        fused_stderr=float(fused_reps.std() * se),
        per_modality_stderr=mod_reps.std(axis=0) * se,
    )
