"""Sums over a block's samples in eight fixed lanes, written in LLVM IR.

A sum like ``sum_j w_j h_j`` over the samples of a block is a reduction:
without fastmath (never used, see ``simcomp._jit``) numba may not reorder
it, so a plain loop runs one scalar add after another, and its vectorisers
did not turn hand-unrolled scalar accumulators into vector ones either
(pmr's class sums ran at about a quarter of the speed of the vector form).
:func:`_lane_dot` and :func:`_lane_sum` fix the order in the source
instead: element ``8 g + l`` goes to lane ``l`` (one vector of eight
float64, ``llvm.fma`` per group g in increasing order), and the lanes are
then added by a fixed halving tree, ``((l0 + l4) + (l2 + l6)) + ((l1 + l5)
+ (l3 + l7))``. Every lane does exactly the scalar operation, ``llvm.fma``
is exactly rounded everywhere and a machine with narrower vectors splits
the eight lanes without changing them, so a result depends neither on the
machine nor on threads. The caller adds the samples beyond the last whole
group of eight (in order).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LANES", "_lane_dot", "_lane_sum"]

LANES = 8
"""Elements per group: one 512-bit vector of float64."""


def _make_lane_sum(with_b):
    """An intrinsic for the lane sum of ``a[a_off:a_off + 8 count]`` (times ``b`` from b_off)."""

    def build(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        if with_b:
            a_arr, aoff, b_arr, boff, cnt = args
            aty, aoff_ty, bty, boff_ty, cnt_ty = signature.args
        else:
            a_arr, aoff, cnt = args
            aty, aoff_ty, cnt_ty = signature.args
            b_arr = bty = boff = boff_ty = None
        aoff = context.cast(builder, aoff, aoff_ty, types.intp)
        cnt = context.cast(builder, cnt, cnt_ty, types.intp)
        vec = ir.VectorType(ir.DoubleType(), LANES)
        i32 = ir.IntType(32)

        def vload(ty, arr, off, g):
            ptr = context.make_array(ty)(context, builder, value=arr).data
            at = builder.add(off, builder.mul(g, ir.Constant(intp, LANES)))
            return builder.load(builder.bitcast(builder.gep(ptr, [at]), vec.as_pointer()),
                                align=8)

        if with_b:
            boff = context.cast(builder, boff, boff_ty, types.intp)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v8f64")
        acc = cgutils.alloca_once(builder, vec)
        builder.store(ir.Constant(vec, None), acc)  # zeros
        with cgutils.for_range(builder, cnt) as loop:
            av = vload(aty, a_arr, aoff, loop.index)
            if with_b:
                new = builder.call(fma, [av, vload(bty, b_arr, boff, loop.index),
                                         builder.load(acc)])
            else:
                new = builder.fadd(builder.load(acc), av)
            builder.store(new, acc)
        v = builder.load(acc)
        undef = ir.Constant(vec, ir.Undefined)
        width = LANES
        mask = ir.VectorType(i32, LANES)
        while width > 1:  # lane i += lane i + width/2: the fixed halving tree
            width //= 2
            lo = ir.Constant(mask, [i if i < width else 0 for i in range(LANES)])
            hi = ir.Constant(mask, [i + width if i < width else 0 for i in range(LANES)])
            v = builder.fadd(builder.shuffle_vector(v, undef, lo),
                             builder.shuffle_vector(v, undef, hi))
        return builder.extract_element(v, ir.Constant(i32, 0))

    def ok(*arrays):
        return all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == types.float64
                   for a in arrays)

    if with_b:
        @intrinsic
        def lane_dot(typingctx, a, a_off, b, b_off, count):
            if not ok(a, b):
                return None
            return types.float64(a, a_off, b, b_off, count), build
        return lane_dot

    @intrinsic
    def lane_sum(typingctx, a, a_off, count):
        if not ok(a):
            return None
        return types.float64(a, a_off, count), build
    return lane_sum


_lane_dot = _make_lane_sum(True)
_lane_dot.__doc__ = """``sum a[a_off + 8 g + l] b[b_off + 8 g + l]`` over g < count and lanes l < 8.

Call from compiled code as ``_lane_dot(a, a_off, b, b_off, count)``; a and b
C-contiguous float64 arrays addressed by flat element offsets. The caller
guarantees the bounds (no checks here)."""

_lane_sum = _make_lane_sum(False)
_lane_sum.__doc__ = """``sum_{g < count} sum_l a[a_off + 8 g + l]`` in eight lanes (see
:func:`_lane_dot`): ``_lane_sum(a, a_off, count)``."""
