"""Mini-batches for stochastic gradient descent (``train.batch_size = b > 0``).

Which samples step t sees: the training set is shuffled by a fresh uniform
permutation at the start of every epoch and cut, in order, into
``floor(n / b)`` batches of exactly b samples; the ``n mod b`` samples left
at the end of a permutation sit that epoch out. Step t uses batch
``t mod floor(n / b)`` of epoch ``t // floor(n / b)``. The permutations come
from the run's own stream (:func:`simcomp.data.batch_seed_sequence`, child 5
of the seed), so the batches are a function of the seed alone -- not of the
thread count, the batching of runs or the method -- and the joint and
uni-modal runs of one experiment see the same batches.

The weights of a step: sample j of the batch gets ``omega_j * n / b``,
every other sample 0. Each sample is in the batch of a given step with
probability b / n (a block of b consecutive entries of a uniform permutation
is a uniform b-subset), so the expected mini-batch loss and gradient are
exactly the full-batch ones (docs/sgd.md derives it). With the uniform
weights 1/n of a sampled training set this is the plain mean over the
batch, 1/b each; with b = n it is omega itself, bit for bit (n / n = 1.0),
so ``batch_size = n_train`` trains exactly as full-batch gradient descent.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MiniBatches"]


class MiniBatches:
    """The mini-batch of every step of one run.

    Parameters
    ----------
    seed_seq : numpy.random.SeedSequence
        The run's batch stream (``batch_seed_sequence(cfg.seed)``).
    weight : ndarray, (n,)
        The training set's sample weights omega_j (float64).
    batch_size : int
        b, 1 <= b <= n.

    Notes
    -----
    :meth:`indices` and :meth:`fill` are functions of the step alone: asking
    for an earlier epoch than the current one replays the stream from its
    start (training asks in order, so each permutation is drawn once).
    """

    def __init__(self, seed_seq: np.random.SeedSequence, weight: np.ndarray, batch_size: int):
        self.weight = np.asarray(weight, dtype=np.float64)
        self.n = int(self.weight.shape[0])
        self.batch_size = int(batch_size)
        if not 1 <= self.batch_size <= self.n:
            raise ValueError(f"batch_size must be between 1 and n = {self.n}, got {batch_size}")
        self.per_epoch = self.n // self.batch_size
        # Horvitz-Thompson scale: 1 / P(j in the batch). Exactly 1.0 for b = n.
        self.scale = self.n / self.batch_size
        self._seed_seq = seed_seq
        self._restart()
        self._last = None  # indices written by the last fill (zeroed by the next)

    def _restart(self) -> None:
        self._rng = np.random.default_rng(self._seed_seq)
        self._epoch = -1
        self._perm = None

    def permutation(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (a view; do not modify)."""
        if epoch < self._epoch:
            self._restart()
        while self._epoch < epoch:
            self._perm = self._rng.permutation(self.n)
            self._epoch += 1
        return self._perm

    def indices(self, t: int) -> np.ndarray:
        """The b sample indices of step ``t`` (in permutation order)."""
        epoch, k = divmod(int(t), self.per_epoch)
        b = self.batch_size
        return self.permutation(epoch)[k * b:(k + 1) * b]

    def fill(self, t: int, out: np.ndarray) -> None:
        """Write the sample weights of step ``t`` into ``out`` (n,), any float dtype.

        ``out`` must hold the weights of the previous :meth:`fill` call (or
        zeros): only the entries of the old and the new batch are written.
        """
        if self._last is None:
            out[:] = 0.0
        else:
            out[self._last] = 0.0
        idx = self.indices(t)
        out[idx] = self.weight[idx] * self.scale
        self._last = idx

    def weights(self, t: int) -> np.ndarray:
        """The (n,) float64 sample weights of step ``t``: omega_j n / b in the batch, else 0."""
        out = np.zeros(self.n)
        idx = self.indices(t)
        out[idx] = self.weight[idx] * self.scale
        return out
