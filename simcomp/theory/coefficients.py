"""The logistic loss coefficients of the noise-aware dynamics, vectorised (LLVM IR).

Every step of the noise-aware dynamics needs, for every sample k,

    coef_k = -omega_k y_k sigmoid(-y_k f_k),

one exponential per sample: written with the C library's ``exp`` (a call
per element, which keeps the loop scalar) this was a sixth of the
dynamics' time per step.  This intrinsic computes the same expression on
vectors of ``WIDTH`` doubles with its own exponential:

* ``e = exp(-|y f|)``: x = max(-|y f|, -800) (nan kept), k = round(x / ln 2)
  (the 1.5 * 2^52 rounding trick), r = x - k ln2_hi - k ln2_lo (Cody-Waite,
  exact products), e^r by its Taylor polynomial of degree 13 in Horner form
  (|r| <= ln(2) / 2: truncation below 1e-17 relative), times 2^k built from
  its bits in two halves so that results down to the subnormals (and 0
  below) come out as the C library's do;
* ``sigmoid(-g) = e / (1 + e)`` for g >= 0, else ``1 / (1 + e)``, selected
  without a branch, exactly as ``noisy_dynamics._sigmoid_neg``.

Every lane does the same scalar operations in the same order (no fused
multiply-add, no reassociation), so results do not depend on the processor;
the coefficients are within 4 ulp of the scalar code's with the C library's
``exp`` (tests/test_noisy_coefficients.py measures it over the whole range of
y f), and 0, inf and nan give exactly what the scalar code gives.
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["WIDTH", "loss_coefficients"]

WIDTH = 8  # doubles per vector

_LOG2E = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for |k| < 2^20 (fdlibm's constants)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2^52: x + _ROUND - _ROUND rounds x to an integer
_FLOOR = -800.0  # exp below it is 0 in double precision; keeps k far from overflow
_TAYLOR = [1.0 / f for f in (1.0, 1.0, 2.0, 6.0, 24.0, 120.0, 720.0, 5040.0, 40320.0,
                             362880.0, 3628800.0, 39916800.0, 479001600.0, 6227020800.0)]


def _exp_neg(builder, x, vec):
    """exp(x) for x <= 0 or nan, lane-wise on a vector (see the module docstring)."""
    i64v = ir.VectorType(ir.IntType(64), WIDTH)

    def c(v):
        return ir.Constant(vec, [v] * WIDTH)

    def ci(v):
        return ir.Constant(i64v, [v] * WIDTH)

    low = builder.fcmp_ordered("<", x, c(_FLOOR))  # false for nan: nan is kept
    x = builder.select(low, c(_FLOOR), x)
    t = builder.fadd(builder.fmul(x, c(_LOG2E)), c(_ROUND))
    kf = builder.fsub(t, c(_ROUND))
    r = builder.fsub(builder.fsub(x, builder.fmul(kf, c(_LN2_HI))), builder.fmul(kf, c(_LN2_LO)))
    p = c(_TAYLOR[-1])
    for coef in reversed(_TAYLOR[:-1]):
        p = builder.fadd(builder.fmul(p, r), c(coef))
    k = builder.sub(builder.bitcast(t, i64v), builder.bitcast(c(_ROUND), i64v))
    k1 = builder.ashr(k, ci(1))
    k2 = builder.sub(k, k1)
    s1 = builder.bitcast(builder.shl(builder.add(k1, ci(1023)), ci(52)), vec)
    s2 = builder.bitcast(builder.shl(builder.add(k2, ci(1023)), ci(52)), vec)
    return builder.fmul(builder.fmul(p, s1), s2)


@intrinsic
def loss_coefficients(typingctx, coef, y, f, omega, count):
    """``coef[k] = -omega[k] * y[k] * sigmoid(-y[k] * f[k])`` for k < count.

    All arrays C-contiguous float64 of length >= count; ``count`` a multiple
    of :data:`WIDTH` (the caller does the rest); no bounds checks.
    """
    arrays = (coef, y, f, omega)
    if not all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == types.float64
               for a in arrays):
        return None
    sig = types.void(coef, y, f, omega, count)

    def codegen(context, builder, signature, args):
        from numba.core import cgutils

        intp = context.get_value_type(types.intp)
        cnt = context.cast(builder, args[4], signature.args[4], types.intp)
        vec = ir.VectorType(ir.DoubleType(), WIDTH)
        coef_p, y_p, f_p, om_p = (
            context.make_array(signature.args[i])(context, builder, value=args[i]).data
            for i in range(4))

        def at(ptr, off):
            return builder.bitcast(builder.gep(ptr, [off]), vec.as_pointer())

        one = ir.Constant(vec, [1.0] * WIDTH)
        zero = ir.Constant(vec, [0.0] * WIDTH)
        blocks = builder.sdiv(cnt, ir.Constant(intp, WIDTH))
        with cgutils.for_range(builder, blocks) as loop:
            off = builder.mul(loop.index, ir.Constant(intp, WIDTH))
            yv = builder.load(at(y_p, off), align=8)
            g = builder.fmul(yv, builder.load(at(f_p, off), align=8))
            # |g| as the scalar code's abs: clear the sign bit
            i64v = ir.VectorType(ir.IntType(64), WIDTH)
            mag = builder.bitcast(builder.and_(builder.bitcast(g, i64v),
                                               ir.Constant(i64v, [(1 << 63) - 1] * WIDTH)), vec)
            e = _exp_neg(builder, builder.fsub(zero, mag), vec)
            pos = builder.fcmp_ordered(">=", g, zero)
            sig_v = builder.fdiv(builder.select(pos, e, one), builder.fadd(one, e))
            neg_om = builder.fsub(ir.Constant(vec, [-0.0] * WIDTH),
                                  builder.load(at(om_p, off), align=8))
            builder.store(builder.fmul(builder.fmul(neg_om, yv), sig_v), at(coef_p, off),
                          align=8)
        return context.get_dummy_value()

    return sig, codegen
