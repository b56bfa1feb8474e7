"""A slow plain-NumPy reference of the fusion engine's networks, sharing no code with
simcomp/kernels/fusion_net.py or simcomp/models/: it reads the flat weights in the
documented order (each modality's encoder layers, then the fusion layer, then the
shared layers; every matrix row-major) and back-propagates with whole-batch matrices."""

import numpy as np


def act(z, kind, q=3.0, rho=1.0):
    if kind == "linear":
        return z, np.ones_like(z)
    if kind == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(float)
    t = np.clip(z / rho, 0.0, 1.0) ** (q - 1.0)
    value = np.where(z <= 0, 0.0, np.where(z > rho, z - (1 - 1 / q) * rho, z * t / q))
    return value, np.where(z <= 0, 0.0, np.where(z > rho, 1.0, t))


def unpack(theta, dims, m, L, Lf):
    """The matrices: enc[r] (list), fuse, shared (list)."""
    pos = 0

    def take(rows, cols):
        nonlocal pos
        M = theta[pos:pos + rows * cols].reshape(rows, cols)
        pos += rows * cols
        return M

    enc = [[take(m, d if e == 0 else m) for e in range(Lf - 1)] for d in dims]
    fuse = take(1 if Lf == L else m, sum(dims) if Lf == 1 else m * len(dims))
    shared = [take(1 if l == L else m, m) for l in range(Lf + 1, L + 1)]
    assert pos == theta.size
    return enc, fuse, shared


def loss_grad(theta, X, y, dims, m, L, Lf, kind, loss, q=3.0, rho=1.0):
    """Mean loss and its gradient (same layout as theta)."""
    enc, fuse, shared = unpack(theta, dims, m, L, Lf)
    n = X.shape[0]
    cols = np.concatenate([[0], np.cumsum(dims)])
    enc_cache, codes = [], []
    for r, layers in enumerate(enc):
        h = X[:, cols[r]:cols[r + 1]]
        cache = []
        for W in layers:
            z = h @ W.T
            a, da = act(z, kind, q, rho)
            cache.append((h, da))
            h = a
        enc_cache.append(cache)
        codes.append(h)
    h = X if Lf == 1 else np.concatenate(codes, axis=1)
    chain = [(fuse, h)]
    z = h @ fuse.T
    derivs = []
    for W in shared:
        a, da = act(z, kind, q, rho)
        derivs.append(da)
        chain.append((W, a))
        z = a @ W.T
    f = z[:, 0]
    if loss == "mse":
        value, slope = 0.5 * (f - y) ** 2, f - y
    else:
        value, slope = np.logaddexp(0.0, -y * f), -y / (1.0 + np.exp(y * f))
    delta = (slope / n)[:, None]
    grads_tail = []
    for i in range(len(chain) - 1, -1, -1):
        W, inp = chain[i]
        grads_tail.append(delta.T @ inp)
        back = delta @ W
        if i > 0:
            delta = back * derivs[i - 1]
    grads_tail.reverse()
    enc_grads = []
    for r, layers in enumerate(enc):
        if Lf == 1:
            enc_grads.append([])
            continue
        d = back[:, r * m:(r + 1) * m]
        gs = []
        for e in range(len(layers) - 1, -1, -1):
            inp, da = enc_cache[r][e]
            d = d * da
            gs.append(d.T @ inp)
            d = d @ layers[e]
        gs.reverse()
        enc_grads.append(gs)
    flat = [g.ravel() for gs in enc_grads for g in gs] + [g.ravel() for g in grads_tail]
    return float(value.mean()), np.concatenate(flat)


def cosine_loss_grad(theta, X, y, w, dims, m, scale, kind, q=3.0, rho=1.0):
    """Method mmcosine on two-layer late fusion, written from docs/methods.md with whole-batch
    matrices: f = sum_r 2 s <h_r, u_r> / (max(|h_r|, 1e-12) max(|u_r|, 1e-12)), the weighted
    logistic loss sum_i w_i log(1 + exp(-y_i f_i)), and its gradient (theta's layout).
    Samples with |h_r| < 1e-12 give modality r no gradient.  Returns (loss, grad, f)."""
    enc, fuse, _ = unpack(theta, dims, m, 2, 2)
    u = fuse[0].reshape(len(dims), m)
    cols = np.concatenate([[0], np.cumsum(dims)])
    Nu = np.maximum(np.linalg.norm(u, axis=1), 1e-12)
    hs, ds, nhs, coss = [], [], [], []
    f = np.zeros(X.shape[0])
    for r in range(len(dims)):
        h, dh = act(X[:, cols[r]:cols[r + 1]] @ enc[r][0].T, kind, q, rho)
        nh = np.linalg.norm(h, axis=1)
        cos = (h @ u[r]) / (np.maximum(nh, 1e-12) * Nu[r])
        f += 2.0 * scale * cos
        hs.append(h), ds.append(dh), nhs.append(nh), coss.append(cos)
    value = float(np.sum(w * np.logaddexp(0.0, -y * f)))
    e = w * (-y / (1.0 + np.exp(y * f)))  # w_i dl/df_i
    g_enc, g_head = [], []
    for r in range(len(dims)):
        h, nh, cos = hs[r], nhs[r], coss[r]
        on = nh >= 1e-12
        Nh = np.maximum(nh, 1e-12)[:, None]
        hhat, uhat = h / Nh, u[r] / Nu[r]
        ee = np.where(on, e, 0.0)[:, None]
        g_head.append(np.sum(ee * (2 * scale / Nu[r]) * (hhat - cos[:, None] * uhat), axis=0))
        dh = ee * (2 * scale / Nh) * (uhat - cos[:, None] * hhat) * ds[r]
        g_enc.append((dh.T @ X[:, cols[r]:cols[r + 1]]).ravel())
    return value, np.concatenate(g_enc + g_head), f
