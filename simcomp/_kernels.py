"""Compiled forward/backward passes and the gradient-descent loops.

Private module: the kernels take only NumPy arrays and scalars; the training
module decides what to run, these functions only do the arithmetic of the
specification (sections 2-4, whose notation is used below).

Data layout
-----------
``X``      (K, n, D) float64 or float32; modality r is ``X[r, :, :dims[r]]``
           and the columns beyond ``dims[r]`` are padding.
``packed`` ``(Xf, Xb) = pack_samples(X)``, two copies of X laid out for the
           forward and the backward pass (below). X does not change during
           training, so a caller that evaluates the same data many times
           (the trainer: every segment of every run, and the test set at
           every trace point) packs it once and passes ``packed``; every
           public kernel also accepts ``packed=None`` and then packs X itself.
``dims``   (K,) int64.
``y``      (n,) labels +-1; ``omega`` (n,) sample weights (>= 0).
``W``      (K, B, m, D), same dtype as X. ``B = 1`` (symmetric learner) or
           ``B = 2`` (class banks: bank 0 has c = +1, bank 1 has c = -1).
``kind``   0 symmetric, psi(z) = srelu(z) - srelu(-z); 1 class banks with
           srelu; 2 class banks with plain ReLU (``q`` and ``rho`` unused).

Padded columns of X and W never influence a result, and padded columns of W
and of the gradient are never written (gradients are zero there), so a zero
padding stays zero. Float32 data is computed in float32 except the unit
nonlinearities, f, the loss and l', which are evaluated in float64.

The batched kernel :func:`gd_segment_batch` takes the same arrays with a
leading run axis R (``Xf`` (R, ...), ``W`` (R, K, B, m, D), ...): R
independent runs of one shape, advanced in one compiled call.

How one gradient evaluation is organised
----------------------------------------
Samples are processed in *blocks* of ``BLOCK`` consecutive samples. For a
block, the pre-activations of all K modalities are computed, then f, the
loss and l' of each sample, then the block's contribution to the gradient,
so each sample is fetched from memory once per step (a block's rows stay in
the L2 cache between the forward and the backward half).

Both halves are small matrix products, computed by *register tiles*: the
forward ``Z[i, j] = sum_k W[i, k] X[j, k]`` and the backward
``G[i, k] += sum_j c[i, j] X[j, k]`` both have the form

    C[h, 0:T] (+)= sum_t A[h, t] * Bv[t, 0:T],   h < H,

with T = :func:`tile_width` (16 float64 or 32 float32 values: two 512-bit
vectors) and H = 8 neurons (then 4, then 1-3 for the rest).
:func:`_make_tile` writes that loop directly in LLVM IR: 2H vector
accumulators live in registers for the whole sum, each step loads two
vectors of ``Bv`` and H scalars of ``A`` and issues 2H vector fused
multiply-adds (``llvm.fma``), which is what a BLAS micro-kernel does.
Numba's own loops cannot do this: without ``fastmath`` (never used, see
``simcomp._jit``) the compiler may neither reorder a sum nor keep array
elements in registers across a loop, and neither the loop vectoriser nor
the SLP vectoriser turned explicit scalar accumulators into vector ones
(tried). The previous version -- element-wise loops, four neurons and four
terms per pass, accumulators loaded and stored at every pass -- ran at
30-35 GFLOP/s on one core of the target machine (Zen 4), the tiles at
50-55, its dgemm's rate (``docs/performance.md``).

For the tiles to read memory in order, X is kept in two *packed* copies,
made once by :func:`pack_samples`:

* ``Xf`` (K, nblocks, BLOCK / T, D, T): for each block and each tile of T
  samples, the T values of coordinate k are contiguous; the forward tile
  runs over k (``dims[r]`` steps) and streams one contiguous panel.
* ``Xb`` (K, nblocks, Dp / T, BLOCK, T), ``Dp`` = D rounded up to T: for
  each block and each tile of T coordinates, the T values of sample j are
  contiguous; the backward tile runs over the block's samples.

Samples beyond n are zero in both. The backward tiles compute whole tiles of
coordinates into gradient buffers of width Dp, of which only the first
``dims[r]`` columns are ever copied out, so no tile has a remainder loop.

The summation order is fixed by the code, not by the compiler or the vector
width: z is a chain of fused multiply-adds over k = 0, 1, ..., d - 1 from 0,
and each gradient element is a chain over the samples in increasing order;
every lane of a vector does exactly the scalar operation, so a result does
not depend on where its sample or coordinate falls in a tile. ``llvm.fma``
is exactly rounded everywhere (emulated in software, slowly, on a CPU
without FMA instructions), so results do not depend on the machine either.

Other performance notes (each is documented again where it lives):

1. Integer q (2..5) takes multiplication fast paths instead of ``pow``; the
   unit loop is compiled once per (learner, q) so that it is branch-free.
2. One ``exp`` per sample serves both the loss and l' (softplus and the
   sigmoid share ``exp(-|u|)``), and the ``log1p`` of the loss is only
   evaluated at steps whose loss is used (the last step of a segment, and
   every step when an early stop is requested). On the other steps the
   non-finite guard uses the bound ``sum |omega| (max(u, 0) + exp(-|u|))``,
   which is finite only if the loss is finite; when it is not, the step is
   evaluated again with the loss, so the status and the returned loss are
   exactly those of evaluating the loss at every step.
3. The packed copies are made once per run by the caller (packing, with
   the allocation, costs about as much as 10 gradient steps at the default
   size; a test set only needs the forward copy).
4. Data beyond the caches (packed copies of 8 MiB or more) are prefetched
   into L2 one or two panels ahead of the tiles (see :func:`_block_preact`);
   at D = 1024, n = 4096 this took one core from 37 to 51 GFLOP/s.
5. The per-step checks are written to vectorise or at least to pipeline:
   the learned check sums each alignment in four interleaved partial sums,
   the finiteness check counts instead of returning at the first hit.
6. Measured and rejected: explicit FMA in the old element-wise loops (no
   gain), a block length other than 128, a blocked transpose layout,
   splitting the tiles' sums into cache-sized pieces, prefetching at short
   distance or for cache-resident data (13 % slower at the default size).

Determinism
-----------
The ``nblocks = ceil(n / BLOCK)`` blocks are grouped into
``nchunks = min(nblocks, MAX_CHUNKS)`` contiguous *chunks*, a function of n
only (see :func:`chunk_layout`). Each chunk accumulates its own loss and
gradient buffer; the chunk results are then added in chunk order. The serial
kernel runs exactly the same computation one chunk after the other, so serial
and parallel results are bit-identical, for any number of threads. The
batched kernel runs each run through the very same serial loop
(:func:`_gd_steps`), so a run's result does not depend on the batch it is
in either.

Calling the parallel kernels
----------------------------
:func:`loss_and_grad_parallel`, :func:`gd_segment` and
:func:`gd_segment_batch` are thin Python functions around compiled ones.
Before the compiled code runs they make sure numba's threading layer is
started: a cached function that calls a ``parallel=True`` function does not
do so itself when it is loaded from the cache, and then crashes (numba
issue #8578) -- even when the call takes a serial branch, since the
compiled function holds both (so :func:`loss_and_grad` starts the layer
too). For the same reason, call ``_lg_parallel`` from other jitted code
only through such a wrapper. The Python wrappers also convert every scalar argument to one
fixed type (int64, float64 or bool), so Python ints, floats and NumPy
scalars all reuse one compiled version per array dtype.

Status codes of :func:`gd_segment`
----------------------------------
``STATUS_OK = 0``         all requested steps were taken;
``STATUS_STOP_LOSS = 1``  the loss fell below ``stop_loss``;
``STATUS_NONFINITE = 2``  the loss or the gradient was not finite.
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from simcomp._jit import jit, jit_parallel

__all__ = [
    "BLOCK",
    "MAX_CHUNKS",
    "STATUS_OK",
    "STATUS_STOP_LOSS",
    "STATUS_NONFINITE",
    "KIND_SYMMETRIC",
    "KIND_BANKS_SRELU",
    "KIND_BANKS_RELU",
    "chunk_layout",
    "tile_width",
    "packed_shapes",
    "pack_samples",
    "fill_forward",
    "fill_backward",
    "loss_and_grad",
    "loss_and_grad_parallel",
    "forward",
    "alignments",
    "gd_segment",
    "gd_segment_batch",
]

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

STATUS_OK = 0
STATUS_STOP_LOSS = 1
STATUS_NONFINITE = 2

KIND_SYMMETRIC = 0
KIND_BANKS_SRELU = 1
KIND_BANKS_RELU = 2


# --------------------------------------------------------------------------
# The register tile (LLVM IR)
# --------------------------------------------------------------------------


def _make_tile(H, accumulate, prefetch=False):
    """An intrinsic for ``C[h, 0:T] (+)= sum_{t < count} A[h, t] * Bv[t, 0:T]``, h < H.

    Call as ``tile(C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf)``:
    C, A and Bv are C-contiguous arrays of one float dtype, addressed by flat
    element offsets: row h of C starts at ``c_off + h * c_rs``, ``A[h, t]``
    is at ``a_off + h * a_rs + t`` and row t of Bv starts at
    ``b_off + t * b_rs``. T is two vectors of 64 bytes. ``accumulate``
    starts from the values in C (else from zero). Every lane computes
    ``acc = fma(A[h, t], Bv[t, lane], acc)`` for t = 0, 1, ... in order.
    With ``prefetch``, step t also prefetches row t of Bv shifted by ``pf``
    elements into the L2 cache (a hint: it never faults and never changes
    a result); without, ``pf`` is ignored. The caller guarantees the
    bounds (no checks here).
    """
    U = 2  # vectors per tile row

    @intrinsic
    def tile(typingctx, C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf_off):
        arrays = (C, A, Bv)
        if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
            return None
        if len({a.dtype for a in arrays}) != 1 or C.dtype not in (types.float64, types.float32):
            return None
        sig = types.void(C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf_off)

        def codegen(context, builder, signature, args):
            c_arr, coff, crs, a_arr, aoff, ars, b_arr, boff, brs, cnt, pfo = args
            cty, aty, bty = signature.args[0], signature.args[3], signature.args[6]
            intp = context.get_value_type(types.intp)
            coff, crs, aoff, ars, boff, brs, cnt, pfo = (
                context.cast(builder, v, ty, types.intp)
                for v, ty in zip((coff, crs, aoff, ars, boff, brs, cnt, pfo),
                                 (signature.args[i] for i in (1, 2, 4, 5, 7, 8, 9, 10))))
            elt = context.get_value_type(cty.dtype)
            size = context.get_abi_sizeof(elt)
            V = 64 // size
            vec = ir.VectorType(elt, V)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                f"llvm.fma.v{V}f{8 * size}")
            cptr = context.make_array(cty)(context, builder, value=c_arr).data
            aptr = context.make_array(aty)(context, builder, value=a_arr).data
            bptr = context.make_array(bty)(context, builder, value=b_arr).data

            def const(v):
                return ir.Constant(intp, v)

            def vptr(base, off):
                return builder.bitcast(builder.gep(base, [off]), vec.as_pointer())

            accs = []
            for h in range(H):
                row = builder.add(coff, builder.mul(crs, const(h)))
                for u in range(U):
                    slot = cgutils.alloca_once(builder, vec)
                    if accumulate:
                        init = builder.load(vptr(cptr, builder.add(row, const(u * V))),
                                            align=size)
                    else:
                        init = ir.Constant(vec, None)
                    builder.store(init, slot)
                    accs.append(slot)
            undef = ir.Constant(vec, ir.Undefined)
            splat = ir.Constant(ir.VectorType(ir.IntType(32), V), None)
            lane0 = ir.Constant(ir.IntType(32), 0)
            with cgutils.for_range(builder, cnt) as loop:
                t = loop.index
                brow = builder.add(boff, builder.mul(t, brs))
                if prefetch:
                    i8p = ir.IntType(8).as_pointer()
                    i32 = ir.IntType(32)
                    pf = cgutils.get_or_insert_function(
                        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                        "llvm.prefetch.p0")
                    for u in range(U):
                        pp = builder.bitcast(builder.gep(
                            bptr, [builder.add(builder.add(brow, pfo), const(u * V))]), i8p)
                        # read, locality 2 (into L2: prefetcht1), data cache
                        builder.call(pf, [pp, ir.Constant(i32, 0), ir.Constant(i32, 2),
                                          ir.Constant(i32, 1)])
                bvals = [builder.load(vptr(bptr, builder.add(brow, const(u * V))), align=size)
                         for u in range(U)]
                for h in range(H):
                    aidx = builder.add(builder.add(aoff, builder.mul(ars, const(h))), t)
                    a = builder.load(builder.gep(aptr, [aidx]))
                    av = builder.shuffle_vector(builder.insert_element(undef, a, lane0), undef,
                                                splat)
                    for u in range(U):
                        slot = accs[h * U + u]
                        builder.store(builder.call(fma, [av, bvals[u], builder.load(slot)]),
                                      slot)
            for h in range(H):
                row = builder.add(coff, builder.mul(crs, const(h)))
                for u in range(U):
                    builder.store(builder.load(accs[h * U + u]),
                                  vptr(cptr, builder.add(row, const(u * V))), align=size)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_set1, _set2, _set3, _set4, _set8 = (_make_tile(h, False) for h in (1, 2, 3, 4, 8))
_acc1, _acc2, _acc3, _acc4, _acc8 = (_make_tile(h, True) for h in (1, 2, 3, 4, 8))
_set8p, _set4p, _acc8p, _acc4p = (_make_tile(h, a, True) for a in (False, True) for h in (8, 4))


@jit()
def _tiles_set(nrows, C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf):
    """``nrows`` rows of tiles (eight, then four at a time) that start from zero."""
    h = 0
    if pf > 0 and nrows >= 8:
        _set8p(C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf)
        h = 8
    elif pf > 0 and nrows >= 4:
        _set4p(C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf)
        h = 4
    while h + 8 <= nrows:
        _set8(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
        h += 8
    while h + 4 <= nrows:
        _set4(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
        h += 4
    rest = nrows - h
    if rest == 3:
        _set3(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
    elif rest == 2:
        _set2(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
    elif rest == 1:
        _set1(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)


@jit()
def _tiles_acc(nrows, C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf):
    """``nrows`` rows of tiles (eight, then four at a time) that add to C."""
    h = 0
    if pf > 0 and nrows >= 8:
        _acc8p(C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf)
        h = 8
    elif pf > 0 and nrows >= 4:
        _acc4p(C, c_off, c_rs, A, a_off, a_rs, Bv, b_off, b_rs, count, pf)
        h = 4
    while h + 8 <= nrows:
        _acc8(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
        h += 8
    while h + 4 <= nrows:
        _acc4(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
        h += 4
    rest = nrows - h
    if rest == 3:
        _acc3(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
    elif rest == 2:
        _acc2(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)
    elif rest == 1:
        _acc1(C, c_off + h * c_rs, c_rs, A, a_off + h * a_rs, a_rs, Bv, b_off, b_rs, count, 0)


# --------------------------------------------------------------------------
# Scalar pieces
# --------------------------------------------------------------------------


@jit()
def _q_code(q):
    """Integer code of q for the multiplication fast paths (0: use pow)."""
    if q == 2.0:
        return 2
    if q == 3.0:
        return 3
    if q == 4.0:
        return 4
    if q == 5.0:
        return 5
    return 0


@jit()
def _pow_qm1(t, qcode, q):
    """``t ** (q - 1)``; multiplication for integer q, which is far cheaper."""
    if qcode == 3:
        return t * t
    if qcode == 2:
        return t
    if qcode == 4:
        return t * t * t
    if qcode == 5:
        t2 = t * t
        return t2 * t2
    return t ** (q - 1.0)


@jit(inline="always")
def _srelu_rows(z, F, sign, symmetric, qcode, q, rho, nb):
    """Body of :func:`_unit_rows` for srelu; inlined so that ``symmetric``
    and ``qcode`` are constants at each call site and the loop compiles to
    branch-free vector code."""
    inv_rho = 1.0 / rho
    rho_q = rho / q
    off = (1.0 - 1.0 / q) * rho
    for j in range(nb):
        zj = np.float64(z[j])
        a = abs(zj) if symmetric else zj
        # t = clip(a / rho, 0, 1) makes t^(q-1) the derivative on all three
        # pieces; a nan ends up in v through "0 * a" below.
        t = a * inv_rho
        t = t if t < 1.0 else 1.0
        t = t if t > 0.0 else 0.0
        p = _pow_qm1(t, qcode, q)
        v = a - off if a > rho else rho_q * t * p
        v = v + 0.0 * a
        if symmetric:
            v = math.copysign(v, zj)
        F[j] += sign * v
        z[j] = p


@jit()
def _unit_rows(z, F, sign, kind, qcode, q, rho, nb):
    """``F[j] += sign * unit(z[j])`` and ``z[j] = unit'(z[j])`` for j < nb.

    ``unit`` is psi (kind 0), srelu (kind 1) or ReLU (kind 2); ``sign`` is
    the bank sign c_b. ``F`` is float64. A nan or infinite pre-activation
    makes ``F[j]`` nan.
    """
    if kind == 2:
        for j in range(nb):
            a = np.float64(z[j])
            pos = a > 0.0
            v = a if pos else 0.0
            F[j] += sign * (v + 0.0 * a)
            z[j] = 1.0 if pos else 0.0
    elif kind == 0:
        if qcode == 3:
            _srelu_rows(z, F, sign, True, 3, q, rho, nb)
        elif qcode == 2:
            _srelu_rows(z, F, sign, True, 2, q, rho, nb)
        elif qcode == 4:
            _srelu_rows(z, F, sign, True, 4, q, rho, nb)
        elif qcode == 5:
            _srelu_rows(z, F, sign, True, 5, q, rho, nb)
        else:
            _srelu_rows(z, F, sign, True, 0, q, rho, nb)
    else:
        if qcode == 3:
            _srelu_rows(z, F, sign, False, 3, q, rho, nb)
        elif qcode == 2:
            _srelu_rows(z, F, sign, False, 2, q, rho, nb)
        elif qcode == 4:
            _srelu_rows(z, F, sign, False, 4, q, rho, nb)
        elif qcode == 5:
            _srelu_rows(z, F, sign, False, 5, q, rho, nb)
        else:
            _srelu_rows(z, F, sign, False, 0, q, rho, nb)


# --------------------------------------------------------------------------
# Layout and argument checks
# --------------------------------------------------------------------------


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


@jit()
def _scratch(Xf, Xb, W, nbuf):
    """Per-chunk scratch: gradient buffers (width Dp), pre-activations and f of a block."""
    K, B, m, _ = W.shape
    T = Xb.shape[4]
    Dp = Xb.shape[2] * T
    Gc = np.zeros((nbuf, K, B, m, Dp), W.dtype)
    Zc = np.empty((nbuf, K, B * m, BLOCK), Xf.dtype)
    Fc = np.empty((nbuf, 2 * BLOCK), np.float64)
    return Gc, Zc, Fc


# --------------------------------------------------------------------------
# Block kernels
# --------------------------------------------------------------------------


@jit()
def _block_preact(Xf, dims, W, blk, nb, Z):
    """Pre-activations of the ``nb`` samples of block ``blk`` into ``Z[r, b*m + i, :nb]``.

    Register tiles of 8 (then 4, then 1-3) neurons x T samples, each a chain
    of fused multiply-adds over k = 0..d-1. The sample tiles are the outer
    loop: a tile's panel of ``Xf`` (d x T values, contiguous) comes from
    memory for the first group of neurons and from the cache for the
    others. When the data are too large for the caches, the first group
    also prefetches the next panel into L2 (measured at D = 1024,
    n = 4096: 37 -> 51 GFLOP/s on one core; the hardware prefetcher alone
    does not run far enough ahead). Values beyond ``nb`` (up to a whole
    tile) are written too and never used.
    """
    K, B, m, D = W.shape
    BM = B * m
    nst = Xf.shape[2]
    T = Xf.shape[4]
    nblocks = Xf.shape[1]
    BL = Z.shape[2]
    # Large data: the first group of neurons prefetches the next panel.
    pf = D * T if Xf.size * Xf.itemsize >= _PREFETCH_MIN_BYTES else 0
    for r in range(K):
        d = dims[r]
        for s in range((nb + T - 1) // T):
            xoff = (((r * nblocks + blk) * nst + s) * D) * T
            zoff = r * BM * BL + s * T
            _tiles_set(BM, Z, zoff, BL, W, r * BM * D, D, Xf, xoff, T, d, pf)


@jit()
def _block_grad_acc(Xb, dims, blk, nb, Z, G):
    """Add ``sum_j Z[r, b*m+i, j] X[r, j]`` over the block's samples to ``G[r, b, i]``.

    ``G`` has the padded width Dp. Register tiles of 8 (then 4, then 1-3)
    neurons x T input coordinates, each a chain of fused multiply-adds over
    the block's samples in increasing order, starting from the value in G.
    The coordinate tiles are the outer loop (one contiguous panel of ``Xb``,
    BLOCK x T values, each), prefetched two panels ahead for large data
    (31 -> 48 GFLOP/s at D = 1024, n = 4096).
    """
    K, B, m, Dp = G.shape
    BM = B * m
    nkt = Xb.shape[2]
    T = Xb.shape[4]
    nblocks = Xb.shape[1]
    BL = Z.shape[2]
    # Large data: the first group of neurons prefetches two panels ahead.
    pf = 2 * BLOCK * T if Xb.size * Xb.itemsize >= _PREFETCH_MIN_BYTES else 0
    for r in range(K):
        d = dims[r]
        for kt in range((d + T - 1) // T):
            xoff = (((r * nblocks + blk) * nkt + kt) * BLOCK) * T
            _tiles_acc(BM, G, r * BM * Dp + kt * T, Dp, Z, r * BM * BL, BL, Xb, xoff, T, nb, pf)


@intrinsic
def _f64_from_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (a free register move)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split as in fdlibm: hi has 32 bits
_LN2_LO = 1.90821492927058770002e-10


@jit(inline="always")
def _exp_nonpos(x):
    """``exp(x)`` for x <= 0 (and nan), in plain arithmetic that vectorises.

    x = k ln 2 + r with |r| <= ln(2) / 2 (Cody-Waite reduction), exp(r) by
    its Taylor polynomial of degree 12 (truncation below 2e-16), times 2^k
    made from its bits in two factors, so that subnormal results are right
    too. Within 3 ulp of ``math.exp`` on [-745, 0] (tests/test_kernels.py),
    0 below, nan for nan; no library call, no lookup table, the same result
    on every machine.
    """
    xs = x if x >= -745.5 else -745.5
    kf = math.floor(xs * _LOG2E + 0.5)
    r = (xs - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    k = np.int64(kf)
    k1 = k >> 1
    res = (p * _f64_from_bits((k1 + 1023) << 52)) * _f64_from_bits((k - k1 + 1023) << 52)
    res = res if x >= -745.5 else 0.0
    return res if x == x else x


@jit()
def _block_units(kind, qcode, q, rho, m, nb, Z, F):
    """``F[:nb] = f`` of the block's samples; ``Z`` becomes act'(z)."""
    K = Z.shape[0]
    BM = Z.shape[1]
    for j in range(nb):
        F[j] = 0.0
    for r in range(K):
        for bi in range(BM):
            _unit_rows(Z[r, bi], F, 1.0 if bi < m else -1.0, kind, qcode, q, rho, nb)


@jit()
def _block_loss_coef(y, omega, kind, qcode, q, rho, B, m, j0, j1, Z, F, need_loss):
    """Loss of samples ``j0:j1``; overwrite ``Z`` with gradient coefficients.

    On return ``Z[r, b*m + i, j] = omega_j l'_j c_b act'(z)``, the factor of
    ``X[r, j0 + j]`` in the gradient of neuron (r, b, i). ``F`` (float64,
    >= 2 BLOCK) is scratch: f and then ``omega_j l'_j`` in its first half,
    the terms of the bound below in its second.

    Returns ``(loss, bound)``, both accumulated in float64 in sample order:
    the block's loss (0 unless ``need_loss``) and
    ``sum_j |omega_j| (max(u_j, 0) + e_j)`` with ``u_j = -y_j f_j`` and
    ``e_j = exp(-|u_j|)``. Since ``softplus(u) = max(u, 0) + log1p(e)`` and
    ``0 <= log1p(e) <= e``, every term of the bound is at least the
    magnitude of the loss's term and is nan when it is, so (rounding being
    monotone) a finite bound proves a finite loss; it costs no ``log1p``.

    One exp serves both the loss and the sigmoid: softplus(u) =
    max(u, 0) + log1p(e), and sigmoid(u) = 1 / (1 + e) for u >= 0,
    e / (1 + e) otherwise (the two usual stable formulas would each call
    exp). The exp is :func:`_exp_nonpos`, plain arithmetic, so that the
    loop over the samples is vectorised (with ``math.exp``, a library call,
    it was the costliest part of a step for small problems).
    """
    nb = j1 - j0
    _block_units(kind, qcode, q, rho, m, nb, Z, F)
    loss = 0.0
    if need_loss:
        for jj in range(nb):
            u = -np.float64(y[j0 + jj]) * F[jj]
            e = _exp_nonpos(-abs(u))
            loss += np.float64(omega[j0 + jj]) * (max(u, 0.0) + math.log1p(e))
    for jj in range(nb):
        yj = np.float64(y[j0 + jj])
        wj = np.float64(omega[j0 + jj])
        u = -yj * F[jj]
        e = _exp_nonpos(-abs(u))
        F[BLOCK + jj] = abs(wj) * (max(u, 0.0) + e)
        sig = (1.0 if u >= 0.0 else e) / (1.0 + e)
        F[jj] = wj * (-yj * sig)
    bound = 0.0
    for jj in range(nb):
        bound += F[BLOCK + jj]
    for r in range(Z.shape[0]):
        for bi in range(B * m):
            s = 1.0 if bi < m else -1.0
            z = Z[r, bi]
            for jj in range(nb):
                z[jj] = (s * F[jj]) * z[jj]
    return loss, bound


# --------------------------------------------------------------------------
# One loss-and-gradient evaluation
# --------------------------------------------------------------------------


@jit()
def _chunk_loss_grad(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, c, nblocks, nchunks, Z, F,
                     G, need_loss):
    """Loss and bound of chunk ``c``; its gradient overwrites ``G`` (``Z``, ``F`` are scratch)."""
    n = y.shape[0]
    B = W.shape[1]
    m = W.shape[2]
    G[...] = 0.0
    loss = 0.0
    bound = 0.0
    for blk in range(c * nblocks // nchunks, (c + 1) * nblocks // nchunks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        _block_preact(Xf, dims, W, blk, j1 - j0, Z)
        bl, bb = _block_loss_coef(y, omega, kind, qcode, q, rho, B, m, j0, j1, Z, F, need_loss)
        loss += bl
        bound += bb
        _block_grad_acc(Xb, dims, blk, j1 - j0, Z, G)
    return loss, bound


@jit()
def _add_rows(grad_out, dims, S, r, b, i):
    """``grad_out[r, b, i, :d_r] += S[r, b, i, :d_r]``."""
    t = grad_out[r, b, i]
    s = S[r, b, i]
    for k in range(dims[r]):
        t[k] += s[k]


@jit()
def _lg_serial(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, grad_out, Gc, Zc, Fc, need_loss):
    """Chunks one after the other; uses only the first scratch entries.

    Adds the chunk results in the same order as :func:`_lg_parallel`, so the
    two are bit-identical. Returns ``(loss, bound)`` (see
    :func:`_block_loss_coef`; the loss is 0 unless ``need_loss``).
    """
    K, B, m, _ = W.shape
    nblocks, nchunks = chunk_layout(y.shape[0])
    grad_out[...] = 0.0
    loss = 0.0
    bound = 0.0
    for c in range(nchunks):
        cl, cb = _chunk_loss_grad(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, c, nblocks,
                                  nchunks, Zc[0], Fc[0], Gc[0], need_loss)
        loss += cl
        bound += cb
        for r in range(K):
            for b in range(B):
                for i in range(m):
                    _add_rows(grad_out, dims, Gc[0], r, b, i)
    return loss, bound


@jit_parallel()
def _lg_parallel(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, grad_out, Gc, Zc, Fc,
                 need_loss):
    """Chunks on the thread pool; the scratch arrays need one entry per chunk."""
    K, B, m, _ = W.shape
    nblocks, nchunks = chunk_layout(y.shape[0])
    closs = np.empty(nchunks, np.float64)
    cbound = np.empty(nchunks, np.float64)
    for c in prange(nchunks):
        cl, cb = _chunk_loss_grad(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, c, nblocks,
                                  nchunks, Zc[c], Fc[c], Gc[c], need_loss)
        closs[c] = cl
        cbound[c] = cb
    # One thread adds the chunks' gradients, in chunk order: a second
    # parallel region would cost more than these few additions.
    grad_out[...] = 0.0
    loss = 0.0
    bound = 0.0
    for c in range(nchunks):
        loss += closs[c]
        bound += cbound[c]
        for r in range(K):
            for b in range(B):
                for i in range(m):
                    _add_rows(grad_out, dims, Gc[c], r, b, i)
    return loss, bound


# --------------------------------------------------------------------------
# Gradient-descent helpers
# --------------------------------------------------------------------------


@jit()
def _check_learned(W, dims, signal, beta, threshold, learned, t):
    """Set ``learned[r, b] = t`` for banks not yet learned whose leading
    alignment satisfies ``beta_r * max_i c_b <w_{r,b,i}, v_r> >= threshold``.

    Each dot product is summed in four interleaved partial sums, added as
    ``(s0 + s1) + (s2 + s3)`` -- a fixed order, four times less latency than
    one running sum (this check runs at every step).
    """
    K, B, m, _ = W.shape
    for r in range(K):
        d = dims[r]
        v = signal[r]
        for b in range(B):
            if learned[r, b] >= 0:
                continue
            best = -np.inf
            for i in range(m):
                w = W[r, b, i]
                s0 = s1 = s2 = s3 = 0.0
                k = 0
                while k + 4 <= d:
                    s0 += np.float64(w[k]) * np.float64(v[k])
                    s1 += np.float64(w[k + 1]) * np.float64(v[k + 1])
                    s2 += np.float64(w[k + 2]) * np.float64(v[k + 2])
                    s3 += np.float64(w[k + 3]) * np.float64(v[k + 3])
                    k += 4
                while k < d:
                    s0 += np.float64(w[k]) * np.float64(v[k])
                    k += 1
                s = (s0 + s1) + (s2 + s3)
                if b == 1:
                    s = -s
                if s > best:
                    best = s
            if beta[r] * best >= threshold:
                learned[r, b] = t


@jit()
def _all_finite(dims, A):
    """True if ``A[r, b, i, :d_r]`` is finite everywhere.

    Counts the non-finite entries instead of stopping at the first, so that
    the loop vectorises (an integer sum may be reordered).
    """
    K, B, m, _ = A.shape
    bad = 0
    for r in range(K):
        for b in range(B):
            for i in range(m):
                a = A[r, b, i]
                for k in range(dims[r]):
                    bad += 0 if abs(a[k]) < np.inf else 1
    return bad == 0


@jit()
def _gd_update(W, dims, eta, grad):
    """``W -= eta * grad`` on the unpadded columns."""
    K, B, m, _ = W.shape
    for r in range(K):
        d = dims[r]
        for b in range(B):
            for i in range(m):
                w = W[r, b, i, :d]
                g = grad[r, b, i, :d]
                for k in range(d):
                    w[k] = w[k] - eta * g[k]


@jit()
def _step_status(loss, need_loss, bound, dims, grad, stop_loss):
    """Status after evaluating one step: -1 (go on), STATUS_NONFINITE or STATUS_STOP_LOSS.

    Without the loss (``need_loss`` False) a finite ``bound`` stands for a
    finite loss; a caller that gets STATUS_NONFINITE without the loss must
    evaluate the step again with it (see the module notes).
    """
    finite = math.isfinite(loss) if need_loss else math.isfinite(bound)
    if not (finite and _all_finite(dims, grad)):
        return STATUS_NONFINITE
    if stop_loss > 0.0 and loss < stop_loss:
        return STATUS_STOP_LOSS
    return -1


@jit()
def _gd_steps(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, eta, signal, beta, threshold,
              learned, t_start, n_steps, stop_loss, grad_buf, Gc, Zc, Fc):
    """The serial gradient-descent loop of :func:`gd_segment` (no checks).

    Shared, unchanged, by the single-run serial path and by every run of
    :func:`gd_segment_batch`, which is what makes a batched run
    bit-identical to the same run alone.
    """
    loss = np.nan
    t_end = t_start + n_steps
    for t in range(t_start, t_end):
        need_loss = stop_loss > 0.0 or t == t_end - 1
        loss, bound = _lg_serial(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, grad_buf, Gc,
                                 Zc, Fc, need_loss)
        _check_learned(W, dims, signal, beta, threshold, learned, t)
        status = _step_status(loss, need_loss, bound, dims, grad_buf, stop_loss)
        if status == STATUS_NONFINITE and not need_loss:
            # Stopping here: evaluate again with the loss, which is returned.
            loss, bound = _lg_serial(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, grad_buf,
                                     Gc, Zc, Fc, True)
        if status >= 0:
            return status, t, loss
        _gd_update(W, dims, eta, grad_buf)
    _check_learned(W, dims, signal, beta, threshold, learned, t_end)
    return STATUS_OK, t_end, loss


# --------------------------------------------------------------------------
# Public kernels
# --------------------------------------------------------------------------


def _need_c(name, arr):
    if not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous NumPy array")


def loss_and_grad(X, dims, y, omega, W, kind, q, rho, grad_out, packed=None):
    """Loss and gradient at ``W`` (one thread).

    Parameters
    ----------
    X : ndarray, (K, n, D)
        Inputs; columns beyond ``dims[r]`` are ignored.
    dims : ndarray of int64, (K,)
        Dimension of each modality.
    y : ndarray, (n,)
        Labels in {-1, +1}.
    omega : ndarray, (n,)
        Sample weights.
    W : ndarray, (K, B, m, D), C-contiguous
        Weights, B = 1 for kind 0 and B = 2 for kinds 1 and 2.
    kind : int
        0 symmetric, 1 class banks with srelu, 2 class banks with ReLU.
    q : float
        srelu power, q >= 2 (fast paths for q = 2, 3, 4, 5).
    rho : float
        srelu threshold, rho > 0.
    grad_out : ndarray, (K, B, m, D), C-contiguous
        Filled with dL/dW (zero in the padded columns).
    packed : tuple, optional
        ``pack_samples(X)``, made here when not given.

    Returns
    -------
    float
        ``L = sum_j omega_j softplus(-y_j f_j)``, accumulated in float64.

    Raises
    ------
    ValueError
        On inconsistent shapes or an invalid ``kind``, ``q`` or ``rho``.
    """
    return _lg_entry(X, dims, y, omega, W, kind, q, rho, grad_out, packed, False)


def loss_and_grad_parallel(X, dims, y, omega, W, kind, q, rho, grad_out, packed=None):
    """Loss and gradient at ``W``, chunks of samples on numba's thread pool.

    Same parameters, result and errors as :func:`loss_and_grad`, and
    bit-identical to it for any number of threads (see the module notes).
    """
    return _lg_entry(X, dims, y, omega, W, kind, q, rho, grad_out, packed, True)


def _lg_entry(X, dims, y, omega, W, kind, q, rho, grad_out, packed, parallel_flag):
    # The compiled function holds both paths, so the parallel code is loaded
    # from the cache even for a serial call: start the threading layer first
    # (see the module notes; without this, a serial call crashes when the
    # function comes from the cache).
    numba.get_num_threads()
    _need_c("W", W)
    _need_c("grad_out", grad_out)
    Xf, Xb = _packed(X, packed)
    if np.shape(y)[0] != np.shape(X)[1]:
        raise ValueError("y and omega must have shape (n,)")
    return _loss_and_grad(Xf, Xb, dims, y, omega, W, int(kind), float(q), float(rho), grad_out,
                          bool(parallel_flag))


@jit()
def _loss_and_grad(Xf, Xb, dims, y, omega, W, kind, q, rho, grad_out, parallel_flag):
    _check_args(Xf, y.shape[0], dims, W, kind, q, rho)
    _check_backward(Xb, y.shape[0], W)
    _check_samples(y, omega, W, grad_out)
    if parallel_flag:
        _, nbuf = chunk_layout(y.shape[0])
        Gc, Zc, Fc = _scratch(Xf, Xb, W, nbuf)
        loss, _ = _lg_parallel(Xf, Xb, dims, y, omega, W, kind, _q_code(q), q, rho, grad_out, Gc,
                               Zc, Fc, True)
    else:
        Gc, Zc, Fc = _scratch(Xf, Xb, W, 1)
        loss, _ = _lg_serial(Xf, Xb, dims, y, omega, W, kind, _q_code(q), q, rho, grad_out, Gc,
                             Zc, Fc, True)
    return loss


def forward(X, dims, W, kind, q, rho, f_out, phi_out, packed=None):
    """Network output and the output of each modality's encoder.

    Parameters
    ----------
    X, dims, W, kind, q, rho
        As in :func:`loss_and_grad`.
    packed : tuple, optional
        ``pack_samples(X)``, of which only the forward copy is read
        (``pack_samples(X, backward=False)`` is enough).
    f_out : ndarray, (n,)
        Filled with ``f_j = sum_r phi_r(X_{r,j})`` (summed in float64).
    phi_out : ndarray, (n, K)
        Filled with ``phi_r(X_{r,j})``.
    """
    _need_c("W", W)
    Xf = pack_samples(X, backward=False)[0] if packed is None else packed[0]
    _forward(Xf, np.shape(X)[1], dims, W, int(kind), float(q), float(rho), f_out, phi_out)


@jit()
def _forward(Xf, n, dims, W, kind, q, rho, f_out, phi_out):
    _check_args(Xf, n, dims, W, kind, q, rho)
    K, B, m, _ = W.shape
    if f_out.shape[0] != n or phi_out.shape[0] != n or phi_out.shape[1] != K:
        raise ValueError("f_out must be (n,) and phi_out (n, K)")
    qcode = _q_code(q)
    Z = np.empty((K, B * m, BLOCK), Xf.dtype)
    P = np.empty((K, BLOCK), np.float64)
    nblocks, _ = chunk_layout(n)
    for blk in range(nblocks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        nb = j1 - j0
        _block_preact(Xf, dims, W, blk, nb, Z)
        P[...] = 0.0
        for r in range(K):
            for bi in range(B * m):
                _unit_rows(Z[r, bi], P[r], 1.0 if bi < m else -1.0, kind, qcode, q, rho, nb)
        for jj in range(nb):
            f = 0.0
            for r in range(K):
                phi_out[j0 + jj, r] = P[r, jj]
                f += P[r, jj]
            f_out[j0 + jj] = f


@jit()
def alignments(W, signal):
    """Signed alignments ``a[r, b, i] = c_b <w_{r,b,i}, v_r>``.

    Parameters
    ----------
    W : ndarray, (K, B, m, D)
        Weights (all D columns are summed; the padding is zero).
    signal : ndarray, (K, D)
        Unit signal vectors v_r, zero padded.

    Returns
    -------
    ndarray of float64, (K, B, m)
        With ``c_0 = +1`` and ``c_1 = -1``.
    """
    K, B, m, D = W.shape
    A = np.empty((K, B, m), np.float64)
    for r in range(K):
        for b in range(B):
            for i in range(m):
                s = 0.0
                for k in range(D):
                    s += np.float64(W[r, b, i, k]) * np.float64(signal[r, k])
                A[r, b, i] = s if b == 0 else -s
    return A


def gd_segment(X, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold, learned,
               t_start, n_steps, stop_loss, parallel_flag, grad_buf, packed=None):
    """Run up to ``n_steps`` full-batch gradient-descent steps on ``W`` in place.

    For t = t_start, ..., t_start + n_steps - 1: evaluate the loss and the
    gradient at W(t), record the banks learned at W(t), then stop if the loss
    or the gradient is not finite (status 2) or if ``stop_loss > 0`` and the
    loss is below it (status 1); otherwise set W(t+1) = W(t) - eta grad.
    After the last step, the learned check is also made at W(t_start +
    n_steps). The whole loop runs in compiled code.

    Parameters
    ----------
    X, dims, y, omega, W, kind, q, rho
        As in :func:`loss_and_grad`; ``W`` is updated in place.
    eta : float
        Learning rate.
    signal : ndarray, (K, D)
        Unit signal vectors v_r, zero padded.
    beta : ndarray of float64, (K,)
        Signal strengths beta_r.
    threshold : float
        Bank (r, b) is learned at the first step t at which
        ``beta_r * max_i c_b <w_{r,b,i}, v_r> >= threshold``.
    learned : ndarray of int64, (K, B)
        In/out: -1 for banks not learned yet, which are set to the step at
        which they are learned; entries >= 0 are left alone.
    t_start : int
        Step index of the current W.
    n_steps : int
        Maximum number of updates.
    stop_loss : float
        Stop when the loss is below it; ignored when <= 0.
    parallel_flag : bool
        Evaluate the gradient on numba's thread pool (bit-identical results).
    grad_buf : ndarray, (K, B, m, D), C-contiguous
        Work buffer; holds the gradient at the last evaluated step.
    packed : tuple, optional
        ``pack_samples(X)``; pass it when calling repeatedly on one X.

    Returns
    -------
    status : int
        ``STATUS_OK`` (0), ``STATUS_STOP_LOSS`` (1) or ``STATUS_NONFINITE`` (2).
    t_stop : int
        Step index of W on return: ``t_start + n_steps`` for status 0,
        otherwise the step that triggered the stop (W is then W(t_stop),
        not updated).
    last_loss : float
        Loss at the last evaluated step, W(t_stop) for statuses 1 and 2
        and W(t_stop - 1) for status 0 (nan if ``n_steps == 0``).
    """
    numba.get_num_threads()  # starts the threading layer, see the module notes
    _need_c("W", W)
    _need_c("grad_buf", grad_buf)
    Xf, Xb = _packed(X, packed)
    if np.shape(y)[0] != np.shape(X)[1]:
        raise ValueError("y and omega must have shape (n,)")
    # Fixed scalar types: one compiled version per array dtype, whatever
    # Python or NumPy scalars the caller passes.
    # Two compiled bodies, not one with a branch: a run that never goes
    # parallel then never compiles the parallel gradient (seconds of a cold start).
    body = _gd_segment_parallel if parallel_flag else _gd_segment_serial
    return body(Xf, Xb, dims, y, omega, W, int(kind), float(q), float(rho), float(eta),
                signal, beta, float(threshold), learned, int(t_start), int(n_steps),
                float(stop_loss), grad_buf)


@jit()
def _gd_segment_checks(Xf, Xb, dims, y, omega, W, kind, q, rho, signal, beta, learned, grad_buf):
    _check_args(Xf, y.shape[0], dims, W, kind, q, rho)
    _check_backward(Xb, y.shape[0], W)
    _check_samples(y, omega, W, grad_buf)
    _check_gd(W, signal, beta, learned)


@jit()
def _gd_segment_serial(Xf, Xb, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold,
                       learned, t_start, n_steps, stop_loss, grad_buf):
    """Compiled body of :func:`gd_segment`, one thread."""
    _gd_segment_checks(Xf, Xb, dims, y, omega, W, kind, q, rho, signal, beta, learned, grad_buf)
    grad_buf[...] = 0.0
    Gc, Zc, Fc = _scratch(Xf, Xb, W, 1)
    return _gd_steps(Xf, Xb, dims, y, omega, W, kind, _q_code(q), q, rho, eta, signal, beta,
                     threshold, learned, t_start, n_steps, stop_loss, grad_buf, Gc, Zc, Fc)


@jit()
def _gd_segment_parallel(Xf, Xb, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold,
                         learned, t_start, n_steps, stop_loss, grad_buf):
    """Compiled body of :func:`gd_segment`: the loop of _gd_steps, the gradient on the thread pool."""
    _gd_segment_checks(Xf, Xb, dims, y, omega, W, kind, q, rho, signal, beta, learned, grad_buf)
    qcode = _q_code(q)
    grad_buf[...] = 0.0
    _, nbuf = chunk_layout(y.shape[0])
    Gc, Zc, Fc = _scratch(Xf, Xb, W, nbuf)
    loss = np.nan
    t_end = t_start + n_steps
    for t in range(t_start, t_end):
        need_loss = stop_loss > 0.0 or t == t_end - 1
        loss, bound = _lg_parallel(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, grad_buf, Gc,
                                   Zc, Fc, need_loss)
        _check_learned(W, dims, signal, beta, threshold, learned, t)
        status = _step_status(loss, need_loss, bound, dims, grad_buf, stop_loss)
        if status == STATUS_NONFINITE and not need_loss:
            loss, bound = _lg_parallel(Xf, Xb, dims, y, omega, W, kind, qcode, q, rho, grad_buf,
                                       Gc, Zc, Fc, True)
        if status >= 0:
            return status, t, loss
        _gd_update(W, dims, eta, grad_buf)
    _check_learned(W, dims, signal, beta, threshold, learned, t_end)
    return STATUS_OK, t_end, loss


def gd_segment_batch(Xf, Xb, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold,
                     learned, t_start, n_steps, stop_loss, status_out, t_stop_out, loss_out):
    """:func:`gd_segment` for R independent runs of one shape, in one call.

    Runs are spread over numba's thread pool (one run per task, handed out
    dynamically, so runs of different lengths balance); each run's steps are
    the serial loop of :func:`gd_segment`, so its result is bit-identical to
    ``gd_segment(..., parallel_flag=False)`` on that run alone, for any
    number of threads and any batch.

    Parameters
    ----------
    Xf, Xb : ndarray, (R, ...)
        ``pack_samples(X_i)`` of each run, stacked (all C-contiguous, like
        every array here).
    dims : ndarray of int64, (R, K)
    y, omega : ndarray, (R, n)
    W : ndarray, (R, K, B, m, D)
        Updated in place.
    kind, q, rho
        Shared by all runs, as in :func:`loss_and_grad`.
    eta, threshold, stop_loss : ndarray of float64, (R,)
        Per-run learning rate, learned threshold and early-stop loss.
    signal : ndarray, (R, K, D)
    beta : ndarray of float64, (R, K)
    learned : ndarray of int64, (R, K, B)
        In/out, as in :func:`gd_segment`.
    t_start, n_steps : ndarray of int64, (R,)
        Per-run step index of W and number of updates. A negative
        ``n_steps[i]`` leaves run i alone (nothing of it is read or
        written), so finished runs can stay in the batch.
    status_out, t_stop_out : ndarray of int64, (R,)
        Filled with each run's ``status`` and ``t_stop``.
    loss_out : ndarray of float64, (R,)
        Filled with each run's ``last_loss``.
    """
    numba.get_num_threads()  # starts the threading layer, see the module notes
    for name, arr in (("Xf", Xf), ("Xb", Xb), ("W", W), ("learned", learned)):
        _need_c(name, arr)
    saved = numba.get_parallel_chunksize()
    numba.set_parallel_chunksize(1)  # dynamic hand-out: one run per task
    try:
        _gd_segment_batch(Xf, Xb, dims, y, omega, W, int(kind), float(q), float(rho), eta,
                          signal, beta, threshold, learned, t_start, n_steps, stop_loss,
                          status_out, t_stop_out, loss_out)
    finally:
        numba.set_parallel_chunksize(saved)


@jit()
def _check_batch(Xf, Xb, dims, y, omega, W, eta, signal, beta, threshold, learned, t_start,
                 n_steps, stop_loss, status_out, t_stop_out, loss_out):
    R = W.shape[0]
    if (Xf.shape[0] != R or Xb.shape[0] != R or dims.shape[0] != R or y.shape[0] != R
            or omega.shape[0] != R or eta.shape[0] != R or signal.shape[0] != R
            or beta.shape[0] != R or threshold.shape[0] != R or learned.shape[0] != R
            or t_start.shape[0] != R or n_steps.shape[0] != R or stop_loss.shape[0] != R
            or status_out.shape[0] != R or t_stop_out.shape[0] != R or loss_out.shape[0] != R):
        raise ValueError("every batched array needs the same leading run axis R")


@jit_parallel()
def _gd_segment_batch(Xf, Xb, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold,
                      learned, t_start, n_steps, stop_loss, status_out, t_stop_out, loss_out):
    """Compiled body of :func:`gd_segment_batch`."""
    _check_batch(Xf, Xb, dims, y, omega, W, eta, signal, beta, threshold, learned, t_start,
                 n_steps, stop_loss, status_out, t_stop_out, loss_out)
    R = W.shape[0]
    for i in range(R):
        _check_args(Xf[i], y.shape[1], dims[i], W[i], kind, q, rho)
        _check_backward(Xb[i], y.shape[1], W[i])
        _check_samples(y[i], omega[i], W[i], W[i])
        _check_gd(W[i], signal[i], beta[i], learned[i])
    qcode = _q_code(q)
    for i in prange(R):
        if n_steps[i] >= 0:
            Gc, Zc, Fc = _scratch(Xf[i], Xb[i], W[i], 1)
            grad_buf = np.zeros_like(W[i])
            status, t_stop, loss = _gd_steps(Xf[i], Xb[i], dims[i], y[i], omega[i], W[i], kind,
                                             qcode, q, rho, eta[i], signal[i], beta[i],
                                             threshold[i], learned[i], t_start[i], n_steps[i],
                                             stop_loss[i], grad_buf, Gc, Zc, Fc)
            status_out[i] = status
            t_stop_out[i] = t_stop
            loss_out[i] = loss
