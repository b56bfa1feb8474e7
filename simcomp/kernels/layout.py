"""The packed sample layout, the block/chunk partition and the argument checks.

``X`` (K, n, D) float64 or float32 (modality r is ``X[r, :, :dims[r]]``,
the rest padding) is kept in two packed copies, made once per dataset:

* ``Xf`` (K, nblocks, BLOCK / T, D, T): per block and tile of T samples, the
  T values of coordinate k are contiguous (the forward tiles run over k);
* ``Xb`` (K, nblocks, Dp / T, BLOCK, T), Dp = D rounded up to T: per block
  and tile of T coordinates, the T values of sample j are contiguous (the
  backward tiles run over the block's samples).

Samples beyond n are zero in both, so no tile has a remainder loop.

Blocks of ``BLOCK`` samples are grouped into ``chunk_layout(n)`` contiguous
chunks, a function of n only: each chunk accumulates its own loss, gradient
and method statistics, which are then added in chunk order. That makes the
serial and the parallel gradient bit-identical for any number of threads.
"""

import numpy as np

from simcomp._jit import jit

__all__ = ["BLOCK", "MAX_CHUNKS", "chunk_layout", "tile_width", "packed_shapes", "pack_samples",
           "fill_forward", "fill_backward"]

BLOCK = 128
"""Samples per cache block. At the default size (K = 2, m = 8, D = 128,
float64) a block's pre-activations take 16 KiB (L1 cache) and its packed
rows 256 KiB per copy (L2 cache). A multiple of the tile width."""

MAX_CHUNKS = 32
"""Upper bound on the number of chunks, i.e. on the number of gradient
buffers (memory ``MAX_CHUNKS * W.nbytes``) and on the threads one gradient
evaluation can use."""

_TILE_BYTES = 128
"""Bytes of one tile row: two 512-bit vectors (16 float64 or 32 float32)."""

_PREFETCH_MIN_BYTES = 1 << 23
"""Packed copies at least this large (8 MiB, beyond the L2 and much of the L3
cache) are prefetched ahead of the tiles; smaller ones are cache-resident
and the prefetches would only cost issue slots (about 13 % at the default
size)."""


@jit()
def chunk_layout(n):
    """Blocks and chunks used for ``n`` samples.

    Parameters
    ----------
    n : int
        Number of samples.

    Returns
    -------
    nblocks : int
        ``ceil(n / BLOCK)``; block ``b`` holds samples
        ``b * BLOCK`` to ``min((b + 1) * BLOCK, n)``.
    nchunks : int
        ``max(1, min(nblocks, MAX_CHUNKS))``; chunk ``c`` holds blocks
        ``c * nblocks // nchunks`` to ``(c + 1) * nblocks // nchunks``.
    """
    nblocks = (n + BLOCK - 1) // BLOCK
    nchunks = min(nblocks, MAX_CHUNKS)
    if nchunks < 1:
        nchunks = 1
    return nblocks, nchunks


def tile_width(dtype):
    """Values per tile row: 16 for float64, 32 for float32."""
    return _TILE_BYTES // np.dtype(dtype).itemsize


def packed_shapes(K, n, D, dtype):
    """Shapes of the two packed copies of a (K, n, D) array of ``dtype``."""
    T = tile_width(dtype)
    nblocks = -(-n // BLOCK)
    return (K, nblocks, BLOCK // T, D, T), (K, nblocks, -(-D // T), BLOCK, T)


def pack_samples(X, backward=True):
    """The two packed copies of ``X`` that the kernels read (see the module notes).

    X does not change during training: pack it once per dataset and pass the
    result as ``packed`` to every kernel call on that X.

    Parameters
    ----------
    X : ndarray, (K, n, D)
        Inputs, float64 or float32.
    backward : bool
        Also make the backward copy (a forward pass needs only ``Xf``).

    Returns
    -------
    Xf : ndarray, (K, nblocks, BLOCK // T, D, T)
        ``Xf[r, b, s, k, l] = X[r, b * BLOCK + s * T + l, k]`` (zero beyond n).
    Xb : ndarray, (K, nblocks, Dp // T, BLOCK, T), or None
        ``Xb[r, b, t, i, l] = X[r, b * BLOCK + i, t * T + l]`` (zero beyond n
        and D), with T = :func:`tile_width` and Dp = D rounded up to T.
    """
    X = np.asarray(X)
    if X.ndim != 3 or X.dtype not in (np.float64, np.float32):
        raise ValueError("X must be a (K, n, D) float64 or float32 array")
    X = np.ascontiguousarray(X)
    shape_f, shape_b = packed_shapes(*X.shape, X.dtype)
    Xf = np.zeros(shape_f, X.dtype)
    fill_forward(X, Xf)
    if not backward:
        return Xf, None
    Xb = np.zeros(shape_b, X.dtype)
    fill_backward(X, Xb)
    return Xf, Xb


@jit()
def fill_forward(X, Xf):
    """Write the forward copy of X into ``Xf`` (zeroed, of :func:`packed_shapes`)."""
    K, n, D = X.shape
    T = Xf.shape[4]
    for r in range(K):
        for j0 in range(0, n, T):
            b, s = j0 // BLOCK, (j0 % BLOCK) // T
            panel = Xf[r, b, s]
            for l in range(min(T, n - j0)):
                row = X[r, j0 + l]
                for k in range(D):
                    panel[k, l] = row[k]


@jit()
def fill_backward(X, Xb):
    """Write the backward copy of X into ``Xb`` (zeroed, of :func:`packed_shapes`)."""
    K, n, D = X.shape
    nblocks, nkt, _, T = Xb.shape[1:]
    flat = Xb.reshape(-1)
    for r in range(K):
        for j in range(n):
            b, i = j // BLOCK, j % BLOCK
            row = X[r, j]
            base = (r * nblocks + b) * nkt * BLOCK * T + i * T
            for kt in range(nkt):
                off = base + kt * BLOCK * T
                k0 = kt * T
                for l in range(min(T, D - k0)):
                    flat[off + l] = row[k0 + l]


def _packed(X, packed):
    """``packed`` as given, or made from X when None."""
    if packed is None:
        return pack_samples(X)
    if packed[1] is None:
        raise ValueError("the gradient needs the backward copy: pack_samples(X, backward=True)")
    return packed


@jit()
def _check_backward(Xb, n, W):
    """Raise ValueError unless ``Xb`` is the backward copy for W's shape and n samples."""
    K, B, m, D = W.shape
    T = _TILE_BYTES // Xb.itemsize
    nblocks, _ = chunk_layout(n)
    if (Xb.shape[0] != K or Xb.shape[1] != nblocks or Xb.shape[2] != (D + T - 1) // T
            or Xb.shape[3] != BLOCK or Xb.shape[4] != T):
        raise ValueError("packed X does not match W and n: use pack_samples(X)")


@jit()
def _check_args(Xf, n, dims, W, kind, q, rho):
    """Raise ValueError on inconsistent shapes or parameters.

    The kernels do not check bounds when indexing, so a wrong shape would
    otherwise read or write outside the arrays.
    """
    K, B, m, D = W.shape
    T = _TILE_BYTES // Xf.itemsize
    nblocks, _ = chunk_layout(n)
    if dims.shape[0] != K:
        raise ValueError("inconsistent shapes: need dims (K,) and W (K, B, m, D)")
    if (Xf.shape[0] != K or Xf.shape[1] != nblocks or Xf.shape[2] != BLOCK // T
            or Xf.shape[3] != D or Xf.shape[4] != T):
        raise ValueError("packed X does not match W and n: use pack_samples(X)")
    for r in range(K):
        if dims[r] < 0 or dims[r] > D:
            raise ValueError("dims[r] must lie in [0, D]")
    if kind == 0:
        if B != 1:
            raise ValueError("kind 0 (symmetric) needs B == 1")
    elif kind == 1 or kind == 2:
        if B != 2:
            raise ValueError("kinds 1 and 2 (class banks) need B == 2")
    else:
        raise ValueError("kind must be 0, 1 or 2")
    if kind != 2 and not (q >= 2.0 and rho > 0.0):
        raise ValueError("srelu needs q >= 2 and rho > 0")


@jit()
def _check_samples(y, omega, W, grad):
    """Raise ValueError unless omega has y's shape and grad has W's shape."""
    if omega.shape[0] != y.shape[0]:
        raise ValueError("y and omega must have shape (n,)")
    if grad.shape != W.shape:
        raise ValueError("the gradient buffer must have the shape of W")


@jit()
def _check_gd(W, signal, beta, learned):
    """Raise ValueError unless learned is (K, B), signal (K, D) and beta (K,)."""
    K, B, m, D = W.shape
    if learned.shape[0] != K or learned.shape[1] != B:
        raise ValueError("learned must have shape (K, B)")
    if signal.shape[0] != K or signal.shape[1] != D or beta.shape[0] != K:
        raise ValueError("signal must be (K, D) and beta (K,)")
