"""Compiled forward/backward passes and the gradient-descent loop.

Private module: the kernels take only NumPy arrays and scalars; the training
module decides what to run, these functions only do the arithmetic of the
specification (sections 2-4, whose notation is used below).

Data layout
-----------
``X``      (K, n, D) float64 or float32; modality r is ``X[r, :, :dims[r]]``
           and the columns beyond ``dims[r]`` are padding.
``dims``   (K,) int64.
``y``      (n,) labels +-1; ``omega`` (n,) sample weights.
``W``      (K, B, m, D), same dtype as X. ``B = 1`` (symmetric learner) or
           ``B = 2`` (class banks: bank 0 has c = +1, bank 1 has c = -1).
``kind``   0 symmetric, psi(z) = srelu(z) - srelu(-z); 1 class banks with
           srelu; 2 class banks with plain ReLU (``q`` and ``rho`` unused).

Padded columns of X and W are never read, and padded columns of W and of the
gradient are never written (gradients are zero there), so a zero padding
stays zero. Float32 data is computed in float32 except the unit
nonlinearities, f, the loss and l', which are evaluated in float64.

How one gradient evaluation is organised
----------------------------------------
Samples are processed in *blocks* of ``BLOCK`` consecutive samples. For a
block, the pre-activations of all K modalities are computed, then f, the
loss and l' of each sample, then the block's contribution to the gradient,
so each sample is fetched from memory once per step.

Without ``fastmath`` (never used, see ``simcomp._jit``) the compiler may not
reorder a floating-point sum, so a dot product written as a loop would stay
scalar. Every inner loop is therefore an element-wise update along a
contiguous axis, which the compiler does vectorise:

* forward: ``z[i, j] += sum_k W[i, k] Xt[k, j]``, vectorised over samples j,
  where ``Xt`` is the (K, D, n) transpose of X (made once per call or per
  segment, since X does not change during training);
* backward: ``G[i, k] += sum_j c[i, j] X[j, k]``, vectorised over the input
  coordinate k.

Both loops handle four neurons and four terms of the sum per pass (register
blocking), so each accumulator is loaded and stored once per four products
and each input row is loaded once per four neurons. The summation order this
implies is fixed by the code, not by the compiler.

Determinism
-----------
The ``nblocks = ceil(n / BLOCK)`` blocks are grouped into
``nchunks = min(nblocks, MAX_CHUNKS)`` contiguous *chunks*, a function of n
only (see :func:`chunk_layout`). Each chunk accumulates its own loss and
gradient buffer; the chunk results are then added in chunk order. The serial
kernel runs exactly the same computation one chunk after the other, so serial
and parallel results are bit-identical, for any number of threads.

Calling the parallel kernels
----------------------------
:func:`loss_and_grad_parallel` and :func:`gd_segment` are thin Python
functions around compiled ones. Before the compiled code runs they make sure
numba's threading layer is started: a cached function that calls a
``parallel=True`` function does not do so itself when it is loaded from the
cache, and then crashes (numba issue #8578). For the same reason, do not
call ``_lg_parallel`` from other jitted code.

Status codes of :func:`gd_segment`
----------------------------------
``STATUS_OK = 0``         all requested steps were taken;
``STATUS_STOP_LOSS = 1``  the loss fell below ``stop_loss``;
``STATUS_NONFINITE = 2``  the loss or the gradient was not finite.
"""

import math

import numba
import numpy as np
from numba import prange

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
    "loss_and_grad",
    "loss_and_grad_parallel",
    "forward",
    "alignments",
    "gd_segment",
]

BLOCK = 128
"""Samples per cache block. At the default size (K = 2, m = 8, D = 128,
float64) a block's pre-activations take 16 KiB (L1 cache) and its rows of X
and of the transpose 256 KiB each (L2 cache). Longer blocks also mean longer
vectorised loops in the forward pass."""

MAX_CHUNKS = 32
"""Upper bound on the number of chunks, i.e. on the number of gradient
buffers (memory ``MAX_CHUNKS * W.nbytes``) and on the threads one gradient
evaluation can use."""

STATUS_OK = 0
STATUS_STOP_LOSS = 1
STATUS_NONFINITE = 2

KIND_SYMMETRIC = 0
KIND_BANKS_SRELU = 1
KIND_BANKS_RELU = 2


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


@jit()
def _softplus(u):
    """``log(1 + exp(u))``, without overflow for large u or loss for small."""
    return max(u, 0.0) + math.log1p(math.exp(-abs(u)))


@jit()
def _sigmoid(u):
    """``1 / (1 + exp(-u))`` without overflow."""
    if u >= 0.0:
        return 1.0 / (1.0 + math.exp(-u))
    e = math.exp(u)
    return e / (1.0 + e)


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


@jit()
def _check_args(X, dims, W, kind, q, rho):
    """Raise ValueError on inconsistent shapes or parameters.

    The kernels do not check bounds when indexing, so a wrong shape would
    otherwise read or write outside the arrays.
    """
    K, n, D = X.shape
    if dims.shape[0] != K or W.shape[0] != K or W.shape[3] != D:
        raise ValueError("inconsistent shapes: need X (K, n, D), dims (K,), W (K, B, m, D)")
    for r in range(K):
        if dims[r] < 0 or dims[r] > D:
            raise ValueError("dims[r] must lie in [0, D]")
    B = W.shape[1]
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
def _check_samples(X, y, omega, W, grad):
    """Raise ValueError unless y, omega are (n,) and grad has W's shape."""
    n = X.shape[1]
    if y.shape[0] != n or omega.shape[0] != n:
        raise ValueError("y and omega must have shape (n,)")
    if grad.shape != W.shape:
        raise ValueError("the gradient buffer must have the shape of W")


@jit()
def _transpose(X):
    """(K, n, D) -> (K, D, n), C-contiguous (padding included, never read)."""
    K, n, D = X.shape
    Xt = np.empty((K, D, n), X.dtype)
    for r in range(K):
        for j in range(n):
            for k in range(D):
                Xt[r, k, j] = X[r, j, k]
    return Xt


@jit()
def _scratch(X, W, nbuf):
    """Per-chunk scratch: gradient buffers, pre-activations and f of a block."""
    K, B, m, D = W.shape
    Gc = np.zeros((nbuf, K, B, m, D), W.dtype)
    Zc = np.empty((nbuf, K, B * m, BLOCK), X.dtype)
    Fc = np.empty((nbuf, BLOCK), np.float64)
    return Gc, Zc, Fc


# --------------------------------------------------------------------------
# Block kernels
# --------------------------------------------------------------------------


@jit()
def _block_preact(Xt, dims, W, j0, j1, Z):
    """Pre-activations of samples ``j0:j1`` into ``Z[r, b*m + i, :j1-j0]``.

    Four neurons share each load of four rows of ``Xt``; the loop over
    samples is the vectorised one.
    """
    K, B, m, _ = W.shape
    BM = B * m
    nb = j1 - j0
    for r in range(K):
        d = dims[r]
        for bi in range(BM):
            z = Z[r, bi]
            for j in range(nb):
                z[j] = 0.0
        k = 0
        while k + 4 <= d:
            x0 = Xt[r, k, j0:j1]
            x1 = Xt[r, k + 1, j0:j1]
            x2 = Xt[r, k + 2, j0:j1]
            x3 = Xt[r, k + 3, j0:j1]
            bi = 0
            while bi + 4 <= BM:
                wa = W[r, bi // m, bi % m, k:k + 4]
                wb = W[r, (bi + 1) // m, (bi + 1) % m, k:k + 4]
                wc = W[r, (bi + 2) // m, (bi + 2) % m, k:k + 4]
                wd = W[r, (bi + 3) // m, (bi + 3) % m, k:k + 4]
                a0, a1, a2, a3 = wa[0], wa[1], wa[2], wa[3]
                b0, b1, b2, b3 = wb[0], wb[1], wb[2], wb[3]
                c0, c1, c2, c3 = wc[0], wc[1], wc[2], wc[3]
                e0, e1, e2, e3 = wd[0], wd[1], wd[2], wd[3]
                za = Z[r, bi]
                zb = Z[r, bi + 1]
                zc = Z[r, bi + 2]
                zd = Z[r, bi + 3]
                for j in range(nb):
                    u0 = x0[j]
                    u1 = x1[j]
                    u2 = x2[j]
                    u3 = x3[j]
                    za[j] += (a0 * u0 + a1 * u1) + (a2 * u2 + a3 * u3)
                    zb[j] += (b0 * u0 + b1 * u1) + (b2 * u2 + b3 * u3)
                    zc[j] += (c0 * u0 + c1 * u1) + (c2 * u2 + c3 * u3)
                    zd[j] += (e0 * u0 + e1 * u1) + (e2 * u2 + e3 * u3)
                bi += 4
            while bi < BM:
                wa = W[r, bi // m, bi % m, k:k + 4]
                a0, a1, a2, a3 = wa[0], wa[1], wa[2], wa[3]
                za = Z[r, bi]
                for j in range(nb):
                    za[j] += (a0 * x0[j] + a1 * x1[j]) + (a2 * x2[j] + a3 * x3[j])
                bi += 1
            k += 4
        while k < d:
            x0 = Xt[r, k, j0:j1]
            for bi in range(BM):
                a0 = W[r, bi // m, bi % m, k]
                za = Z[r, bi]
                for j in range(nb):
                    za[j] += a0 * x0[j]
            k += 1


@jit()
def _block_loss_coef(y, omega, kind, qcode, q, rho, B, m, j0, j1, Z, F):
    """Loss of samples ``j0:j1``; overwrite ``Z`` with gradient coefficients.

    On return ``Z[r, b*m + i, j] = omega_j l'_j c_b act'(z)``, the factor of
    ``X[r, j0 + j]`` in the gradient of neuron (r, b, i). ``F`` (float64,
    >= BLOCK) is scratch for f and then for ``omega_j l'_j``. Returns the
    block's loss, accumulated in float64.
    """
    K = Z.shape[0]
    BM = B * m
    nb = j1 - j0
    for j in range(nb):
        F[j] = 0.0
    for r in range(K):
        for bi in range(BM):
            _unit_rows(Z[r, bi], F, 1.0 if bi < m else -1.0, kind, qcode, q, rho, nb)
    loss = 0.0
    for jj in range(nb):
        j = j0 + jj
        yj = np.float64(y[j])
        u = -yj * F[jj]
        wj = np.float64(omega[j])
        loss += wj * _softplus(u)
        F[jj] = wj * (-yj * _sigmoid(u))
    for r in range(K):
        for bi in range(BM):
            s = 1.0 if bi < m else -1.0
            z = Z[r, bi]
            for jj in range(nb):
                z[jj] = (s * F[jj]) * z[jj]
    return loss


@jit()
def _block_grad_acc(X, dims, j0, j1, Z, G):
    """Add ``sum_j Z[r, b*m+i, j] X[r, j0 + j]`` to ``G[r, b, i]``.

    Four neurons share each load of four rows of ``X``; the loop over the
    input coordinate is the vectorised one. Samples are added in increasing
    order, four at a time.
    """
    K, B, m, _ = G.shape
    BM = B * m
    nb = j1 - j0
    for r in range(K):
        d = dims[r]
        jj = 0
        while jj + 4 <= nb:
            x0 = X[r, j0 + jj, :d]
            x1 = X[r, j0 + jj + 1, :d]
            x2 = X[r, j0 + jj + 2, :d]
            x3 = X[r, j0 + jj + 3, :d]
            bi = 0
            while bi + 4 <= BM:
                ca = Z[r, bi, jj:jj + 4]
                cb = Z[r, bi + 1, jj:jj + 4]
                cc = Z[r, bi + 2, jj:jj + 4]
                cd = Z[r, bi + 3, jj:jj + 4]
                a0, a1, a2, a3 = ca[0], ca[1], ca[2], ca[3]
                b0, b1, b2, b3 = cb[0], cb[1], cb[2], cb[3]
                c0, c1, c2, c3 = cc[0], cc[1], cc[2], cc[3]
                e0, e1, e2, e3 = cd[0], cd[1], cd[2], cd[3]
                ga = G[r, bi // m, bi % m, :d]
                gb = G[r, (bi + 1) // m, (bi + 1) % m, :d]
                gc = G[r, (bi + 2) // m, (bi + 2) % m, :d]
                gd = G[r, (bi + 3) // m, (bi + 3) % m, :d]
                for k in range(d):
                    u0 = x0[k]
                    u1 = x1[k]
                    u2 = x2[k]
                    u3 = x3[k]
                    ga[k] += (a0 * u0 + a1 * u1) + (a2 * u2 + a3 * u3)
                    gb[k] += (b0 * u0 + b1 * u1) + (b2 * u2 + b3 * u3)
                    gc[k] += (c0 * u0 + c1 * u1) + (c2 * u2 + c3 * u3)
                    gd[k] += (e0 * u0 + e1 * u1) + (e2 * u2 + e3 * u3)
                bi += 4
            while bi < BM:
                ca = Z[r, bi, jj:jj + 4]
                a0, a1, a2, a3 = ca[0], ca[1], ca[2], ca[3]
                ga = G[r, bi // m, bi % m, :d]
                for k in range(d):
                    ga[k] += (a0 * x0[k] + a1 * x1[k]) + (a2 * x2[k] + a3 * x3[k])
                bi += 1
            jj += 4
        while jj < nb:
            x0 = X[r, j0 + jj, :d]
            for bi in range(BM):
                a0 = Z[r, bi, jj]
                ga = G[r, bi // m, bi % m, :d]
                for k in range(d):
                    ga[k] += a0 * x0[k]
            jj += 1


# --------------------------------------------------------------------------
# One loss-and-gradient evaluation
# --------------------------------------------------------------------------


@jit()
def _chunk_loss_grad(X, Xt, dims, y, omega, W, kind, qcode, q, rho, c, nblocks, nchunks, Z, F,
                     G):
    """Loss of chunk ``c``; its gradient overwrites ``G`` (``Z``, ``F`` are scratch)."""
    n = X.shape[1]
    B = W.shape[1]
    m = W.shape[2]
    G[...] = 0.0
    loss = 0.0
    for blk in range(c * nblocks // nchunks, (c + 1) * nblocks // nchunks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        _block_preact(Xt, dims, W, j0, j1, Z)
        loss += _block_loss_coef(y, omega, kind, qcode, q, rho, B, m, j0, j1, Z, F)
        _block_grad_acc(X, dims, j0, j1, Z, G)
    return loss


@jit()
def _lg_serial(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_out, Gc, Zc, Fc):
    """Chunks one after the other; uses only the first scratch entries.

    Adds the chunk results in the same order as :func:`_lg_parallel`, so the
    two are bit-identical.
    """
    n = X.shape[1]
    K, B, m, _ = W.shape
    nblocks, nchunks = chunk_layout(n)
    grad_out[...] = 0.0
    loss = 0.0
    for c in range(nchunks):
        loss += _chunk_loss_grad(X, Xt, dims, y, omega, W, kind, qcode, q, rho, c, nblocks,
                                 nchunks, Zc[0], Fc[0], Gc[0])
        for r in range(K):
            d = dims[r]
            for b in range(B):
                for i in range(m):
                    t = grad_out[r, b, i]
                    s = Gc[0, r, b, i]
                    for k in range(d):
                        t[k] += s[k]
    return loss


@jit_parallel()
def _lg_parallel(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_out, Gc, Zc, Fc):
    """Chunks on the thread pool; the scratch arrays need one entry per chunk."""
    n = X.shape[1]
    K, B, m, _ = W.shape
    nblocks, nchunks = chunk_layout(n)
    closs = np.empty(nchunks, np.float64)
    for c in prange(nchunks):
        closs[c] = _chunk_loss_grad(X, Xt, dims, y, omega, W, kind, qcode, q, rho, c, nblocks,
                                    nchunks, Zc[c], Fc[c], Gc[c])
    # Rows of the gradient are independent: reduce them in parallel, each
    # one adding the chunks in chunk order.
    for row in prange(K * B * m):
        r = row // (B * m)
        b = (row // m) % B
        i = row % m
        d = dims[r]
        t = grad_out[r, b, i]
        t[:] = 0.0
        for c in range(nchunks):
            s = Gc[c, r, b, i]
            for k in range(d):
                t[k] += s[k]
    loss = 0.0
    for c in range(nchunks):
        loss += closs[c]
    return loss


# --------------------------------------------------------------------------
# Gradient-descent helpers
# --------------------------------------------------------------------------


@jit()
def _check_learned(W, dims, signal, beta, threshold, learned, t):
    """Set ``learned[r, b] = t`` for banks not yet learned whose leading
    alignment satisfies ``beta_r * max_i c_b <w_{r,b,i}, v_r> >= threshold``."""
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
                s = 0.0
                for k in range(d):
                    s += np.float64(w[k]) * np.float64(v[k])
                if b == 1:
                    s = -s
                if s > best:
                    best = s
            if beta[r] * best >= threshold:
                learned[r, b] = t


@jit()
def _all_finite(dims, A):
    """True if ``A[r, b, i, :d_r]`` is finite everywhere."""
    K, B, m, _ = A.shape
    for r in range(K):
        for b in range(B):
            for i in range(m):
                for k in range(dims[r]):
                    if not math.isfinite(A[r, b, i, k]):
                        return False
    return True


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


# --------------------------------------------------------------------------
# Public kernels
# --------------------------------------------------------------------------


@jit()
def loss_and_grad(X, dims, y, omega, W, kind, q, rho, grad_out):
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
    W : ndarray, (K, B, m, D)
        Weights, B = 1 for kind 0 and B = 2 for kinds 1 and 2.
    kind : int
        0 symmetric, 1 class banks with srelu, 2 class banks with ReLU.
    q : float
        srelu power, q >= 2 (fast paths for q = 2, 3, 4, 5).
    rho : float
        srelu threshold, rho > 0.
    grad_out : ndarray, (K, B, m, D)
        Filled with dL/dW (zero in the padded columns).

    Returns
    -------
    float
        ``L = sum_j omega_j softplus(-y_j f_j)``, accumulated in float64.

    Raises
    ------
    ValueError
        On inconsistent shapes or an invalid ``kind``, ``q`` or ``rho``.
    """
    _check_args(X, dims, W, kind, q, rho)
    _check_samples(X, y, omega, W, grad_out)
    Xt = _transpose(X)
    Gc, Zc, Fc = _scratch(X, W, 1)
    return _lg_serial(X, Xt, dims, y, omega, W, kind, _q_code(q), q, rho, grad_out, Gc, Zc, Fc)


def loss_and_grad_parallel(X, dims, y, omega, W, kind, q, rho, grad_out):
    """Loss and gradient at ``W``, chunks of samples on numba's thread pool.

    Same parameters, result and errors as :func:`loss_and_grad`, and
    bit-identical to it for any number of threads (see the module notes).
    """
    numba.get_num_threads()  # starts the threading layer, see the module notes
    return _loss_and_grad_parallel(X, dims, y, omega, W, int(kind), float(q), float(rho), grad_out)


@jit()
def _loss_and_grad_parallel(X, dims, y, omega, W, kind, q, rho, grad_out):
    _check_args(X, dims, W, kind, q, rho)
    _check_samples(X, y, omega, W, grad_out)
    Xt = _transpose(X)
    _, nchunks = chunk_layout(X.shape[1])
    Gc, Zc, Fc = _scratch(X, W, nchunks)
    return _lg_parallel(X, Xt, dims, y, omega, W, kind, _q_code(q), q, rho, grad_out, Gc, Zc,
                        Fc)


@jit()
def forward(X, dims, W, kind, q, rho, f_out, phi_out):
    """Network output and the output of each modality's encoder.

    Parameters
    ----------
    X, dims, W, kind, q, rho
        As in :func:`loss_and_grad`.
    f_out : ndarray, (n,)
        Filled with ``f_j = sum_r phi_r(X_{r,j})`` (summed in float64).
    phi_out : ndarray, (n, K)
        Filled with ``phi_r(X_{r,j})``.
    """
    _check_args(X, dims, W, kind, q, rho)
    K, n, _ = X.shape
    B = W.shape[1]
    m = W.shape[2]
    if f_out.shape[0] != n or phi_out.shape[0] != n or phi_out.shape[1] != K:
        raise ValueError("f_out must be (n,) and phi_out (n, K)")
    qcode = _q_code(q)
    Xt = _transpose(X)
    Z = np.empty((K, B * m, BLOCK), X.dtype)
    P = np.empty((K, BLOCK), np.float64)
    nblocks, _ = chunk_layout(n)
    for blk in range(nblocks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        nb = j1 - j0
        _block_preact(Xt, dims, W, j0, j1, Z)
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
               t_start, n_steps, stop_loss, parallel_flag, grad_buf):
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
    grad_buf : ndarray, (K, B, m, D)
        Work buffer; holds the gradient at the last evaluated step.

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
    # Fixed scalar types: one compiled version per array dtype, whatever
    # Python or NumPy scalars the caller passes.
    return _gd_segment(X, dims, y, omega, W, int(kind), float(q), float(rho), float(eta), signal,
                       beta, float(threshold), learned, int(t_start), int(n_steps),
                       float(stop_loss), bool(parallel_flag), grad_buf)


@jit()
def _gd_segment(X, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold, learned,
                t_start, n_steps, stop_loss, parallel_flag, grad_buf):
    """Compiled body of :func:`gd_segment`."""
    _check_args(X, dims, W, kind, q, rho)
    _check_samples(X, y, omega, W, grad_buf)
    K, B, m, D = W.shape
    if learned.shape[0] != K or learned.shape[1] != B:
        raise ValueError("learned must have shape (K, B)")
    if signal.shape[0] != K or signal.shape[1] != D or beta.shape[0] != K:
        raise ValueError("signal must be (K, D) and beta (K,)")
    qcode = _q_code(q)
    Xt = _transpose(X)
    if parallel_flag:
        _, nbuf = chunk_layout(X.shape[1])
    else:
        nbuf = 1
    Gc, Zc, Fc = _scratch(X, W, nbuf)
    grad_buf[...] = 0.0
    loss = np.nan
    t_end = t_start + n_steps
    for t in range(t_start, t_end):
        if parallel_flag:
            loss = _lg_parallel(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_buf, Gc, Zc,
                                Fc)
        else:
            loss = _lg_serial(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_buf, Gc, Zc,
                              Fc)
        _check_learned(W, dims, signal, beta, threshold, learned, t)
        if not (math.isfinite(loss) and _all_finite(dims, grad_buf)):
            return STATUS_NONFINITE, t, loss
        if stop_loss > 0.0 and loss < stop_loss:
            return STATUS_STOP_LOSS, t, loss
        _gd_update(W, dims, eta, grad_buf)
    _check_learned(W, dims, signal, beta, threshold, learned, t_end)
    return STATUS_OK, t_end, loss
