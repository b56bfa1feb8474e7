"""One loss-and-gradient evaluation: forward tiles -> units -> rule -> backward tiles.

Samples are processed block by block: a block's pre-activations for all K
modalities, then f, the loss and the rule's coefficients of each sample,
then the block's contribution to the gradient, so each sample is fetched
once per step (a block stays in L2 between the two halves). Each chunk of
blocks has its own gradient buffer and statistics; the chunks are added
in chunk order, by the serial gradient one after the other and by the
parallel one on the thread pool, bit-identically.

Argument bundles (numba tuples):

* ``data = (Xf, Xb, dims, y, omega)``: the packed samples (layout.py),
  dims (K,) int64, labels and sample weights (n,);
* ``unit = (kind, qcode, q, rho)`` (units.py);
* ``rule``: rules.py;
* ``scratch = (Gc, Zc, Fc, Z2c, G2c, Pc, Uc, Sc, grad2)`` (``SCRATCH_GRAD2`` names the
  last entry): per chunk the
  gradient (width Dp), pre-activations, f, mmpareto's second coefficients
  and gradient, phi and coefficients, unit values, statistics; then the
  second full gradient (mmpareto). Unused buffers are empty.

:func:`_lg` is resolved at compile time on the type of its ``mode``
argument: ``None`` gives the serial gradient, a bool the parallel one, so a
serial run never compiles the parallel code (seconds of a cold start).
"""

import numpy as np
from numba import prange, types
from numba.extending import overload

from simcomp._jit import jit, jit_parallel
from simcomp.kernels.layout import BLOCK, chunk_layout
from simcomp.kernels.rule_spec import READS_PHI, READS_UNITS, SECOND_GRADIENT
from simcomp.kernels.rules import _acc_rows, _block_coef, _rule_code
from simcomp.kernels.tile import _block_grad_acc, _block_preact


SCRATCH_GRAD2 = 8  # the second full gradient in ``scratch`` (what a rule's step stage reads)


@jit()
def _scratch(data, W, rule, nbuf):
    """Per-chunk scratch for ``nbuf`` chunks; a rule's extra buffers only if it needs them."""
    Xf, Xb = data[0], data[1]
    K, B, m, _ = W.shape
    T = Xb.shape[4]
    Dp = Xb.shape[2] * T
    code = _rule_code(rule)
    two = SECOND_GRADIENT[code]
    Gc = np.zeros((nbuf, K, B, m, Dp), W.dtype)
    Zc = np.empty((nbuf, K, B * m, BLOCK), Xf.dtype)
    Fc = np.empty((nbuf, 2 * BLOCK), np.float64)
    # A rule's buffers have K = 0 rows when it does not use them.
    Z2c = np.empty((nbuf, K if two else 0, B * m, BLOCK), Xf.dtype)
    G2c = np.zeros((nbuf, K if two else 0, B, m, Dp), W.dtype)
    Pc = np.zeros((nbuf, 3, K if READS_PHI[code] else 0, BLOCK), np.float64)
    Uc = np.zeros((nbuf, K if READS_UNITS[code] else 0, B * m, BLOCK), np.float64)
    Sc = np.zeros((nbuf, _acc_rows(rule, B * m), K), np.float64)
    grad2 = np.zeros(W.shape if two else (0, 0, 0, 0), W.dtype)
    return Gc, Zc, Fc, Z2c, G2c, Pc, Uc, Sc, grad2


@jit()
def _chunk(data, unit, W, rule, t, c, e, scratch, need_loss):
    """Loss and bound of chunk ``c``; its gradient(s) and statistics overwrite scratch entry ``e``."""
    Xf, Xb, dims, y, omega = data
    Gc, Zc, Fc, Z2c, G2c, Pc, Uc, Sc, _ = scratch
    n = y.shape[0]
    m = W.shape[2]
    nblocks, nchunks = chunk_layout(n)
    G = Gc[e]
    Z = Zc[e]
    G[...] = 0.0
    Sc[e] = 0.0
    two = SECOND_GRADIENT[_rule_code(rule)]
    if two:
        G2c[e] = 0.0
    bufs = (Z, Z2c[e], Fc[e], Pc[e], Uc[e], Sc[e])
    loss = 0.0
    bound = 0.0
    for blk in range(c * nblocks // nchunks, (c + 1) * nblocks // nchunks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        _block_preact(Xf, dims, W, blk, j1 - j0, Z)
        bl, bb = _block_coef(rule, y, omega, unit, m, j0, j1, t, bufs, need_loss)
        loss += bl
        bound += bb
        _block_grad_acc(Xb, dims, blk, j1 - j0, Z, G)
        if two:
            _block_grad_acc(Xb, dims, blk, j1 - j0, Z2c[e], G2c[e])
    return loss, bound


@jit()
def _add_chunk(grad_out, dims, scratch, c, S):
    """Add chunk c's gradient(s) and statistics (the fixed chunk order makes the sums deterministic).

    Element indexing, no row views: a view per row would cost two atomic
    reference-count operations per neuron and step.
    """
    Gc, G2c, Sc, grad2 = scratch[0], scratch[4], scratch[7], scratch[SCRATCH_GRAD2]
    K, B, m, _ = grad_out.shape
    two = grad2.shape[0] > 0
    for r in range(K):
        d = dims[r]
        for b in range(B):
            for i in range(m):
                for k in range(d):
                    grad_out[r, b, i, k] += Gc[c, r, b, i, k]
                if two:
                    for k in range(d):
                        grad2[r, b, i, k] += G2c[c, r, b, i, k]
    for a in range(S.shape[0]):
        for r in range(S.shape[1]):
            S[a, r] += Sc[c, a, r]


@jit()
def _lg_serial(data, unit, W, rule, t, grad_out, scratch, S, need_loss):
    """Chunks one after the other, in the first scratch entry; returns ``(loss, bound)``.

    Adds the chunk results in the order of :func:`_lg_parallel`, so the two
    are bit-identical. ``S`` (2, K) receives the full-batch statistics.
    """
    nblocks, nchunks = chunk_layout(data[3].shape[0])
    grad_out[...] = 0.0
    scratch[SCRATCH_GRAD2][...] = 0.0
    S[...] = 0.0
    loss = 0.0
    bound = 0.0
    first = np.int64(0)  # not the literal 0: one specialisation of _chunk for both paths
    for c in range(nchunks):
        cl, cb = _chunk(data, unit, W, rule, t, c, first, scratch, need_loss)
        loss += cl
        bound += cb
        _add_chunk(grad_out, data[2], scratch, 0, S)
    return loss, bound


@jit_parallel()
def _lg_parallel(data, unit, W, rule, t, grad_out, scratch, S, need_loss):
    """Chunks on the thread pool; the scratch needs one entry per chunk."""
    nblocks, nchunks = chunk_layout(data[3].shape[0])
    closs = np.empty(nchunks, np.float64)
    cbound = np.empty(nchunks, np.float64)
    for c in prange(nchunks):
        ci = np.int64(c)  # prange's index is unsigned; the serial path's _chunk takes int64
        cl, cb = _chunk(data, unit, W, rule, t, ci, ci, scratch, need_loss)
        closs[ci] = cl
        cbound[ci] = cb
    # One thread adds the chunks, in chunk order: a second parallel region
    # would cost more than these few additions.
    grad_out[...] = 0.0
    scratch[SCRATCH_GRAD2][...] = 0.0
    S[...] = 0.0
    loss = 0.0
    bound = 0.0
    for c in range(nchunks):
        loss += closs[c]
        bound += cbound[c]
        _add_chunk(grad_out, data[2], scratch, c, S)
    return loss, bound


def _lg(mode, data, unit, W, rule, t, grad_out, scratch, S, need_loss):
    """Serial (``mode`` None) or parallel (``mode`` a bool) gradient, chosen when compiling."""
    raise NotImplementedError("only callable from compiled code")


@overload(_lg, jit_options={"cache": True})
def _lg_overload(mode, data, unit, W, rule, t, grad_out, scratch, S, need_loss):
    if isinstance(mode, types.NoneType):
        def serial(mode, data, unit, W, rule, t, grad_out, scratch, S, need_loss):
            return _lg_serial(data, unit, W, rule, t, grad_out, scratch, S, need_loss)
        return serial

    def parallel(mode, data, unit, W, rule, t, grad_out, scratch, S, need_loss):
        return _lg_parallel(data, unit, W, rule, t, grad_out, scratch, S, need_loss)
    return parallel
