"""Register tiles written in LLVM IR, and the block kernels built from them.

The forward ``Z[i, j] = sum_k W[i, k] X[j, k]`` and the backward
``G[i, k] += sum_j c[i, j] X[j, k]`` of a block of samples both have the form

    C[h, 0:T] (+)= sum_t A[h, t] * Bv[t, 0:T],   h < H,

with T = ``tile_width`` (two 512-bit vectors) and H = 8 neurons (then 4,
then 1-3). :func:`_make_tile` writes that loop directly in LLVM IR: 2H
vector accumulators stay in registers for the whole sum and every step is
2H vector ``llvm.fma``. Why IR: without fastmath (never used, see
``simcomp._jit``) numba may neither reorder a sum nor keep array elements
in registers across a loop, and its vectorisers did not turn scalar
accumulators into vector ones. Every lane does exactly the scalar
operation and ``llvm.fma`` is exactly rounded everywhere, so a result
depends neither on where a value falls in a tile nor on the machine.
Measurements are in docs/performance.md.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from simcomp._jit import jit
from simcomp.kernels.layout import _PREFETCH_MIN_BYTES, BLOCK



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
def _tiles_set(nrows, C, c_at, A, a_at, Bv, b_at, count, pf):
    """``nrows`` rows of tiles (eight, then four at a time) that start from zero.

    ``c_at``, ``a_at``, ``b_at`` are (offset, row stride) of C, A and Bv.
    """
    c_off, c_rs = c_at
    a_off, a_rs = a_at
    b_off, b_rs = b_at
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
def _tiles_acc(nrows, C, c_at, A, a_at, Bv, b_at, count, pf):
    """``nrows`` rows of tiles (eight, then four at a time) that add to C (see :func:`_tiles_set`)."""
    c_off, c_rs = c_at
    a_off, a_rs = a_at
    b_off, b_rs = b_at
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
            _tiles_set(BM, Z, (zoff, BL), W, (r * BM * D, D), Xf, (xoff, T), d, pf)


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
            _tiles_acc(BM, G, (r * BM * Dp + kt * T, Dp), Z, (r * BM * BL, BL), Xb, (xoff, T),
                       nb, pf)

