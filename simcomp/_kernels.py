"""Compiled forward/backward passes and the gradient-descent loop.

Private module: every kernel takes only NumPy arrays and scalars, so that the
training module decides what to run and these functions only do arithmetic.
The model is defined in the project specification (sections 2-4); the
notation below follows it.

Data layout
-----------
``X``      (K, n, D) float32/float64, modality r in ``X[r, :, :dims[r]]``,
           zero padded beyond ``dims[r]``.
``dims``   (K,) int64.
``y``      (n,) same dtype as X, values +-1.
``omega``  (n,) same dtype as X, sample weights.
``W``      (K, B, m, D) same dtype as X. ``B = 1`` (symmetric) or ``B = 2``
           (class banks; bank 0 is c = +1, bank 1 is c = -1). Columns beyond
           ``dims[r]`` are never read and never written.
``kind``   0 symmetric (psi = srelu(z) - srelu(-z)), 1 class banks with srelu,
           2 class banks with plain ReLU (``q`` and ``rho`` are ignored).

How a step is computed
----------------------
Samples are processed in *blocks* of ``BLOCK`` consecutive samples. For one
block, the pre-activations of all K modalities are computed, then f, the
loss and l' per sample, then the block's gradient contribution, so the block
is read while it is still in cache. Compilers may not reorder floating point
sums without ``fastmath`` (which we never use), so a dot product written as a
loop would not be vectorised; every inner loop is therefore written as an
element-wise update along a contiguous axis:

* forward: ``z[i, j] += sum_k W[i, k] * Xt[k, j]`` with ``Xt`` the
  (K, D, n) transpose of ``X`` (made once per call or per segment, since X is
  constant during training), vectorised over samples j;
* backward: ``G[i, k] += sum_j c[i, j] * X[j, k]``, vectorised over the input
  coordinate k.

Both loops are unrolled by four along the summed axis to amortise the load and
store of the accumulator; the resulting summation order is fixed by the code.

Determinism
-----------
Blocks are grouped into ``nchunks = min(ceil(n / BLOCK), MAX_CHUNKS)``
contiguous *chunks* (a function of n only). Each chunk accumulates its own
gradient buffer and loss; the chunk results are then added in chunk order.
The serial and the parallel kernels run exactly this computation (the
parallel one runs chunks on different threads), so they are bit-identical to
each other for any number of threads.

Status codes of :func:`gd_segment`
----------------------------------
``STATUS_OK = 0``        all requested steps were taken;
``STATUS_STOP_LOSS = 1`` the loss fell below ``stop_loss``;
``STATUS_NONFINITE = 2`` the loss was not finite (nan or inf).
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
    "gd_segment",
    "alignments",
]

BLOCK = 128
"""Samples per cache block: a block of pre-activations (K * B * m * BLOCK)
and four rows of X stay in the L1 cache for typical sizes."""

MAX_CHUNKS = 32
"""Upper bound on the number of chunks, i.e. on the number of gradient
buffers (and so on the parallelism of one gradient evaluation)."""

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
    """Integer power code for the fast paths (0 means use ``pow``)."""
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
    """Return ``t ** (q - 1)`` for ``t`` in (0, 1]."""
    # Multiplication is much cheaper than pow and q is an integer in nearly
    # every experiment.
    if qcode == 3:
        return t * t
    if qcode == 2:
        return t
    if qcode == 4:
        return t * t * t
    if qcode == 5:
        t2 = t * t
        return t2 * t2
    return t**(q - 1.0)


@jit()
def _srelu_val_der(z, qcode, q, rho):
    """Smoothed ReLU and its derivative at ``z`` (float64).

    The comparisons are written so that a nan input falls into the linear
    piece and stays nan, which the non-finite guard then sees.
    """
    if z <= 0.0:
        return 0.0, 0.0
    if z <= rho:
        t = z / rho
        p = _pow_qm1(t, qcode, q)
        return rho * t * p / q, p
    return z - (1.0 - 1.0 / q) * rho, 1.0


@jit()
def _unit_val_der(z, kind, qcode, q, rho):
    """Value and derivative of the unit nonlinearity of learner ``kind``.

    Symmetric: psi(z) = srelu(z) - srelu(-z), psi'(z) = srelu'(|z|).
    Class banks: act = srelu (kind 1) or ReLU (kind 2); the bank sign is
    applied by the caller.
    """
    if kind == 0:
        v, g = _srelu_val_der(abs(z), qcode, q, rho)
        if z < 0.0:
            v = -v
        return v, g
    if kind == 1:
        return _srelu_val_der(z, qcode, q, rho)
    # ReLU; "z <= 0" keeps a nan pre-activation nan.
    if z <= 0.0:
        return 0.0, 0.0
    return z, 1.0


@jit()
def _softplus(u):
    """``log(1 + exp(u))`` without overflow or loss of precision."""
    return max(u, 0.0) + math.log1p(math.exp(-abs(u)))


@jit()
def _sigmoid(u):
    """``1 / (1 + exp(-u))`` without overflow."""
    if u >= 0.0:
        return 1.0 / (1.0 + math.exp(-u))
    e = math.exp(u)
    return e / (1.0 + e)


# --------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------


@jit()
def chunk_layout(n):
    """Number of blocks and chunks for ``n`` samples.

    Parameters
    ----------
    n : int
        Number of samples.

    Returns
    -------
    nblocks : int
        ``ceil(n / BLOCK)``.
    nchunks : int
        ``min(nblocks, MAX_CHUNKS)``; chunk ``c`` holds blocks
        ``c * nblocks // nchunks`` to ``(c + 1) * nblocks // nchunks``.
    """
    nblocks = (n + BLOCK - 1) // BLOCK
    nchunks = min(nblocks, MAX_CHUNKS)
    if nchunks < 1:
        nchunks = 1
    return nblocks, nchunks


@jit()
def _check_shapes(X, dims, W):
    K, n, D = X.shape
    if dims.shape[0] != K or W.shape[0] != K or W.shape[3] != D:
        raise ValueError("inconsistent shapes: X (K, n, D), dims (K,), W (K, B, m, D)")
    for r in range(K):
        if dims[r] < 0 or dims[r] > D:
            raise ValueError("dims[r] must lie in [0, D]")


@jit()
def _check_kind(kind, B, q, rho):
    if kind == 0:
        if B != 1:
            raise ValueError("kind 0 (symmetric) needs B == 1")
    elif kind == 1 or kind == 2:
        if B != 2:
            raise ValueError("class-bank kinds need B == 2")
    else:
        raise ValueError("kind must be 0, 1 or 2")
    if kind != 2 and not (q >= 2.0 and rho > 0.0):
        raise ValueError("srelu needs q >= 2 and rho > 0")


@jit()
def _transpose(X):
    """(K, n, D) -> (K, D, n), C-contiguous."""
    K, n, D = X.shape
    Xt = np.empty((K, D, n), X.dtype)
    for r in range(K):
        for j in range(n):
            for k in range(D):
                Xt[r, k, j] = X[r, j, k]
    return Xt


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
def _block_loss_coef(y, omega, kind, qcode, q, rho, B, m, j0, j1, Z):
    """Loss of samples ``j0:j1``; overwrite ``Z`` with gradient coefficients.

    On return ``Z[r, b*m + i, j] = omega_j l'_j c_b act'(z)``, the factor
    multiplying ``X[r, j]`` in the gradient of neuron (r, b, i).
    Returns the block's loss, accumulated in float64.
    """
    K = Z.shape[0]
    BM = B * m
    loss = 0.0
    for jj in range(j1 - j0):
        j = j0 + jj
        f = 0.0
        # The unit is evaluated once: its derivative replaces z right away.
        for r in range(K):
            for bi in range(BM):
                v, g = _unit_val_der(np.float64(Z[r, bi, jj]), kind, qcode, q, rho)
                if bi < m:
                    f += v
                else:
                    f -= v
                Z[r, bi, jj] = g
        yj = np.float64(y[j])
        u = -yj * f
        wj = np.float64(omega[j])
        loss += wj * _softplus(u)
        s = wj * (-yj * _sigmoid(u))
        for r in range(K):
            for bi in range(BM):
                sb = s if bi < m else -s
                Z[r, bi, jj] = sb * Z[r, bi, jj]
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


@jit()
def _chunk_loss_grad(X, Xt, dims, y, omega, W, kind, qcode, q, rho, c, nblocks, nchunks, Z, G):
    """Loss and gradient of chunk ``c`` (overwrites ``G``; ``Z`` is scratch)."""
    n = X.shape[1]
    B = W.shape[1]
    m = W.shape[2]
    G[...] = 0.0
    loss = 0.0
    for blk in range(c * nblocks // nchunks, (c + 1) * nblocks // nchunks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        _block_preact(Xt, dims, W, j0, j1, Z)
        loss += _block_loss_coef(y, omega, kind, qcode, q, rho, B, m, j0, j1, Z)
        _block_grad_acc(X, dims, j0, j1, Z, G)
    return loss


@jit()
def _add_rows(dims, src, dst):
    """``dst[r, b, i, :d_r] += src[r, b, i, :d_r]`` (the fixed-order reduction)."""
    K, B, m, _ = dst.shape
    for r in range(K):
        d = dims[r]
        for b in range(B):
            for i in range(m):
                s = src[r, b, i, :d]
                t = dst[r, b, i, :d]
                for k in range(d):
                    t[k] += s[k]


# --------------------------------------------------------------------------
# One gradient evaluation: serial and parallel drivers
# --------------------------------------------------------------------------


@jit()
def _lg_serial(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_out, Gc, Zc):
    """Serial driver. ``Gc`` (>=1, K, B, m, D) and ``Zc`` (>=1, K, B*m, BLOCK)
    are scratch; only their first entry is used."""
    n = X.shape[1]
    nblocks, nchunks = chunk_layout(n)
    grad_out[...] = 0.0
    loss = 0.0
    for c in range(nchunks):
        lc = _chunk_loss_grad(X, Xt, dims, y, omega, W, kind, qcode, q, rho, c, nblocks,
                              nchunks, Zc[0], Gc[0])
        loss += lc
        _add_rows(dims, Gc[0], grad_out)
    return loss


@jit_parallel()
def _lg_parallel(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_out, Gc, Zc):
    """Parallel driver; ``Gc`` and ``Zc`` need one entry per chunk."""
    n = X.shape[1]
    nblocks, nchunks = chunk_layout(n)
    closs = np.empty(nchunks, np.float64)
    for c in prange(nchunks):
        closs[c] = _chunk_loss_grad(X, Xt, dims, y, omega, W, kind, qcode, q, rho, c, nblocks,
                                    nchunks, Zc[c], Gc[c])
    K, B, m, _ = W.shape
    # Rows are independent, so the reduction is parallel over rows while the
    # chunks are added in chunk order inside each row.
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


@jit()
def _scratch(X, W, nbuf):
    """Per-chunk scratch: gradient buffers and pre-activation blocks."""
    K, B, m, D = W.shape
    Gc = np.zeros((nbuf, K, B, m, D), W.dtype)
    Zc = np.empty((nbuf, K, B * m, BLOCK), X.dtype)
    return Gc, Zc


@jit()
def loss_and_grad(X, dims, y, omega, W, kind, q, rho, grad_out):
    """Loss and gradient at ``W`` (serial).

    Parameters
    ----------
    X : ndarray, (K, n, D)
        Inputs, zero padded beyond ``dims[r]``.
    dims : ndarray of int64, (K,)
        Dimension of each modality.
    y : ndarray, (n,)
        Labels in {-1, +1}.
    omega : ndarray, (n,)
        Sample weights.
    W : ndarray, (K, B, m, D)
        Weights.
    kind : int
        0 symmetric, 1 class banks with srelu, 2 class banks with ReLU.
    q, rho : float
        srelu power (>= 2) and threshold (> 0).
    grad_out : ndarray, (K, B, m, D)
        Filled with dL/dW; padded columns are set to zero.

    Returns
    -------
    float
        ``L = sum_j omega_j softplus(-y_j f_j)``, accumulated in float64.
    """
    _check_shapes(X, dims, W)
    _check_kind(kind, W.shape[1], q, rho)
    Xt = _transpose(X)
    Gc, Zc = _scratch(X, W, 1)
    return _lg_serial(X, Xt, dims, y, omega, W, kind, _q_code(q), q, rho, grad_out, Gc, Zc)


@jit()
def _loss_and_grad_parallel(X, dims, y, omega, W, kind, q, rho, grad_out):
    _check_shapes(X, dims, W)
    _check_kind(kind, W.shape[1], q, rho)
    Xt = _transpose(X)
    _, nchunks = chunk_layout(X.shape[1])
    Gc, Zc = _scratch(X, W, nchunks)
    return _lg_parallel(X, Xt, dims, y, omega, W, kind, _q_code(q), q, rho, grad_out, Gc, Zc)


@jit()
def forward(X, dims, W, kind, q, rho, f_out, phi_out):
    """Network output and per-modality outputs.

    Parameters
    ----------
    X, dims, W, kind, q, rho
        As in :func:`loss_and_grad`.
    f_out : ndarray, (n,)
        Filled with ``f_j = sum_r phi_r(X_{r,j})``.
    phi_out : ndarray, (n, K)
        Filled with ``phi_r(X_{r,j})``.
    """
    _check_shapes(X, dims, W)
    K, n, D = X.shape
    B = W.shape[1]
    m = W.shape[2]
    _check_kind(kind, B, q, rho)
    qcode = _q_code(q)
    Xt = _transpose(X)
    Z = np.empty((K, B * m, BLOCK), X.dtype)
    nblocks = (n + BLOCK - 1) // BLOCK
    for blk in range(nblocks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        _block_preact(Xt, dims, W, j0, j1, Z)
        for jj in range(j1 - j0):
            f = 0.0
            for r in range(K):
                phi = 0.0
                for b in range(B):
                    for i in range(m):
                        v, _ = _unit_val_der(np.float64(Z[r, b * m + i, jj]), kind, qcode, q, rho)
                        if b == 0:
                            phi += v
                        else:
                            phi -= v
                phi_out[j0 + jj, r] = phi
                f += phi
            f_out[j0 + jj] = f


@jit()
def alignments(W, signal):
    """Signed alignments ``a[r, b, i] = c_b <w_{r,b,i}, v_r>``.

    Parameters
    ----------
    W : ndarray, (K, B, m, D)
        Weights (padded columns are zero, so the full length is summed).
    signal : ndarray, (K, D)
        Unit signal vectors, zero padded.

    Returns
    -------
    ndarray of float64, (K, B, m)
        ``c_0 = +1``, ``c_1 = -1``.
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


@jit()
def _check_learned(W, dims, signal, beta, threshold, learned, t):
    """Mark banks whose leading alignment reached the threshold at step t."""
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
def _gd_update(W, dims, eta, grad):
    K, B, m, _ = W.shape
    for r in range(K):
        d = dims[r]
        for b in range(B):
            for i in range(m):
                w = W[r, b, i, :d]
                g = grad[r, b, i, :d]
                for k in range(d):
                    w[k] = w[k] - eta * g[k]


def gd_segment(X, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold, learned,
               t_start, n_steps, stop_loss, parallel_flag, grad_buf):
    """Run up to ``n_steps`` full-batch gradient-descent steps in place.

    For t = t_start, ..., t_start + n_steps - 1: evaluate the loss and
    gradient at W(t), record learned banks at W(t), stop if the loss is not
    finite (status 2) or below ``stop_loss`` (status 1, only if
    ``stop_loss > 0``), otherwise set W(t+1) = W(t) - eta * grad.
    After the last step the learned check is also made at W(t_end).

    Parameters
    ----------
    X, dims, y, omega, W, kind, q, rho
        As in :func:`loss_and_grad`; ``W`` is updated in place.
    eta : float
        Learning rate.
    signal : ndarray, (K, D)
        Unit signal vectors v_r, zero padded.
    beta : ndarray of float64, (K,)
        Signal strengths.
    threshold : float
        Bank (r, b) is learned at the first step t with
        ``beta[r] * max_i c_b <w_{r,b,i}, v_r> >= threshold``.
    learned : ndarray of int64, (K, B)
        In/out; -1 means not learned yet; entries >= 0 are never changed.
    t_start : int
        Global index of the step at the current W.
    n_steps : int
        Maximum number of updates.
    stop_loss : float
        Stop when the loss falls below it; ignored when <= 0.
    parallel_flag : bool
        Use the parallel gradient (bit-identical results, see module notes).
    grad_buf : ndarray, (K, B, m, D)
        Receives the gradient of the last evaluated step.

    Returns
    -------
    status : int
        0 (ran all steps), 1 (loss < stop_loss), 2 (non-finite loss).
    t_stop : int
        Step index of the current W on return: ``t_start + n_steps`` for
        status 0, otherwise the step whose loss triggered the stop (W is
        then W(t_stop), not updated).
    last_loss : float
        Loss at the last evaluated step (nan if ``n_steps == 0``).
    """
    numba.get_num_threads()  # see "Calling the parallel kernels" in the module notes
    return _gd_segment(X, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold, learned,
                       t_start, n_steps, stop_loss, bool(parallel_flag), grad_buf)


@jit()
def _gd_segment(X, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold, learned,
                t_start, n_steps, stop_loss, parallel_flag, grad_buf):
    _check_shapes(X, dims, W)
    K, B, m, D = W.shape
    _check_kind(kind, B, q, rho)
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
    Gc, Zc = _scratch(X, W, nbuf)
    grad_buf[...] = 0.0
    loss = np.nan
    t_end = t_start + n_steps
    for t in range(t_start, t_end):
        if parallel_flag:
            loss = _lg_parallel(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_buf, Gc, Zc)
        else:
            loss = _lg_serial(X, Xt, dims, y, omega, W, kind, qcode, q, rho, grad_buf, Gc, Zc)
        _check_learned(W, dims, signal, beta, threshold, learned, t)
        if not math.isfinite(loss):
            return STATUS_NONFINITE, t, loss
        if stop_loss > 0.0 and loss < stop_loss:
            return STATUS_STOP_LOSS, t, loss
        _gd_update(W, dims, eta, grad_buf)
    _check_learned(W, dims, signal, beta, threshold, learned, t_end)
    return STATUS_OK, t_end, loss


def loss_and_grad_parallel(X, dims, y, omega, W, kind, q, rho, grad_out):
    """Loss and gradient at ``W``, chunks of samples on several threads.

    Same parameters and result as :func:`loss_and_grad`, and bit-identical
    to it for any number of threads: both add the same per-chunk partial
    sums in chunk order.
    """
    numba.get_num_threads()  # see "Calling the parallel kernels" in the module notes
    return _loss_and_grad_parallel(X, dims, y, omega, W, kind, q, rho, grad_out)
