"""The distribution-level noisy theory: the noise-aware dynamics on the data's law, not on the run's draw.

:mod:`simcomp.theory.noisy_dynamics` follows every training sample's noise;
fed with the run's own training noise it *tracks* the run (a check of the
signal-noise decomposition, not a prediction).  This module predicts from
what is known before any sample is drawn:

* the configuration (beta, noise sigma, distractors, dimension, n_train);
* the drawn initial weights (the initial alignments and the weights' parts
  orthogonal to the signal, as the noise-free theory uses the alignments);
* the (y, s) pattern weights -- 2^(K+1) numbers: the population's, or the
  training set's empirical ones (a low-dimensional summary of the draw).

Given the weights, a sample's noise enters the dynamics only through a few
Gaussian numbers: its noise along the signal e ~ N(0, sigma^2), its
orthogonal noise energy ||N||^2 (concentrated at sigma^2 (d - 1) plus the
distractors' gamma^2 k) and its initial noise pre-activations
nu(0) = <w_i(0), N> ~ N(0, s^2 G0) with G0 the Gram of the weights' parts
orthogonal to v and s^2 = sigma^2 + gamma^2 k / (d - 1).  The dynamics is
averaged over that law on a fixed set of ``nodes`` quadrature points per
run: each pattern gets nodes in proportion to its weight, and on every node
e and nu(0) are stratified normal quantiles (one stratum per node, randomly
paired across coordinates by a fixed permutation, independent of the run's
seed), nu(0) mixed by a square root of s^2 G0.  A node of weight W stands
for n W training samples; each of them memorises its own noise at the rate
of one sample (weight 1/n), so the node's noise energy is scaled by
1 / (n W) -- which leaves the dynamics of a node with W = 1/n that of one
sample and makes the weight Gram's noise part an unbiased estimate.  As
``nodes`` grows the result converges to the expectation of the dynamics
over the noise law; nothing in it depends on the training set's noise.

Never imports the simulator.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simcomp.config import Config
from simcomp.theory.expected_error import _sqrt_psd, normal_quantile
from simcomp.theory.noisy_dynamics import NoisyPrediction, TrainingNoise, noise_aware_predict

__all__ = ["DEFAULT_NODES", "distribution_nodes", "distribution_predict", "weight_geometry"]

# Quadrature points per run: enough that the theory's own sampling spread is
# small against a run's (checked in benchmarks/noise_theory.py); a step costs
# O(nodes K B m).
DEFAULT_NODES = 512
# The stratification's permutations: fixed, so a prediction never depends on a run's seed.
_NODE_SEED = 20220717


def weight_geometry(initial_weights, signal) -> np.ndarray:
    """Gram matrix (B m, B m) of the initial weights' parts orthogonal to the unit ``signal``."""
    W = np.asarray(initial_weights, dtype=float)
    v = np.asarray(signal, dtype=float)
    Wf = W.reshape(-1, W.shape[-1])
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing weights: inf, handled later
        Wp = Wf - np.outer(Wf @ v, v)
        return Wp @ Wp.T


def _strata(count: int, rng: np.random.Generator, rows: int) -> np.ndarray:
    """(rows, count) standard normal quantiles at the stratum centres, each row freshly permuted."""
    z = normal_quantile((np.arange(count) + 0.5) / count)
    return np.stack([z[rng.permutation(count)] for _ in range(rows)]) if rows else \
        np.empty((0, count))


def _mixing(G0: np.ndarray) -> np.ndarray:
    """A square root of the initial weights' Gram; for weights too large to factor (an
    overflowing init_scale) the square roots of its diagonal, inf or nan: the predicted
    dynamics then diverges as the run does, and its errors are reported as None."""
    if G0.shape[0] == 0:
        return np.zeros((0, 0))
    with np.errstate(over="ignore", invalid="ignore"):
        sym = 0.5 * (G0 + G0.T)
    if np.all(np.isfinite(sym)):
        try:
            return _sqrt_psd(sym)
        except np.linalg.LinAlgError:
            pass
    with np.errstate(invalid="ignore"):
        return np.diag(np.sqrt(np.abs(np.diag(G0))))


def distribution_nodes(cfg: Config, trained: Sequence[int], y_pat, s_pat, w_pat,
                       weight_grams: Sequence[np.ndarray], *, nodes: int = DEFAULT_NODES):
    """The quadrature nodes of :func:`distribution_predict`.

    Parameters
    ----------
    cfg : Config
        Each trained modality's noise, distractors and dimension; ``data.n_train``.
    trained : sequence of int
        Indices into ``cfg.data.modality``.
    y_pat, s_pat, w_pat : array_like
        The (y, s) patterns over the trained modalities and their weights.
    weight_grams : sequence of (B m, B m) arrays
        :func:`weight_geometry` of each trained modality's initial weights.
    nodes : int
        Total number of nodes (each pattern of positive weight gets at least one).

    Returns
    -------
    y : (N,) float, presence : (N, K_run) float, weight : (N,) float,
    noise : list of :class:`~simcomp.theory.noisy_dynamics.TrainingNoise`
    """
    trained = [int(r) for r in trained]
    mods = [cfg.data.modality[r] for r in trained]
    y_pat = np.asarray(y_pat, dtype=float).reshape(-1)
    s_pat = np.asarray(s_pat, dtype=float).reshape(y_pat.size, len(trained))
    w_pat = np.asarray(w_pat, dtype=float).reshape(-1)
    if int(nodes) < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    keep = w_pat > 0.0
    counts = np.maximum(1, np.round(w_pat[keep] * int(nodes)).astype(np.int64))
    y = np.repeat(y_pat[keep], counts)
    presence = np.repeat(s_pat[keep], counts, axis=0)
    weight = np.repeat(w_pat[keep] / counts, counts)
    n = cfg.data.n_train
    rng = np.random.default_rng(_NODE_SEED)
    noise = []
    for r, mod in enumerate(mods):
        G0 = np.asarray(weight_grams[r], dtype=float)
        rows = G0.shape[0]
        sigma, gamma = np.float64(mod.noise), np.float64(mod.distractor_strength)
        with np.errstate(over="ignore", invalid="ignore"):  # absurd noise: inf, the run's too
            distract = (gamma**2 * mod.distractors
                        if mod.distractors > 0 and mod.dim > 1 else np.float64(0.0))
            energy = sigma**2 * (mod.dim - 1) + distract  # E ||N||^2
            s2 = sigma**2 + (distract / (mod.dim - 1) if mod.dim > 1 else 0.0)
        L = _mixing(G0)
        e_parts, pre_parts = [], []
        for c in counts:
            z = _strata(int(c), rng, 1 + L.shape[1])
            with np.errstate(over="ignore", invalid="ignore"):
                e_parts.append(sigma * z[0])
                pre_parts.append(np.sqrt(s2) * (L @ z[1:]))
        e = np.concatenate(e_parts)
        pre0 = np.concatenate(pre_parts, axis=1)
        B = cfg.model.banks
        with np.errstate(over="ignore", invalid="ignore"):
            sq_norm = energy / (n * weight)
        noise.append(TrainingNoise(
            sq_norm=sq_norm, along_signal=e,
            pre0=pre0.reshape(B, rows // B, -1), weight_gram0=G0))
    return y, presence, weight, noise


def distribution_predict(cfg: Config, trained: Sequence[int], alignment0, y_pat, s_pat, w_pat,
                         weight_grams: Sequence[np.ndarray], *, nodes: int = DEFAULT_NODES,
                         points: int = 2048, replicates: int = 8) -> NoisyPrediction:
    """The distribution-level prediction of one noisy run (learned steps, winner, test error).

    Parameters
    ----------
    cfg : Config
    trained : sequence of int
        Indices into ``cfg.data.modality``.
    alignment0 : (K_run, B, m) array
        The run's initial alignments.
    y_pat, s_pat, w_pat : array_like
        The (y, s) pattern weights the prediction assumes.
    weight_grams : sequence of (B m, B m) arrays
        :func:`weight_geometry` of each trained modality's initial weights.
    nodes : int
        Quadrature nodes (accuracy of the average over the noise law).
    points, replicates : int
        Accuracy of the expected test error.

    Returns
    -------
    NoisyPrediction

    Examples
    --------
    >>> import numpy as np, simcomp
    >>> from simcomp.theory.distribution import distribution_predict
    >>> cfg = simcomp.build_config(overrides={"data.modality.0.noise": 0.05,
    ...                                        "train.steps": 50})
    >>> B, m = cfg.model.banks, cfg.model.width
    >>> a0 = np.full((1, B, m), 0.01)
    >>> G0 = [np.eye(B * m) * 0.01**2 * (cfg.data.modality[0].dim - 1)]
    >>> pred = distribution_predict(cfg, [0], a0, [-1.0, 1.0], [[1], [1]], [0.5, 0.5], G0,
    ...                             nodes=64)
    >>> pred.learned_step.shape
    (1,)
    """
    y, presence, weight, noise = distribution_nodes(cfg, trained, y_pat, s_pat, w_pat,
                                                    weight_grams, nodes=nodes)
    return noise_aware_predict(cfg, trained, alignment0, y, presence, noise, weight=weight,
                               points=points, replicates=replicates)
