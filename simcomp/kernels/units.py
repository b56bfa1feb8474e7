"""Unit nonlinearities (srelu, psi, ReLU) and a vectorisable exp.

``kind`` 0 is the symmetric learner, psi(z) = srelu(z) - srelu(-z); 1 class
banks with srelu; 2 class banks with plain ReLU (q and rho unused). The
``unit`` tuple passed around the kernels is ``(kind, qcode, q, rho)``, with
``qcode`` = :func:`_q_code` (q) selecting a multiplication fast path for
integer q. Unit values are evaluated in float64 also for float32 data.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from simcomp._jit import jit

KIND_SYMMETRIC = 0
KIND_BANKS_SRELU = 1
KIND_BANKS_RELU = 2


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
def _srelu_rows(Z, r, bi, F, sign, symmetric, qcode, q, rho, nb):
    """Body of :func:`_unit_rows` for srelu; inlined so that ``symmetric``
    and ``qcode`` are constants at each call site and the loop compiles to
    branch-free vector code."""
    inv_rho = 1.0 / rho
    rho_q = rho / q
    off = (1.0 - 1.0 / q) * rho
    for j in range(nb):
        zj = np.float64(Z[r, bi, j])
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
        Z[r, bi, j] = p


@jit()
def _unit_rows(Z, r, bi, F, sign, unit, nb):
    """``F[j] += sign * unit(z[j])`` and ``z[j] = unit'(z[j])`` for j < nb, z = ``Z[r, bi]``.

    ``unit`` is psi (kind 0), srelu (kind 1) or ReLU (kind 2); ``sign`` is
    the bank sign c_b. ``F`` is float64. A nan or infinite pre-activation
    makes ``F[j]`` nan. Elements are indexed in Z, no row view is made: a
    view costs two atomic reference-count operations per row and step.
    """
    kind, qcode, q, rho = unit
    if kind == 2:
        for j in range(nb):
            a = np.float64(Z[r, bi, j])
            pos = a > 0.0
            v = a if pos else 0.0
            F[j] += sign * (v + 0.0 * a)
            Z[r, bi, j] = 1.0 if pos else 0.0
    elif kind == 0:
        if qcode == 3:
            _srelu_rows(Z, r, bi, F, sign, True, 3, q, rho, nb)
        elif qcode == 2:
            _srelu_rows(Z, r, bi, F, sign, True, 2, q, rho, nb)
        elif qcode == 4:
            _srelu_rows(Z, r, bi, F, sign, True, 4, q, rho, nb)
        elif qcode == 5:
            _srelu_rows(Z, r, bi, F, sign, True, 5, q, rho, nb)
        else:
            _srelu_rows(Z, r, bi, F, sign, True, 0, q, rho, nb)
    else:
        if qcode == 3:
            _srelu_rows(Z, r, bi, F, sign, False, 3, q, rho, nb)
        elif qcode == 2:
            _srelu_rows(Z, r, bi, F, sign, False, 2, q, rho, nb)
        elif qcode == 4:
            _srelu_rows(Z, r, bi, F, sign, False, 4, q, rho, nb)
        elif qcode == 5:
            _srelu_rows(Z, r, bi, F, sign, False, 5, q, rho, nb)
        else:
            _srelu_rows(Z, r, bi, F, sign, False, 0, q, rho, nb)



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
def _block_units(unit, m, nb, Z, F):
    """``F[:nb] = f`` of the block's samples; ``Z`` becomes act'(z)."""
    kind, qcode, q, rho = unit
    K = Z.shape[0]
    BM = Z.shape[1]
    for j in range(nb):
        F[j] = 0.0
    for r in range(K):
        for bi in range(BM):
            _unit_rows(Z, r, bi, F, 1.0 if bi < m else -1.0, unit, nb)


@jit()
def _block_units_split(unit, m, nb, Z, F, P, U):
    """:func:`_block_units`, also keeping each modality's output and each unit's value.

    ``F[:nb]`` is f exactly as :func:`_block_units` sums it (neuron by
    neuron over all modalities), ``P[r, :nb]`` = phi_r (its own neurons,
    summed in the same order from zero) and, when ``U`` is not empty,
    ``U[r, b*m + i, :nb]`` the unit value act(z) of the neuron (without the
    bank sign). ``P`` and ``U`` are float64.
    """
    kind, qcode, q, rho = unit
    K = Z.shape[0]
    BM = Z.shape[1]
    keep = U.shape[0] > 0
    tmp = np.empty(nb, np.float64)
    for j in range(nb):
        F[j] = 0.0
    for r in range(K):
        Pr = P[r]
        for j in range(nb):
            Pr[j] = 0.0
        for bi in range(BM):
            sign = 1.0 if bi < m else -1.0
            tmp[:] = 0.0
            _unit_rows(Z, r, bi, tmp, 1.0, unit, nb)
            for j in range(nb):
                v = sign * tmp[j]
                F[j] += v
                Pr[j] += v
            if keep:
                u = U[r, bi]
                for j in range(nb):
                    u[j] = tmp[j]
