"""One neuron's update in the noise-aware dynamics, written in LLVM IR with vector partial sums.

In the diagonal limit a step of the noise-aware dynamics does, for every
neuron and every sample k,

    g_k   = coef_k * act'_k
    nu_k -= eta * (g_k * ||N_k||^2)

and needs the alignment drive ``sum_k g_k b_k``.  The element-wise part is
vectorised by numba's compiler anyway; the drive is not: without fastmath
(never used, see ``simcomp._jit``) LLVM may not reorder a floating-point
sum, and numba's pipeline leaves the scalar partial sums of
``noisy_dynamics`` scalar (its SLP vectoriser is off).  A scalar sum of n
products took half of a neuron's time per step, so this intrinsic does the
whole update in one pass over the samples with the drive summed in
``LANES`` = 32 interleaved partial sums held in ``UNROLL`` vector registers
of ``WIDTH`` doubles: partial sum j adds the products of the samples
k = j (mod 32), k < count, in increasing k; then the 32 are added in a fixed
tree (the four vectors pairwise, then the eight lanes pairwise).  Every lane
does exactly the scalar operations (``fmul``/``fsub``/``fadd``, no fused
multiply-add, no reassociation), and LLVM splits a vector it cannot hold
into narrower ones lane by lane, so the result is the same on every
processor; it differs from a sum in index order by rounding only
(tests/test_noisy_drive.py checks both).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LANES", "WIDTH", "UNROLL", "drive_lanes"]

WIDTH = 8  # doubles per vector (one 512-bit register, two 256-bit ones)
UNROLL = 4  # vectors of partial sums: enough independent additions to hide their latency
LANES = WIDTH * UNROLL


@intrinsic
def drive_lanes(typingctx, nu, dact, coef, b, diag, eta, count):
    """``nu[k] -= eta * ((coef[k] * dact[k]) * diag[k])`` for k < count and the drive
    ``sum_k (coef[k] * dact[k]) * b[k]`` in :data:`LANES` partial sums (module docstring).

    All arrays C-contiguous float64 of length >= count; ``count`` a multiple of
    :data:`LANES` (the caller does the rest of the samples); no bounds checks.
    Returns the drive (0.0 for count 0).
    """
    arrays = (nu, dact, coef, b, diag)
    if not all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == types.float64
               for a in arrays):
        return None
    sig = types.float64(nu, dact, coef, b, diag, eta, count)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        cnt = context.cast(builder, args[6], signature.args[6], types.intp)
        eta_s = context.cast(builder, args[5], signature.args[5], types.float64)
        vec = ir.VectorType(ir.DoubleType(), WIDTH)
        nu_p, dact_p, coef_p, b_p, diag_p = (
            context.make_array(signature.args[i])(context, builder, value=args[i]).data
            for i in range(5))
        undef = ir.Constant(vec, ir.Undefined)
        eta_v = builder.shuffle_vector(builder.insert_element(undef, eta_s, ir.Constant(i32, 0)),
                                       undef, ir.Constant(ir.VectorType(i32, WIDTH), None))
        accs = []
        for _ in range(UNROLL):
            slot = cgutils.alloca_once(builder, vec)
            builder.store(ir.Constant(vec, None), slot)
            accs.append(slot)

        def at(ptr, off):
            return builder.bitcast(builder.gep(ptr, [off]), vec.as_pointer())

        blocks = builder.sdiv(cnt, ir.Constant(intp, LANES))
        with cgutils.for_range(builder, blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(intp, LANES))
            for u in range(UNROLL):
                off = builder.add(base, ir.Constant(intp, u * WIDTH))
                g = builder.fmul(builder.load(at(coef_p, off), align=8),
                                 builder.load(at(dact_p, off), align=8))
                step = builder.fmul(eta_v, builder.fmul(g, builder.load(at(diag_p, off),
                                                                        align=8)))
                builder.store(builder.fsub(builder.load(at(nu_p, off), align=8), step),
                              at(nu_p, off), align=8)
                prod = builder.fmul(g, builder.load(at(b_p, off), align=8))
                builder.store(builder.fadd(builder.load(accs[u]), prod), accs[u])
        v = [builder.load(slot) for slot in accs]
        total = builder.fadd(builder.fadd(v[0], v[1]), builder.fadd(v[2], v[3]))
        e = [builder.extract_element(total, ir.Constant(i32, j)) for j in range(WIDTH)]
        return builder.fadd(
            builder.fadd(builder.fadd(e[0], e[1]), builder.fadd(e[2], e[3])),
            builder.fadd(builder.fadd(e[4], e[5]), builder.fadd(e[6], e[7])))

    return sig, codegen
