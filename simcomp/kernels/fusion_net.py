"""Compiled forward and backward passes of the fusion engine's layer chain.

One pass serves every architecture (docs/architectures.md): the network is a
table of bias-free dense layers, ``layout[l] = (offset, rows, cols, source,
index, activated)``, whose weights sit row-major in one flat vector
``theta[offset : offset + rows * cols]``.  ``source`` says what layer l
reads:

- ``SRC_MODALITY``: modality ``index``'s input, columns ``col0[index]`` ..
  ``col0[index] + cols - 1`` of a sample;
- ``SRC_LAYER``: the output of layer ``index`` (an earlier layer);
- ``SRC_CONCAT``: the outputs of the layers listed in ``concat``, end to end
  (each modality's last encoder layer);
- ``SRC_INPUT``: the whole input vector (early fusion).

Layers are listed so that every source comes before its reader; the last
layer has one row, the network's output.  ``activated`` is 1 where the
activation follows the layer.  Activations: 0 linear, 1 ReLU, 2 srelu(q, rho)
(docs/model.md section 2).  Everything here takes arrays and scalars only;
the architecture modules (simcomp/models/) build the tables.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._jit import jit, jit_parallel

__all__ = ["SRC_MODALITY", "SRC_LAYER", "SRC_CONCAT", "SRC_INPUT", "ACT_CODES", "LOSS_CODES"]

SRC_MODALITY, SRC_LAYER, SRC_CONCAT, SRC_INPUT = 0, 1, 2, 3
ACT_CODES = {"linear": 0, "relu": 1, "srelu": 2}
LOSS_CODES = {"logistic": 0, "mse": 1}


@jit()
def _act(z, code, q, rho):
    """The activation and its derivative at z."""
    if code == 0:
        return z, 1.0
    if code == 1:
        return (z, 1.0) if z > 0.0 else (0.0, 0.0)
    if z <= 0.0:
        return 0.0, 0.0
    if z > rho:
        return z - (1.0 - 1.0 / q) * rho, 1.0
    t = (z / rho) ** (q - 1.0)
    return z * t / q, t


@jit()
def _forward(theta, layout, concat, col0, x, act, q, rho, Z, A, D):
    """One input x through the chain: pre-activations Z, outputs A, derivatives D."""
    for l in range(layout.shape[0]):
        off, rows, cols, src, idx, on = (layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3],
                                         layout[l, 4], layout[l, 5])
        for i in range(rows):
            base = off + i * cols
            s = 0.0
            if src == 0:
                c0 = col0[idx]
                for j in range(cols):
                    s += theta[base + j] * x[c0 + j]
            elif src == 1:
                for j in range(cols):
                    s += theta[base + j] * A[idx, j]
            elif src == 2:
                j = 0
                for c in range(concat.shape[0]):
                    src_l = concat[c]
                    for u in range(layout[src_l, 1]):
                        s += theta[base + j] * A[src_l, u]
                        j += 1
            else:
                for j in range(cols):
                    s += theta[base + j] * x[j]
            Z[l, i] = s
            if on == 1:
                a, d = _act(s, act, q, rho)
                A[l, i] = a
                D[l, i] = d
            else:
                A[l, i] = s
                D[l, i] = 1.0
    return A[layout.shape[0] - 1, 0]


@jit()
def _backward(theta, layout, concat, col0, x, e, A, D, dA, grad):
    """Add e * d f(x) / d theta to grad (after :func:`_forward` on the same x)."""
    nl = layout.shape[0]
    for l in range(nl):
        for i in range(layout[l, 1]):
            dA[l, i] = 0.0
    dA[nl - 1, 0] = e
    for l in range(nl - 1, -1, -1):
        off, rows, cols = layout[l, 0], layout[l, 1], layout[l, 2]
        src, idx = layout[l, 3], layout[l, 4]
        for i in range(rows):
            dz = dA[l, i] * D[l, i]
            if dz == 0.0:
                continue
            base = off + i * cols
            if src == 0:
                c0 = col0[idx]
                for j in range(cols):
                    grad[base + j] += dz * x[c0 + j]
            elif src == 1:
                for j in range(cols):
                    grad[base + j] += dz * A[idx, j]
                    dA[idx, j] += dz * theta[base + j]
            elif src == 2:
                j = 0
                for c in range(concat.shape[0]):
                    src_l = concat[c]
                    for u in range(layout[src_l, 1]):
                        grad[base + j] += dz * A[src_l, u]
                        dA[src_l, u] += dz * theta[base + j]
                        j += 1
            else:
                for j in range(cols):
                    grad[base + j] += dz * x[j]


@jit()
def _loss_and_slope(f, y, loss):
    """Per-sample loss and its derivative in f: logistic log(1 + e^(-y f)) or (f - y)^2 / 2."""
    if loss == 1:
        r = f - y
        return 0.5 * r * r, r
    m = -y * f
    value = m + math.log1p(math.exp(-m)) if m > 0.0 else math.log1p(math.exp(m))
    # d/df = -y sigmoid(m), evaluated without overflowing exp
    slope = -y * math.exp(m) / (1.0 + math.exp(m)) if m < 0.0 else -y / (1.0 + math.exp(-m))
    return value, slope


def _scratch(layout):
    width = int(layout[:, 1].max())
    nl = layout.shape[0]
    return (np.zeros((nl, width)), np.zeros((nl, width)), np.zeros((nl, width)),
            np.zeros((nl, width)))


@jit()
def _sample_gradient(theta, layout, concat, col0, X, y, w, loss, act, q, rho, grad, fx,
                     Z, A, D, dA):
    """Full-batch loss sum_i w_i l(f(x_i), y_i); its gradient into grad; outputs into fx."""
    for p in range(grad.shape[0]):
        grad[p] = 0.0
    total = 0.0
    for i in range(X.shape[0]):
        f = _forward(theta, layout, concat, col0, X[i], act, q, rho, Z, A, D)
        value, slope = _loss_and_slope(f, y[i], loss)
        fx[i] = f
        total += w[i] * value
        _backward(theta, layout, concat, col0, X[i], w[i] * slope, A, D, dA, grad)
    return total


@jit()
def _sample_gradient_views(theta, layout, concat, col0, X, y, w, loss, act, q, rho, grad, fx,
                           Z, A, D, dA, vmask, vweight, rweight, xm):
    """A method's loss over input *views* (docs/methods.md, "Methods on the fusion engine"):
    view v keeps the input columns where ``vmask[v]`` is 1 (the others are zero), and the
    gradient is sum_v vweight[v] grad sum_i w_i l(f(x_i masked), y_i).  The recorded
    predictor is p_i = sum_v rweight[v] f(x_i masked by v), stored in fx; returns
    sum_i w_i l(p_i, y_i)."""
    for p in range(grad.shape[0]):
        grad[p] = 0.0
    total = 0.0
    for i in range(X.shape[0]):
        pred = 0.0
        for v in range(vmask.shape[0]):
            if vweight[v] == 0.0 and rweight[v] == 0.0:
                continue
            for j in range(X.shape[1]):
                xm[j] = X[i, j] * vmask[v, j]
            f = _forward(theta, layout, concat, col0, xm, act, q, rho, Z, A, D)
            pred += rweight[v] * f
            if vweight[v] != 0.0:
                _, slope = _loss_and_slope(f, y[i], loss)
                _backward(theta, layout, concat, col0, xm, w[i] * vweight[v] * slope, A, D, dA,
                          grad)
        value, _ = _loss_and_slope(pred, y[i], loss)
        fx[i] = pred
        total += w[i] * value
    return total


@jit()
def _moment_gradient(theta, layout, concat, col0, U, G, h, yy, act, q, rho, grad, c, Z, A, D, dA):
    """Squared loss through moments: f(x) = sum_k phi_k(x) f(U_k), so the mean loss is
    (c G c - 2 h c + yy) / 2 with c_k = f(U_k), and its gradient is sum_k g_k df(U_k),
    g = G c - h (docs/architectures.md)."""
    P = U.shape[0]
    for k in range(P):
        c[k] = _forward(theta, layout, concat, col0, U[k], act, q, rho, Z, A, D)
    for p in range(grad.shape[0]):
        grad[p] = 0.0
    total = yy
    for k in range(P):
        g = -h[k]
        for j in range(P):
            g += G[k, j] * c[j]
        total += c[k] * (g - h[k])
        _forward(theta, layout, concat, col0, U[k], act, q, rho, Z, A, D)
        _backward(theta, layout, concat, col0, U[k], g, A, D, dA, grad)
    return 0.5 * total


@jit()
def _record(t, every, proj, c, loss_value, tw, losses):
    """Store the loss and the total weights proj @ c of record t // every."""
    r = t // every
    losses[r] = loss_value
    for k in range(proj.shape[0]):
        s = 0.0
        for j in range(proj.shape[1]):
            s += proj[k, j] * c[j]
        tw[r, k] = s


@jit()
def _scaled_moment_loss(c, cscale, G, h, yy):
    """(c' G c' - 2 h c' + yy) / 2 with c' = cscale * c: the loss of a method's predictor."""
    total = yy
    for k in range(c.shape[0]):
        ck = cscale[k] * c[k]
        s = -2.0 * h[k]
        for j in range(c.shape[0]):
            s += G[k, j] * cscale[j] * c[j]
        total += ck * s
    return 0.5 * total


@jit()
def _gd_moments(theta, mask, layout, concat, col0, U, G, h, yy, act, q, rho, lr, steps, every,
                proj, tw, losses, Gg, hg, yyg, cscale, method):
    """Full-batch GD through moments; returns the first step whose loss was not finite (or -1).

    ``method`` 1: the gradient is that of the moments (Gg, hg, yyg) (a method's views,
    docs/methods.md) and the recorded loss that of the predictor cscale * c on (G, h, yy);
    0: plain GD on (G, h, yy)."""
    shape = (layout.shape[0], layout[:, 1].max())
    Z, A, D, dA = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    grad = np.zeros(theta.shape[0])
    c = np.zeros(U.shape[0])
    for t in range(steps + 1):
        if method == 1:
            value = _moment_gradient(theta, layout, concat, col0, U, Gg, hg, yyg, act, q, rho,
                                     grad, c, Z, A, D, dA)
            if math.isfinite(value):
                value = _scaled_moment_loss(c, cscale, G, h, yy)
        else:
            value = _moment_gradient(theta, layout, concat, col0, U, G, h, yy, act, q, rho, grad,
                                     c, Z, A, D, dA)
        if t % every == 0:
            _record(t, every, proj, c, value, tw, losses)
        if not math.isfinite(value):
            return t
        if t == steps:
            break
        for p in range(theta.shape[0]):
            theta[p] -= lr * mask[p] * grad[p]
    return -1


@jit()
def _gd_samples(theta, mask, layout, concat, col0, X, y, w, loss, act, q, rho, lr, steps, every,
                proj, tw, losses, vmask, vweight, rweight):
    """Full-batch GD over the samples; the total weights are proj @ (X^T (w * f)).

    With views (``vmask`` has rows: a method, :func:`_sample_gradient_views`) f is the
    method's predictor and the gradient that of its loss; without, plain GD."""
    shape = (layout.shape[0], layout[:, 1].max())
    Z, A, D, dA = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    grad = np.zeros(theta.shape[0])
    fx = np.zeros(X.shape[0])
    xf = np.zeros(X.shape[1])
    xm = np.zeros(X.shape[1])
    views = vmask.shape[0] > 0
    for t in range(steps + 1):
        if views:
            value = _sample_gradient_views(theta, layout, concat, col0, X, y, w, loss, act, q,
                                           rho, grad, fx, Z, A, D, dA, vmask, vweight, rweight,
                                           xm)
        else:
            value = _sample_gradient(theta, layout, concat, col0, X, y, w, loss, act, q, rho,
                                     grad, fx, Z, A, D, dA)
        if t % every == 0:
            for j in range(X.shape[1]):
                xf[j] = 0.0
            for i in range(X.shape[0]):
                for j in range(X.shape[1]):
                    xf[j] += w[i] * fx[i] * X[i, j]
            _record(t, every, proj, xf, value, tw, losses)
        if not math.isfinite(value):
            return t
        if t == steps:
            break
        for p in range(theta.shape[0]):
            theta[p] -= lr * mask[p] * grad[p]
    return -1


@jit()
def _others_mean(v, r):
    s = 0.0
    for k in range(v.shape[0]):
        if k != r:
            s += v[k]
    return s / (v.shape[0] - 1)


@jit()
def _rule_factors(code, alpha, start, stop, t, S0, S1, sbar, k):
    """Each modality's gradient factor k_r of ogm (code 1) or agm (code 2) at step t, from
    the scores S0 (sum_j w_j p_{j,r}) and S1 (sum_j w_j (-log max(p_{j,r}, 1e-8))); agm's
    running mean ``sbar`` of S1 is updated after k (docs/methods.md)."""
    K = k.shape[0]
    active = start <= t < stop
    if code == 1:
        for r in range(K):
            ratio = S0[r] / _others_mean(S0, r) if K > 1 else 1.0
            k[r] = 1.0 - math.tanh(alpha * ratio) if (active and ratio > 1.0) else 1.0
    else:
        for r in range(K):
            ratio = math.exp(_others_mean(S1, r) - S1[r]) if K > 1 else 1.0
            optimal = math.exp(_others_mean(sbar, r) - sbar[r]) if K > 1 else 1.0
            k[r] = math.exp(alpha * min(optimal - ratio, 10.0)) if active else 1.0
        for r in range(K):
            sbar[r] = (t * sbar[r] + S1[r]) / (t + 1.0)


@jit()
def _gd_samples_rule(theta, mask, layout, concat, col0, X, y, w, loss, act, q, rho, lr, steps,
                     every, proj, tw, losses, vmask, owner, code, alpha, start, stop):
    """Full-batch GD of the fused loss with ogm's or agm's factor k_r on modality r's own
    weights (``owner[p] = r``; -1: shared, factor 1).  The scores read each modality's own
    output f_r = f(x with the other modalities zero), view r + 1 of ``vmask``; the factors
    are computed from the same weights as the gradient, as on the original learner."""
    shape = (layout.shape[0], layout[:, 1].max())
    Z, A, D, dA = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    grad = np.zeros(theta.shape[0])
    fx = np.zeros(X.shape[0])
    xf = np.zeros(X.shape[1])
    xm = np.zeros(X.shape[1])
    K = vmask.shape[0] - 1
    S0, S1, sbar, k = np.zeros(K), np.zeros(K), np.zeros(K), np.ones(K)
    for t in range(steps + 1):
        value = _sample_gradient(theta, layout, concat, col0, X, y, w, loss, act, q, rho, grad,
                                 fx, Z, A, D, dA)
        if t % every == 0:
            for j in range(X.shape[1]):
                xf[j] = 0.0
            for i in range(X.shape[0]):
                for j in range(X.shape[1]):
                    xf[j] += w[i] * fx[i] * X[i, j]
            _record(t, every, proj, xf, value, tw, losses)
        if not math.isfinite(value):
            return t
        if t == steps:
            break
        for r in range(K):
            S0[r] = 0.0
            S1[r] = 0.0
            for i in range(X.shape[0]):
                for j in range(X.shape[1]):
                    xm[j] = X[i, j] * vmask[r + 1, j]
                u = y[i] * _forward(theta, layout, concat, col0, xm, act, q, rho, Z, A, D)
                p = 1.0 / (1.0 + math.exp(-u)) if u >= 0.0 else math.exp(u) / (1.0 + math.exp(u))
                S0[r] += w[i] * p
                S1[r] += w[i] * (-math.log(max(p, 1e-8)))
        _rule_factors(code, alpha, start, stop, t, S0, S1, sbar, k)
        for p in range(theta.shape[0]):
            f = k[owner[p]] if owner[p] >= 0 else 1.0
            theta[p] -= lr * mask[p] * f * grad[p]
    return -1


@jit_parallel()
def _gd_samples_rule_batch(thetas, mask, layout, concat, col0, Xs, ys, w, loss, act, q, rho, lr,
                           steps, every, projs, tws, losses, failed, vmask, owner, code, alpha,
                           start, stop):
    """:func:`_gd_samples_rule` for a group of same-shape runs, one thread per run."""
    for r in prange(thetas.shape[0]):
        failed[r] = _gd_samples_rule(thetas[r], mask, layout, concat, col0, Xs[r], ys[r], w,
                                     loss, act, q, rho, lr, steps, every, projs[r], tws[r],
                                     losses[r], vmask, owner, code, alpha, start, stop)


@jit_parallel()
def _gd_moments_batch(thetas, mask, layout, concat, col0, U, Gs, hs, yys, act, q, rho, lr, steps,
                      every, projs, tws, losses, failed, Ggs, hgs, yygs, cscale, method):
    """:func:`_gd_moments` for a group of same-shape runs, one thread per run."""
    for r in prange(thetas.shape[0]):
        failed[r] = _gd_moments(thetas[r], mask, layout, concat, col0, U, Gs[r], hs[r], yys[r],
                                act, q, rho, lr, steps, every, projs[r], tws[r], losses[r],
                                Ggs[r], hgs[r], yygs[r], cscale, method)


@jit_parallel()
def _gd_samples_batch(thetas, mask, layout, concat, col0, Xs, ys, w, loss, act, q, rho, lr, steps,
                      every, projs, tws, losses, failed, vmask, vweight, rweight):
    """:func:`_gd_samples` for a group of same-shape runs, one thread per run."""
    for r in prange(thetas.shape[0]):
        failed[r] = _gd_samples(thetas[r], mask, layout, concat, col0, Xs[r], ys[r], w, loss, act,
                                q, rho, lr, steps, every, projs[r], tws[r], losses[r], vmask,
                                vweight, rweight)


# --------------------------------------------------------------------------- mmcosine
# Method mmcosine (docs/methods.md): modality r's logit is 2 s cos(h_r, u_r), h_r its last
# private encoding (the layer concat[r]) and u_r the head's columns that read it; the
# output is their sum.  The head's own product is never used: its weights enter only
# through the cosines.  Norms are floored at 1e-12; a sample whose ||h_r|| is below the
# floor gives modality r no gradient (an absent modality under ReLU has h_r = 0).

_NORM_FLOOR = 1e-12


@jit()
def _head_norms(theta, layout, concat, unorm):
    """max(||u_r||, 1e-12) of every modality's block of the head (the last layer)."""
    hoff = layout[layout.shape[0] - 1, 0]
    j = 0
    for c in range(concat.shape[0]):
        s = 0.0
        for i in range(layout[concat[c], 1]):
            s += theta[hoff + j] * theta[hoff + j]
            j += 1
        unorm[c] = max(math.sqrt(s), _NORM_FLOOR)


@jit()
def _cosine_forward(theta, layout, concat, col0, x, act, q, rho, scale, unorm, Z, A, D, hnorm,
                    cosv):
    """The mmcosine output sum_r 2 s cos_r at x; each ||h_r|| into hnorm, cos_r into cosv."""
    _forward(theta, layout, concat, col0, x, act, q, rho, Z, A, D)
    hoff = layout[layout.shape[0] - 1, 0]
    f = 0.0
    j = 0
    for c in range(concat.shape[0]):
        l = concat[c]
        hh = 0.0
        dot = 0.0
        for i in range(layout[l, 1]):
            hh += A[l, i] * A[l, i]
            dot += A[l, i] * theta[hoff + j]
            j += 1
        hnorm[c] = math.sqrt(hh)
        cosv[c] = dot / (max(hnorm[c], _NORM_FLOOR) * unorm[c])
        f += 2.0 * scale * cosv[c]
    return f


@jit()
def _cosine_backward(theta, layout, concat, col0, x, e, scale, unorm, A, D, dA, hnorm, cosv,
                     grad):
    """Add e * d f(x) / d theta of the mmcosine output to grad (after :func:`_cosine_forward`
    on the same x): the head blocks directly, the encoders by back-propagating
    dphi_r/dh_r = (2 s / ||h_r||) (u_r/||u_r|| - cos_r h_r/||h_r||)."""
    nl = layout.shape[0]
    hoff = layout[nl - 1, 0]
    for l in range(nl - 1):
        for i in range(layout[l, 1]):
            dA[l, i] = 0.0
    j0 = 0
    for c in range(concat.shape[0]):
        l = concat[c]
        width = layout[l, 1]
        if hnorm[c] >= _NORM_FLOOR:
            nh, nu, cs = hnorm[c], unorm[c], cosv[c]
            gu = e * 2.0 * scale / nu
            gh = e * 2.0 * scale / nh
            for i in range(width):
                h, u = A[l, i] / nh, theta[hoff + j0 + i] / nu
                grad[hoff + j0 + i] += gu * (h - cs * u)
                dA[l, i] = gh * (u - cs * h)
        j0 += width
    # the private encoder layers, as in _backward (every layer but the head)
    for l in range(nl - 2, -1, -1):
        off, rows, cols = layout[l, 0], layout[l, 1], layout[l, 2]
        src, idx = layout[l, 3], layout[l, 4]
        for i in range(rows):
            dz = dA[l, i] * D[l, i]
            if dz == 0.0:
                continue
            base = off + i * cols
            if src == 0:
                c0 = col0[idx]
                for j in range(cols):
                    grad[base + j] += dz * x[c0 + j]
            else:
                for j in range(cols):
                    grad[base + j] += dz * A[idx, j]
                    dA[idx, j] += dz * theta[base + j]


@jit()
def _cosine_gradient(theta, layout, concat, col0, X, y, w, loss, act, q, rho, scale, grad, fx,
                     Z, A, D, dA, unorm, hnorm, cosv):
    """Full-batch loss sum_i w_i l(f(x_i), y_i) of the mmcosine output; its gradient into
    grad; the outputs into fx."""
    for p in range(grad.shape[0]):
        grad[p] = 0.0
    _head_norms(theta, layout, concat, unorm)
    total = 0.0
    for i in range(X.shape[0]):
        f = _cosine_forward(theta, layout, concat, col0, X[i], act, q, rho, scale, unorm, Z, A,
                            D, hnorm, cosv)
        value, slope = _loss_and_slope(f, y[i], loss)
        fx[i] = f
        total += w[i] * value
        if w[i] * slope != 0.0:
            _cosine_backward(theta, layout, concat, col0, X[i], w[i] * slope, scale, unorm, A,
                             D, dA, hnorm, cosv, grad)
    return total


@jit()
def _gd_samples_cosine(theta, mask, layout, concat, col0, X, y, w, loss, act, q, rho, lr, steps,
                       every, proj, tw, losses, scale):
    """Full-batch GD of the mmcosine network (:func:`_gd_samples` with its output)."""
    shape = (layout.shape[0], layout[:, 1].max())
    Z, A, D, dA = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    K = concat.shape[0]
    unorm, hnorm, cosv = np.zeros(K), np.zeros(K), np.zeros(K)
    grad = np.zeros(theta.shape[0])
    fx = np.zeros(X.shape[0])
    xf = np.zeros(X.shape[1])
    for t in range(steps + 1):
        value = _cosine_gradient(theta, layout, concat, col0, X, y, w, loss, act, q, rho, scale,
                                 grad, fx, Z, A, D, dA, unorm, hnorm, cosv)
        if t % every == 0:
            for j in range(X.shape[1]):
                xf[j] = 0.0
            for i in range(X.shape[0]):
                for j in range(X.shape[1]):
                    xf[j] += w[i] * fx[i] * X[i, j]
            _record(t, every, proj, xf, value, tw, losses)
        if not math.isfinite(value):
            return t
        if t == steps:
            break
        for p in range(theta.shape[0]):
            theta[p] -= lr * mask[p] * grad[p]
    return -1


@jit_parallel()
def _gd_samples_cosine_batch(thetas, mask, layout, concat, col0, Xs, ys, w, loss, act, q, rho,
                             lr, steps, every, projs, tws, losses, failed, scale):
    """:func:`_gd_samples_cosine` for a group of same-shape runs, one thread per run."""
    for r in prange(thetas.shape[0]):
        failed[r] = _gd_samples_cosine(thetas[r], mask, layout, concat, col0, Xs[r], ys[r], w,
                                       loss, act, q, rho, lr, steps, every, projs[r], tws[r],
                                       losses[r], scale)


# --------------------------------------------------------------------------- wrappers


def outputs(theta, layout, concat, col0, X, act, q=3.0, rho=1.0):
    """The network's output at every row of X (n, D)."""
    Z, A, D, _ = _scratch(layout)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return np.array([_forward(theta, layout, concat, col0, X[i], int(act), float(q), float(rho),
                              Z, A, D) for i in range(X.shape[0])])


def sample_gradient(theta, layout, concat, col0, X, y, w, loss, act, q=3.0, rho=1.0):
    """The weighted loss sum_i w_i l(f(x_i), y_i) and its gradient in theta.

    Returns
    -------
    (float, ndarray)
        The loss and the gradient (same shape as theta).
    """
    Z, A, D, dA = _scratch(layout)
    grad = np.zeros_like(theta)
    X = np.ascontiguousarray(X, dtype=np.float64)
    value = _sample_gradient(np.ascontiguousarray(theta, dtype=np.float64), layout, concat, col0,
                             X, np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64),
                             int(loss), int(act), float(q), float(rho), grad,
                             np.zeros(X.shape[0]), Z, A, D, dA)
    return value, grad


def cosine_gradient(theta, layout, concat, col0, X, y, w, loss, act, scale, q=3.0, rho=1.0):
    """The weighted loss of the mmcosine output (method ``mmcosine``, docs/methods.md) and
    its gradient in theta, for a network whose last layer reads the concatenated encodings.

    Returns
    -------
    (float, ndarray, ndarray)
        The loss, the gradient (same shape as theta) and the outputs f(x_i).
    """
    if concat.shape[0] == 0:
        raise ValueError("mmcosine needs per-modality encodings read by the head (late fusion)")
    Z, A, D, dA = _scratch(layout)
    grad = np.zeros_like(theta, dtype=np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    K = concat.shape[0]
    fx = np.zeros(X.shape[0])
    value = _cosine_gradient(np.ascontiguousarray(theta, dtype=np.float64), layout, concat, col0,
                             X, np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64),
                             int(loss), int(act), float(q), float(rho), float(scale), grad, fx,
                             Z, A, D, dA, np.zeros(K), np.zeros(K), np.zeros(K))
    return value, grad, fx


def moment_gradient(theta, layout, concat, col0, U, G, h, yy, act, q=3.0, rho=1.0):
    """The mean squared loss (c G c - 2 h c + yy) / 2, c_k = f(U_k), and its gradient."""
    Z, A, D, dA = _scratch(layout)
    grad = np.zeros_like(theta)
    value = _moment_gradient(np.ascontiguousarray(theta, dtype=np.float64), layout, concat, col0,
                             np.ascontiguousarray(U, dtype=np.float64),
                             np.ascontiguousarray(G, dtype=np.float64),
                             np.ascontiguousarray(h, dtype=np.float64), float(yy), int(act),
                             float(q), float(rho), grad, np.zeros(U.shape[0]), Z, A, D, dA)
    return value, grad


def gd_batch(route, thetas, mask, net, data, lr, steps, every, projs, views=None):
    """Run full-batch GD for a group of same-shape runs in one compiled call.

    Parameters
    ----------
    route : {"moments", "samples"}
    thetas : ndarray (R, n_params)
        Initial weights, updated in place.
    mask : ndarray (n_params,)
        1.0 where a weight is trained, 0.0 where it is fixed.
    net : tuple
        ``(layout, concat, col0, act, q, rho)``.
    data : tuple
        ``(U, Gs, hs, yys)`` for moments, ``(Xs, ys, w, loss)`` for samples.
    projs : ndarray (R, K, P)
        Total weights per modality = projs[r] @ c.
    views : tuple or None
        A method's loss over input views (docs/methods.md, "Methods on the fusion
        engine"): ``(Ggs, hgs, yygs, cscale)`` for moments (the moments its gradient is
        taken on, per run, and each coordinate's factor in its predictor);
        ``(vmask (V, D), vweight (V,), rweight (V,))`` for samples; or, for ogm and
        agm (samples only), ``("rule", vmask, owner, code, alpha, start, stop)``
        (:func:`_gd_samples_rule`); for mmcosine (samples only), ``("cosine", s)``
        (:func:`_gd_samples_cosine`).  None: plain GD.

    Returns
    -------
    (tws, losses, failed)
        (R, records, K) total weights, (R, records) losses, (R,) first non-finite step or -1.
    """
    layout, concat, col0, act, q, rho = net
    R, K = thetas.shape[0], projs.shape[1]
    records = steps // every + 1
    tws = np.full((R, records, K), np.nan)
    losses = np.full((R, records), np.nan)
    failed = np.zeros(R, dtype=np.int64)
    args = (float(lr), int(steps), int(every), np.ascontiguousarray(projs, dtype=np.float64), tws,
            losses, failed)
    common = (thetas, np.asarray(mask, dtype=np.float64), layout, concat, col0)
    if route == "moments":
        U, Gs, hs, yys = data
        if views is None:
            extra = (Gs, hs, yys, np.ones(U.shape[0]), 0)
        else:
            Ggs, hgs, yygs, cscale = views
            extra = (np.ascontiguousarray(Ggs, dtype=np.float64),
                     np.ascontiguousarray(hgs, dtype=np.float64),
                     np.ascontiguousarray(yygs, dtype=np.float64),
                     np.ascontiguousarray(cscale, dtype=np.float64), 1)
        _gd_moments_batch(*common, U, Gs, hs, yys, int(act), float(q), float(rho), *args, *extra)
    else:
        Xs, ys, w, loss = data
        if views is not None and isinstance(views[0], str) and views[0] == "cosine":  # ("cosine", s): mmcosine
            _gd_samples_cosine_batch(*common, Xs, ys, w, int(loss), int(act), float(q),
                                     float(rho), *args, float(views[1]))
            return tws, losses, failed
        if views is not None and isinstance(views[0], str):  # ("rule", ...): ogm, agm
            _, vmask, owner, code, alpha, start, stop = views
            _gd_samples_rule_batch(*common, Xs, ys, w, int(loss), int(act), float(q), float(rho),
                                   *args, np.ascontiguousarray(vmask, dtype=np.float64),
                                   np.ascontiguousarray(owner, dtype=np.int64), int(code),
                                   float(alpha), int(start), int(stop))
            return tws, losses, failed
        if views is None:
            extra = (np.zeros((0, Xs.shape[2])), np.zeros(0), np.zeros(0))
        else:
            extra = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in views)
        _gd_samples_batch(*common, Xs, ys, w, int(loss), int(act), float(q), float(rho), *args,
                          *extra)
    return tws, losses, failed
