"""The layer table shared by every architecture: per-modality encoders, a fusion
layer, shared layers (docs/architectures.md).  Plain NumPy; no compiled code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.fusion_net import SRC_CONCAT, SRC_INPUT, SRC_LAYER, SRC_MODALITY

__all__ = ["Network", "chain"]


@dataclass(frozen=True)
class Network:
    """A layer table and what the GD loop needs beside it.

    Attributes
    ----------
    layout : ndarray (n_layers, 6) int64
        ``(offset, rows, cols, source, index, activated)`` per layer.
    concat : ndarray int64
        The layers whose outputs the fusion layer reads, one per modality.
    col0 : ndarray int64
        First input column of each modality.
    n_params : int
    depth, fusion_layer : int
    modality_of_layer : ndarray int64
        The modality a private encoder layer belongs to, -1 for shared layers.
    """

    layout: np.ndarray
    concat: np.ndarray
    col0: np.ndarray
    n_params: int
    depth: int
    fusion_layer: int
    modality_of_layer: np.ndarray

    @property
    def head(self) -> slice:
        """Where the last layer (the head) sits in the flat weights."""
        off, rows, cols = self.layout[-1, :3]
        return slice(int(off), int(off + rows * cols))

    def init(self, rng: np.random.Generator, scale: float, head_fixed: bool) -> np.ndarray:
        """Weights drawn N(0, scale^2), layer by layer; a fixed head starts at ones."""
        theta = np.empty(self.n_params)
        for off, rows, cols, *_ in self.layout:
            theta[off:off + rows * cols] = scale * rng.standard_normal(rows * cols)
        if head_fixed:
            theta[self.head] = 1.0
        return theta

    def mask(self, head_fixed: bool) -> np.ndarray:
        """1.0 for trained weights, 0.0 for the fixed head."""
        mask = np.ones(self.n_params)
        if head_fixed:
            mask[self.head] = 0.0
        return mask


def chain(dims, width: int, depth: int, fusion_layer: int) -> Network:
    """The table of a depth-``depth`` network fused at layer ``fusion_layer``.

    Layers 1 .. L_f - 1 of each modality are its private encoder of width
    ``width``; layer L_f reads the concatenated encodings (the whole input
    when L_f = 1); layers L_f + 1 .. L are shared; the last has one output.
    """
    dims = [int(d) for d in dims]
    L, Lf = int(depth), int(fusion_layer)
    if not 1 <= Lf <= L or L < 2:
        raise ValueError(f"need 2 <= depth and 1 <= fusion_layer <= depth, got {L}, {Lf}")
    rows_, owner, off = [], [], 0

    def add(rows, cols, src, idx, activated, who):
        nonlocal off
        rows_.append((off, rows, cols, src, idx, activated))
        owner.append(who)
        off += rows * cols
        return len(rows_) - 1

    last = []
    for r, d in enumerate(dims):
        prev = -1
        for e in range(Lf - 1):
            prev = (add(width, d, SRC_MODALITY, r, 1, r) if e == 0
                    else add(width, width, SRC_LAYER, prev, 1, r))
        last.append(prev)
    out_rows = 1 if Lf == L else width
    if Lf == 1:
        prev = add(out_rows, sum(dims), SRC_INPUT, 0, int(Lf < L), -1)
    else:
        prev = add(out_rows, width * len(dims), SRC_CONCAT, 0, int(Lf < L), -1)
    for l in range(Lf + 1, L + 1):
        prev = add(1 if l == L else width, width, SRC_LAYER, prev, int(l < L), -1)
    col0 = np.concatenate([[0], np.cumsum(dims)[:-1]]).astype(np.int64)
    return Network(np.array(rows_, dtype=np.int64),
                   np.array(last if Lf > 1 else [], dtype=np.int64).reshape(-1),
                   col0, off, L, Lf, np.array(owner, dtype=np.int64))
