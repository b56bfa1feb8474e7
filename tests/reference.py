"""Slow, plain NumPy reference for the compiled kernels in ``simcomp.kernels``.

Written directly from the specification (sections 2-4) and deliberately
sharing no code with the kernels: everything is computed in float64 with
whole-array NumPy operations, the loss uses ``np.logaddexp`` and the
derivative of the loss uses ``exp(-logaddexp)``, so a mistake would have to
be made twice, in two different styles, to go unnoticed.

Array layout is the kernels' (see ``simcomp.kernels``): ``X`` (K, n, D),
``dims`` (K,), ``W`` (K, B, m, D), bank 0 has sign c = +1 and bank 1 has
c = -1; ``kind`` 0 is the symmetric learner, 1 class banks with srelu, 2 class
banks with plain ReLU.
"""

import numpy as np


def srelu(z, q, rho):
    """Smoothed ReLU: 0, z^q / (q rho^(q-1)), z - (1 - 1/q) rho."""
    z = np.asarray(z, dtype=np.float64)
    zp = np.clip(z, 0.0, rho)  # keeps the unused branch of np.where finite
    poly = zp**q / (q * rho ** (q - 1))
    return np.where(z <= 0, 0.0, np.where(z <= rho, poly, z - (1.0 - 1.0 / q) * rho))


def srelu_prime(z, q, rho):
    """Derivative of :func:`srelu`: 0, (z/rho)^(q-1), 1."""
    z = np.asarray(z, dtype=np.float64)
    zp = np.clip(z, 0.0, rho)
    return np.where(z <= 0, 0.0, np.where(z <= rho, (zp / rho) ** (q - 1), 1.0))


def act(z, kind, q, rho):
    """Unit nonlinearity (before the bank sign) for learner ``kind``."""
    if kind == 0:
        return np.sign(z) * srelu(np.abs(z), q, rho)  # psi, odd
    if kind == 1:
        return srelu(z, q, rho)
    return np.maximum(z, 0.0)


def act_prime(z, kind, q, rho):
    """Derivative of :func:`act`."""
    if kind == 0:
        return srelu_prime(np.abs(z), q, rho)
    if kind == 1:
        return srelu_prime(z, q, rho)
    return (z > 0).astype(np.float64)


def bank_signs(B):
    """c_b for b = 0..B-1."""
    return np.array([1.0, -1.0])[:B]


def preactivations(X, dims, W):
    """List over r of (B, m, n) arrays <w_{r,b,i}, X_{r,j}>."""
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    out = []
    for r in range(X.shape[0]):
        d = int(dims[r])
        out.append(np.einsum("bik,jk->bij", W[r, :, :, :d], X[r, :, :d]))
    return out


def forward(X, dims, W, kind, q, rho):
    """Return ``f`` (n,) and ``phi`` (n, K)."""
    Z = preactivations(X, dims, W)
    K, n = len(Z), np.shape(X)[1]
    c = bank_signs(np.shape(W)[1])
    phi = np.zeros((n, K))
    for r in range(K):
        phi[:, r] = np.einsum("b,bij->j", c, act(Z[r], kind, q, rho))
    return phi.sum(axis=1), phi


def loss(X, dims, y, omega, W, kind, q, rho):
    """Weighted logistic loss sum_j omega_j log(1 + exp(-y_j f_j))."""
    f, _ = forward(X, dims, W, kind, q, rho)
    y = np.asarray(y, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    return float(np.sum(omega * np.logaddexp(0.0, -y * f)))


def grad(X, dims, y, omega, W, kind, q, rho):
    """Gradient dL/dW, shape of W, float64, zero in padded columns."""
    X64 = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    f, _ = forward(X, dims, W, kind, q, rho)
    # l'_j = -y_j / (1 + exp(y_j f_j)), written without overflow.
    lprime = -y * np.exp(-np.logaddexp(0.0, y * f))
    Z = preactivations(X, dims, W)
    c = bank_signs(np.shape(W)[1])
    G = np.zeros(np.shape(W))
    for r in range(X64.shape[0]):
        d = int(dims[r])
        coef = c[:, None, None] * act_prime(Z[r], kind, q, rho) * (omega * lprime)
        G[r, :, :, :d] = np.einsum("bij,jk->bik", coef, X64[r, :, :d])
    return G


def alignments(W, signal):
    """c_b <w_{r,b,i}, v_r>, shape (K, B, m)."""
    W = np.asarray(W, dtype=np.float64)
    signal = np.asarray(signal, dtype=np.float64)
    c = bank_signs(W.shape[1])
    return c[None, :, None] * np.einsum("rbik,rk->rbi", W, signal)


def gd_segment(X, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold, learned,
               t_start, n_steps, stop_loss):
    """Reference gradient-descent segment, following the specification.

    Works on float64 copies. Returns ``(status, t_stop, last_loss, W, learned)``
    with status 0 (all steps), 1 (loss < stop_loss) or 2 (loss or gradient
    not finite).
    """
    W = np.array(W, dtype=np.float64)
    learned = np.array(learned, dtype=np.int64)
    beta = np.asarray(beta, dtype=np.float64)

    def mark(t):
        lead = alignments(W, signal).max(axis=2)  # (K, B)
        hit = (learned < 0) & (beta[:, None] * lead >= threshold)
        learned[hit] = t

    last = np.nan
    for t in range(t_start, t_start + n_steps):
        last = loss(X, dims, y, omega, W, kind, q, rho)
        G = grad(X, dims, y, omega, W, kind, q, rho)
        mark(t)
        if not (np.isfinite(last) and np.all(np.isfinite(G))):
            return 2, t, last, W, learned
        if stop_loss > 0 and last < stop_loss:
            return 1, t, last, W, learned
        W = W - eta * G
    mark(t_start + n_steps)
    return 0, t_start + n_steps, last, W, learned
