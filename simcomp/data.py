"""The sparse-coding data of docs/model.md section 1, and the random streams behind a run.

All randomness of a run flows from ``cfg.seed`` through one
:class:`numpy.random.SeedSequence`, split into independent child streams for
the dictionaries, the training set, the test set and the initial weights.
Each of those is split again per modality, so that changing ``n_train`` (or
adding a modality at the end) leaves every other draw untouched, and the
joint and uni-modal runs of a comparison start from the same encoder weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from .config import Config, ModalityConfig
from .presence import correlated_presence, pattern_probabilities

__all__ = [
    "IdentityDictionary",
    "Dataset",
    "ExperimentData",
    "make_dictionary",
    "draw_dataset",
    "population_dataset",
    "initial_weights",
    "make_experiment_data",
    "empirical_patterns",
    "batch_seed_sequence",
]

# Positions of the child streams; fixed forever, since changing them changes every run.
_STREAM_DICTIONARY, _STREAM_TRAIN, _STREAM_TEST, _STREAM_INIT = range(4)
# Child 4 belongs to the training method's own random numbers (simcomp.methods);
# the data never spawns it, so switching a method on changes no draw above.
_STREAM_METHOD = 4
# Child 5 orders the mini-batches of SGD (simcomp.batches, train.batch_size > 0);
# full-batch training never spawns it, so it changes no draw above either.
_STREAM_BATCH = 5


@dataclass(frozen=True)
class Dataset:
    """A weighted set of samples.

    Attributes
    ----------
    X : list of ndarray
        One (n, d_r) float64 array per modality.
    y : ndarray
        (n,) labels in {-1.0, +1.0}.
    presence : ndarray
        (n, K) int8, s_r of each sample (1 where modality r carries signal).
    weight : ndarray
        (n,) sample weights omega_j, summing to 1.
    """

    X: list
    y: np.ndarray
    presence: np.ndarray
    weight: np.ndarray

    @property
    def n(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class ExperimentData:
    """Everything random about an experiment, drawn once from its seed."""

    dictionaries: list  # (d_r, d_r) orthogonal matrices (IdentityDictionary for the identity)
    train: Dataset
    test: Dataset
    init: list  # (B, m, d_r) initial weights per modality

    @property
    def signals(self) -> list:
        """Unit signal vectors v_r = M_r e_1."""
        return [np.ascontiguousarray(M[:, 0]) for M in self.dictionaries]


def _streams(seed: int, n_modalities: int) -> list[tuple[np.random.Generator, list]]:
    """Per stream: a shared generator (child 0, the labels) and one per modality (children 1..K)."""
    streams = []
    for stream in np.random.SeedSequence(seed).spawn(4):
        shared = np.random.default_rng(stream.spawn(1)[0])
        streams.append((shared, [np.random.default_rng(c) for c in stream.spawn(n_modalities)]))
    return streams


class IdentityDictionary:
    """The d x d identity as a dictionary, without its d^2 entries.

    A dense identity of d = 100000 would take 75 GiB; this stands in for it
    wherever a dictionary is used: ``W @ M`` (coordinates in the dictionary's
    basis) and ``M @ z`` return a copy of the other operand, ``M.T`` is
    ``M``, and ``M[:, j]`` is the unit vector e_j.  Anything else (e.g.
    ``np.asarray(M)``) builds the dense matrix, so results never differ
    from ``np.eye(d)``.
    """

    # Makes numpy hand ``ndarray @ M`` to __rmatmul__ instead of converting M.
    __array_ufunc__ = None
    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.shape = (self.dim, self.dim)

    @property
    def T(self) -> "IdentityDictionary":
        return self

    def __len__(self) -> int:
        return self.dim

    def _operand(self, other, axis: int) -> np.ndarray:
        other = np.asarray(other)
        if other.ndim == 0 or other.shape[axis] != self.dim:
            raise ValueError(f"matmul: shape {other.shape} does not fit a ({self.dim}, {self.dim}) "
                             "dictionary")
        return np.array(other, dtype=np.result_type(other.dtype, np.float64))

    def __rmatmul__(self, other) -> np.ndarray:
        return self._operand(other, -1)

    def __matmul__(self, other) -> np.ndarray:
        return self._operand(other, 0 if np.ndim(other) == 1 else -2)

    def __getitem__(self, index):
        if (isinstance(index, tuple) and len(index) == 2 and index[0] == slice(None)
                and isinstance(index[1], (int, np.integer))):
            column = np.zeros(self.dim)
            column[index[1]] = 1.0  # IndexError for a bad column, as for an array
            return column
        return np.eye(self.dim)[index]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.eye(self.dim, dtype=dtype)

    def __repr__(self) -> str:
        return f"IdentityDictionary({self.dim})"


def make_dictionary(mod: ModalityConfig, rng: np.random.Generator):
    """The orthogonal dictionary M_r: identity, or Q of a Gaussian matrix with sign(diag R) fixed.

    The identity is an :class:`IdentityDictionary` (never materialised); a
    random dictionary is a dense (d, d) array.  Fixing the signs makes Q a
    deterministic function of the Gaussian draw (QR is unique only up to them).
    """
    if mod.dictionary == "identity":
        return IdentityDictionary(mod.dim)
    gauss = rng.standard_normal((mod.dim, mod.dim))
    q_mat, r_mat = np.linalg.qr(gauss)
    signs = np.sign(np.diag(r_mat))
    signs[signs == 0] = 1.0
    return q_mat * signs[None, :]


def draw_dataset(
    cfg: Config,
    dictionaries: list,
    n: int,
    label_rng: np.random.Generator,
    modality_rngs: list[np.random.Generator],
) -> Dataset:
    """Draw ``n`` i.i.d. samples of the data of docs/model.md section 1, weighted 1/n.

    Each modality's stream draws its presence first, then its distractors and
    noise.  Independent presence (c = 0) is one uniform per sample and
    modality, as it always was; correlated presence (c != 0) takes one
    standard normal per sample from each modality's stream instead and mixes
    them (:func:`simcomp.presence.correlated_presence`), so every other draw
    keeps its place in its stream.
    """
    y = label_rng.choice(np.array([-1.0, 1.0]), size=n)
    Xs, presence = [], np.zeros((n, cfg.K), dtype=np.int8)
    c = cfg.data.presence_correlation
    if c != 0.0:
        normals = np.stack([rng.standard_normal(n) for rng in modality_rngs], axis=1)
        presence[:] = correlated_presence(normals, [mod.presence for mod in cfg.data.modality], c)
    for r, (mod, M, rng) in enumerate(zip(cfg.data.modality, dictionaries, modality_rngs)):
        if c == 0.0:
            presence[:, r] = (rng.random(n) < mod.presence).astype(np.int8)
        s = presence[:, r]
        z = np.zeros((n, mod.dim))
        z[:, 0] = y * mod.beta * s
        if mod.distractors > 0:
            # A uniform k-subset of atoms 2..d per sample: the first k of a random permutation.
            order = np.argsort(rng.random((n, mod.dim - 1)), axis=1)[:, : mod.distractors] + 1
            signs = rng.choice(np.array([-1.0, 1.0]), size=order.shape)
            np.put_along_axis(z, order, signs * mod.distractor_strength, axis=1)
        if isinstance(M, IdentityDictionary):
            # X = z directly; adding +0.0 turns the -0.0 of absent signals into +0.0,
            # exactly what z @ eye(d).T gives, so the data do not depend on the path.
            X = np.add(z, 0.0, out=z)
        else:
            X = z @ M.T
        if mod.noise > 0:
            X += rng.normal(0.0, mod.noise, size=X.shape)
        Xs.append(np.ascontiguousarray(X))
    return Dataset(X=Xs, y=y, presence=presence, weight=np.full(n, 1.0 / n))


def population_dataset(cfg: Config, dictionaries: list) -> Dataset:
    """All 2^(K+1) noiseless (y, s) points, weighted by their probability.

    Training on this set is gradient descent on the population loss.
    Patterns are ordered with y outermost (-1 first), then s_1, ..., s_K as
    binary digits (0 first); patterns of probability 0 are kept, with weight 0.
    With correlated presence (c != 0) P(s) is the orthant probability of
    :func:`simcomp.presence.pattern_probabilities`; y is independent of s.
    """
    patterns = list(product((-1.0, 1.0), *([(0, 1)] * cfg.K)))
    y = np.array([pat[0] for pat in patterns])
    presence = np.array([pat[1:] for pat in patterns], dtype=np.int8).reshape(len(patterns), cfg.K)
    weight = np.full(len(patterns), 0.5)
    if cfg.data.presence_correlation == 0.0:
        for r, mod in enumerate(cfg.data.modality):
            weight *= np.where(presence[:, r] == 1, mod.presence, 1.0 - mod.presence)
    else:
        p_s = pattern_probabilities([mod.presence for mod in cfg.data.modality],
                                    cfg.data.presence_correlation)
        weight *= np.tile(p_s, 2)  # the same P(s) under y = -1 and y = +1
    Xs = [
        np.ascontiguousarray((y * mod.beta * presence[:, r])[:, None] * M[:, 0][None, :])
        for r, (mod, M) in enumerate(zip(cfg.data.modality, dictionaries))
    ]
    return Dataset(X=Xs, y=y, presence=presence, weight=weight)


def initial_weights(cfg: Config, rngs: list[np.random.Generator]) -> list:
    """i.i.d. N(0, init_scale^2) weights, (B, m, d_r) per modality, each from its own stream."""
    shape = (cfg.model.banks, cfg.model.width)
    return [
        rng.normal(0.0, cfg.model.init_scale, size=shape + (mod.dim,))
        for mod, rng in zip(cfg.data.modality, rngs)
    ]


def batch_seed_sequence(seed: int) -> np.random.SeedSequence:
    """The mini-batch stream of a run: child 5 of ``SeedSequence(seed)`` (after the method's 4).

    Only SGD (``train.batch_size > 0``) draws from it; every run of one
    experiment (joint and uni-modal) gets the same stream, so they see the
    same sequence of batches.
    """
    return np.random.SeedSequence(seed).spawn(_STREAM_BATCH + 1)[_STREAM_BATCH]


def make_experiment_data(cfg: Config) -> ExperimentData:
    """Draw the dictionaries, training and test sets and initial weights of ``cfg``."""
    streams = _streams(cfg.seed, cfg.K)
    dict_rngs = streams[_STREAM_DICTIONARY][1]
    init_rngs = streams[_STREAM_INIT][1]
    dictionaries = [make_dictionary(mod, rng) for mod, rng in zip(cfg.data.modality, dict_rngs)]
    if cfg.data.population:
        train = population_dataset(cfg, dictionaries)
        test = train
    else:
        train = draw_dataset(cfg, dictionaries, cfg.data.n_train, *streams[_STREAM_TRAIN])
        test = draw_dataset(cfg, dictionaries, cfg.data.n_test, *streams[_STREAM_TEST])
    return ExperimentData(
        dictionaries=dictionaries, train=train, test=test, init=initial_weights(cfg, init_rngs)
    )


def empirical_patterns(
    dataset: Dataset, modalities: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weight of each (y, s) pattern present in ``dataset``, over the given modalities.

    Returns ``(y_pat, s_pat, w_pat)``; the reduced dynamics of the theory run on
    these, so a prediction for a run uses that run's own training set.
    """
    s = dataset.presence[:, modalities].astype(np.int64)
    keys = np.concatenate([(dataset.y > 0).astype(np.int64)[:, None], s], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    w_pat = np.bincount(inverse.ravel(), weights=dataset.weight, minlength=len(uniq))
    y_pat = np.where(uniq[:, 0] == 1, 1.0, -1.0)
    return y_pat, uniq[:, 1:].astype(np.int8), w_pat
