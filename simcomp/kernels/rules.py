"""Training rules: the stage between the forward units and the backward tiles.

Every rule is an instance of the general update

    W_r <- W_r - eta c_r ( k_r(t) sum_j g_{j,r}(t) y_j grad_r phi_{j,r} + xi_r(t) )

(docs/methods.md). Inside a block of samples the rule turns the forward
pass's f_j, phi_{j,r} (and unit values) into the coefficients
``y_j g_{j,r}`` (:func:`_block_coef`) and accumulates per-chunk statistics;
once per step, from the full-batch statistics, it sets k_r and the noise
xi_r and, for ``mmpareto``, combines two gradients (:func:`_rule_step`);
the update applies eta c_r (:func:`_rule_update`).

The compiled form of a rule, the tuple ``(code, par, hyper, state, teacher,
key, stats)``, and the :class:`Rule` that carries it are defined in
rule_spec.py.

``none`` and ``lr_scale`` keep the plain coefficient path of the kernels
untouched (so ``none`` is bit-identical to plain training and pays
nothing); the other rules compute phi_{j,r} too. Random numbers
(dropout masks, ogm_ge noise) are counter-based (rng.py): a hash of
(key, t, j, r) for a mask, draw k of the stream (key, t, r, weight row)
for the noise of entry k, so they depend neither on threads nor on
batching.
"""

from __future__ import annotations

import math

import numpy as np

from numba import types
from numba.extending import overload

from simcomp._jit import jit
from simcomp.kernels.layout import BLOCK
from simcomp.kernels.rule_spec import (AGM, ALTERNATING, AUX, DROPOUT, H_ALPHA,
                                       H_DISTILL_WEIGHT, H_FUSED_WEIGHT, H_RESCALE, H_START,
                                       H_STOP, MMPARETO, OGM, OGM_GE, P_AUX_WEIGHT, P_DROP,
                                       P_STEP, READS_PHI, READS_UNITS, S_COSINE, S_K, S_NOISE,
                                       S_RATIO, S_SCALE, S_SCORE, SECOND_GRADIENT)
from simcomp.kernels.rng import _normal, _stream, _uniform
from simcomp.kernels.rule_spec import CODE, H

OGM_BOOST = CODE["ogm_boost"]
H_BOOST = H["boost"]
from simcomp.kernels.units import _block_units, _block_units_split, _exp_nonpos

# --------------------------------------------------------------------------
# Dropout masks (random numbers: rng.py)
# --------------------------------------------------------------------------


@jit()
def _keep(key, t, j, r, d):
    """Dropout mask delta_{j,r} at step t: 1 with probability 1 - d."""
    if d <= 0.0:
        return 1.0
    return 1.0 if _uniform(key, t, j, r + 1) >= d else 0.0


# --------------------------------------------------------------------------
# Per block: coefficients
# --------------------------------------------------------------------------


@jit(inline="always")
def _dlogistic(yj, f):
    """``y l'(y f)`` = -y sigmoid(-y f), with the stable one-exp sigmoid of the plain path."""
    u = -yj * f
    e = _exp_nonpos(-abs(u))
    sig = (1.0 if u >= 0.0 else e) / (1.0 + e)
    return -yj * sig


@jit()
def _plain_coef(y, omega, m, j0, j1, Z, F, need_loss):
    """Loss of samples ``j0:j1``; ``Z`` (act'(z)) becomes omega_j l'_j y_j c_b act'(z).

    ``F`` (float64, >= 2 BLOCK) holds f on entry and is scratch. Returns
    ``(loss, bound)``, accumulated in float64 in sample order: the block's
    loss (0 unless ``need_loss``) and ``sum_j |omega_j| (max(u_j, 0) + e_j)``
    with ``u_j = -y_j f_j``, ``e_j = exp(-|u_j|)``. As softplus(u) =
    max(u, 0) + log1p(e) and 0 <= log1p(e) <= e, a finite bound proves a
    finite loss without a ``log1p``. One exp serves the loss and the sigmoid.
    """
    nb = j1 - j0
    BM = Z.shape[1]
    loss = 0.0
    if need_loss:
        for jj in range(nb):
            u = -np.float64(y[j0 + jj]) * F[jj]
            e = _exp_nonpos(-abs(u))
            loss += np.float64(omega[j0 + jj]) * (max(u, 0.0) + math.log1p(e))
    # The bound's terms go to F[BLOCK:]: a constant distance from F[:nb] lets
    # the loop vectorise (with F.shape[0] // 2 it compiled to scalar code,
    # 1.7x slower steps at the small size).
    for jj in range(nb):
        yj = np.float64(y[j0 + jj])
        wj = np.float64(omega[j0 + jj])
        u = -yj * F[jj]
        e = _exp_nonpos(-abs(u))
        F[BLOCK + jj] = abs(wj) * (max(u, 0.0) + e)
        sig = (1.0 if u >= 0.0 else e) / (1.0 + e)
        F[jj] = wj * (-yj * sig)
    bound = 0.0
    for jj in range(nb):
        bound += F[BLOCK + jj]
    for r in range(Z.shape[0]):
        for bi in range(BM):
            s = 1.0 if bi < m else -1.0
            z = Z[r, bi]
            for jj in range(nb):
                z[jj] = (s * F[jj]) * z[jj]
    return loss, bound


@jit()
def _rule_coef(rule, y, omega, m, j0, j1, t, bufs):
    """The coefficients y_j g_{j,r} of a rule that reads phi, and its block statistics.

    ``bufs = (Z, Z2, F, P, U, S)``: on entry F = f, P[0] = phi_r, U the unit
    values (umt), Z = act'(z). On return Z (and Z2 for mmpareto's uni-modal
    gradient) hold the backward coefficients; for ogm and ogm_ge
    S[0, r] += sum_j omega_j p_{j,r}, for agm S[1, r] += sum_j omega_j
    (-log max(p_{j,r}, 1e-8)).
    """
    _, par, hyper, state, teacher, key, stats = rule
    code = _rule_code(rule)
    Z, Z2, F, P, U, S = bufs
    K = Z.shape[0]
    BM = Z.shape[1]
    nb = j1 - j0
    phi = P[0]
    C = P[1]
    # Each quantity has its own loop over the samples, the method's branch
    # outside it, so that the loops vectorise (one loop with the branches
    # inside ran scalar). Every value is computed by the same operations as
    # in a single loop, and each sum still runs over the samples in order.
    Fd = F[BLOCK:]  # y_j l'(y_j f_j) of the fused output
    for jj in range(nb):
        Fd[jj] = _dlogistic(np.float64(y[j0 + jj]), F[jj])
    if code == OGM or code == OGM_GE or code == AGM or code == OGM_BOOST:  # they read the scores
        for r in range(K):
            pr = P[2, r]
            for jj in range(nb):
                u = np.float64(y[j0 + jj]) * phi[r, jj]
                e = _exp_nonpos(-abs(u))
                pr[jj] = (1.0 if u >= 0.0 else e) / (1.0 + e)  # sigmoid(u), one exp
            if code == AGM:
                for jj in range(nb):
                    S[1, r] += np.float64(omega[j0 + jj]) * (-math.log(max(pr[jj], 1e-8)))
            else:
                for jj in range(nb):
                    S[0, r] += np.float64(omega[j0 + jj]) * pr[jj]
    if code == DROPOUT:
        rescale = hyper[H_RESCALE] != 0.0
        ft = P[2, 0]
        for jj in range(nb):
            acc = 0.0
            for r in range(K):
                keep = _keep(key, t, j0 + jj, r, par[P_DROP, r])
                if rescale:
                    keep = keep / (1.0 - par[P_DROP, r])
                C[r, jj] = keep  # the mask (times the rescale), for now
                acc += keep * phi[r, jj]
            ft[jj] = acc
        for r in range(K):
            for jj in range(nb):
                yj = np.float64(y[j0 + jj])
                C[r, jj] = np.float64(omega[j0 + jj]) * (C[r, jj] * _dlogistic(yj, ft[jj]))
    elif code == AUX:
        for r in range(K):
            for jj in range(nb):
                yj = np.float64(y[j0 + jj])
                C[r, jj] = np.float64(omega[j0 + jj]) * (
                    hyper[H_FUSED_WEIGHT] * Fd[jj]
                    + par[P_AUX_WEIGHT, r] * _dlogistic(yj, phi[r, jj]))
    elif code == ALTERNATING:
        for r in range(K):
            for jj in range(nb):
                C[r, jj] = np.float64(omega[j0 + jj]) * _dlogistic(np.float64(y[j0 + jj]),
                                                                   phi[r, jj])
    else:  # ogm, ogm_ge, agm, mmpareto, umt: the plain coefficient
        for r in range(K):
            for jj in range(nb):
                C[r, jj] = np.float64(omega[j0 + jj]) * Fd[jj]
        if code == MMPARETO:
            for r in range(K):
                for jj in range(nb):
                    P[2, r, jj] = np.float64(omega[j0 + jj]) * _dlogistic(
                        np.float64(y[j0 + jj]), phi[r, jj])
    two = SECOND_GRADIENT[code]
    units = READS_UNITS[code]
    for r in range(K):
        for bi in range(BM):
            s = 1.0 if bi < m else -1.0
            z = Z[r, bi]
            if two:
                z2 = Z2[r, bi]
                for jj in range(nb):
                    z2[jj] = (s * P[2, r, jj]) * z[jj]
            if units:  # umt: the distillation pull of every unit towards its teacher
                b = 0 if bi < m else 1
                i = bi - b * m
                lam = hyper[H_DISTILL_WEIGHT] * 2.0 / BM
                h = U[r, bi]
                hT = teacher[r, b, i]
                for jj in range(nb):
                    dist = lam * np.float64(omega[j0 + jj]) * (h[jj] - hT[j0 + jj])
                    z[jj] = (s * C[r, jj]) * z[jj] + dist * z[jj]
            else:
                for jj in range(nb):
                    z[jj] = (s * C[r, jj]) * z[jj]


@jit()
def _block_coef_rule(rule, y, omega, unit, m, j0, j1, t, bufs, need_loss):
    """Units, then the rule's coefficients for one block; returns ``(loss, bound)``.

    ``Z`` (pre-activations on entry) becomes the backward coefficients. The
    loss and bound are always those of the plain fused f (the early stop
    and the non-finite guard mean the same for every rule).
    """
    Z, Z2, F, P, U, S = bufs
    nb = j1 - j0
    if not READS_PHI[_rule_code(rule)]:
        _block_units(unit, m, nb, Z, F)
        return _plain_coef(y, omega, m, j0, j1, Z, F, need_loss)
    _block_units_split(unit, m, nb, Z, F, P[0], U)
    loss = 0.0
    if need_loss:
        for jj in range(nb):
            u = -np.float64(y[j0 + jj]) * F[jj]
            e = _exp_nonpos(-abs(u))
            loss += np.float64(omega[j0 + jj]) * (max(u, 0.0) + math.log1p(e))
    # The bound's terms first (a loop that vectorises), then their sum in order.
    for jj in range(nb):
        u = -np.float64(y[j0 + jj]) * F[jj]
        e = _exp_nonpos(-abs(u))
        F[BLOCK + jj] = abs(np.float64(omega[j0 + jj])) * (max(u, 0.0) + e)
    bound = 0.0
    for jj in range(nb):
        bound += F[BLOCK + jj]
    _rule_coef(rule, y, omega, m, j0, j1, t, bufs)
    return loss, bound


# --------------------------------------------------------------------------
# Per step: scales, noise, the two-gradient combination, the update
# --------------------------------------------------------------------------


@jit()
def _others_mean(v, r):
    K = v.shape[0]
    if K < 2:
        return v[r]
    s = 0.0
    for k in range(K):
        if k != r:
            s += v[k]
    return s / (K - 1)


@jit()
def _grad_moments(dims, G, r):
    """Sum of squares, sum and count of encoder r's real gradient entries."""
    B, m = G.shape[1], G.shape[2]
    s = 0.0
    s2 = 0.0
    for b in range(B):
        for i in range(m):
            g = G[r, b, i]
            for k in range(dims[r]):
                x = np.float64(g[k])
                s += x
                s2 += x * x
    return s, s2, B * m * dims[r]


@jit()
def _dot_enc(dims, A, Bg, r):
    B, m = A.shape[1], A.shape[2]
    s = 0.0
    for b in range(B):
        for i in range(m):
            for k in range(dims[r]):
                s += np.float64(A[r, b, i, k]) * np.float64(Bg[r, b, i, k])
    return s


@jit()
def _mmpareto(dims, G, G2, r):
    """Combine encoder r's fused (G) and uni-modal (G2) gradients into G; returns
    ``(cosine, scale)``, the scale being the factor 1.5 max(1, |g_m + g_u| / |new|)."""
    mm = _dot_enc(dims, G, G, r)
    uu = _dot_enc(dims, G2, G2, r)
    mu = _dot_enc(dims, G, G2, r)
    denom = math.sqrt(mm) * math.sqrt(uu)
    cos = mu / denom if denom > 0.0 else 0.0
    if cos > 0.0:
        k0 = 0.5
    else:
        diff = mm - 2.0 * mu + uu
        k0 = (uu - mu) / diff if diff > 0.0 else 0.5
        k0 = min(max(k0, 0.001), 0.999)
    k1 = 1.0 - k0
    sum2 = mm + 2.0 * mu + uu  # ||g_m + g_u||^2
    new2 = 4.0 * (k0 * k0 * mm + 2.0 * k0 * k1 * mu + k1 * k1 * uu)  # ||new||^2
    scale = 1.5 * max(1.0, math.sqrt(sum2) / math.sqrt(new2)) if new2 > 0.0 else 1.5
    B, m = G.shape[1], G.shape[2]
    for b in range(B):
        for i in range(m):
            g = G[r, b, i]
            g2 = G2[r, b, i]
            for k in range(dims[r]):
                g[k] = scale * (2.0 * k0 * g[k] + 2.0 * k1 * g2[k])
    return cos, scale


@jit()
def _rule_step(rule, W, dims, G, G2, S, t):
    """Once per step, from the full-batch statistics ``S`` (N_ACC, K): k_r, noise std, mmpareto.

    ``W`` (the weights at step t, before the update) is there for a stage that reads or
    resets weights (none of the current ones does).

    Writes ``stats`` of the rule (score, ratio, scale, cosine; k_r; noise
    std) and, for agm, updates its running mean after k_r is computed.
    """
    _, par, hyper, state, teacher, key, stats = rule
    code = _rule_code(rule)
    K = stats.shape[1]
    stats[:, :] = np.nan
    for r in range(K):
        stats[S_K, r] = 1.0
        stats[S_NOISE, r] = 0.0
    if not READS_PHI[code]:
        return
    alpha, start, stop = hyper[H_ALPHA], hyper[H_START], hyper[H_STOP]
    active = start <= t < stop
    if code == OGM or code == OGM_GE:
        for r in range(K):
            rho = S[0, r] / _others_mean(S[0], r) if K > 1 else 1.0
            stats[S_SCORE, r] = S[0, r]
            stats[S_RATIO, r] = rho
            k = 1.0 - math.tanh(alpha * rho) if (active and rho > 1.0) else 1.0
            stats[S_SCALE, r] = k
            stats[S_K, r] = k
            if code == OGM_GE and active:
                s, s2, cnt = _grad_moments(dims, G, r)
                var = (s2 - s * s / cnt) / (cnt - 1) if cnt > 1 else 0.0
                stats[S_NOISE, r] = math.sqrt(max(var, 0.0)) + 1e-8
    elif code == OGM_BOOST:  # the modalities behind (rho_r < 1) boosted, the others plain
        for r in range(K):
            rho = S[0, r] / _others_mean(S[0], r) if K > 1 else 1.0
            k = hyper[H_BOOST] if (active and rho < 1.0) else 1.0
            stats[S_SCORE, r] = S[0, r]
            stats[S_RATIO, r] = rho
            stats[S_SCALE, r] = k
            stats[S_K, r] = k
    elif code == AGM:
        sbar = state[0]  # its running mean score of every modality, (K,)
        for r in range(K):
            ratio = math.exp(_others_mean(S[1], r) - S[1, r]) if K > 1 else 1.0
            optimal = math.exp(_others_mean(sbar, r) - sbar[r]) if K > 1 else 1.0
            k = math.exp(alpha * min(optimal - ratio, 10.0)) if active else 1.0
            stats[S_SCORE, r] = S[1, r]
            stats[S_RATIO, r] = ratio
            stats[S_SCALE, r] = k
            stats[S_K, r] = k
        for r in range(K):
            sbar[r] = (t * sbar[r] + S[1, r]) / (t + 1.0)
    elif code == MMPARETO:
        for r in range(K):
            stats[S_COSINE, r], stats[S_SCALE, r] = _mmpareto(dims, G, G2, r)


@jit()
def _rule_update(rule, W, dims, eta, G, t):
    """``W_r -= eta c_r (k_r G_r + xi_r)`` on the unpadded columns (rules other than none)."""
    _, par, hyper, state, teacher, key, stats = rule
    code = _rule_code(rule)
    K, B, m, _ = W.shape
    for r in range(K):
        d = dims[r]
        er = eta * par[P_STEP, r]
        kr = stats[S_K, r]
        sd = stats[S_NOISE, r]
        for b in range(B):
            for i in range(m):
                w = W[r, b, i, :d]
                g = G[r, b, i, :d]
                if sd > 0.0:
                    h = _stream(key, t, r, b * m + i)  # one stream per weight row
                    for k in range(d):
                        xi = sd * _normal(h, k)
                        w[k] = w[k] - er * (kr * g[k] + xi)
                else:
                    for k in range(d):
                        w[k] = w[k] - er * (kr * g[k])


# --------------------------------------------------------------------------
# Compile-time dispatch: plain training (code None) against the rules
# --------------------------------------------------------------------------


def _plain_type(rule):
    return isinstance(rule.types[0], types.NoneType)


def _rule_code(rule):
    """The rule's code as an int (0 for plain training); compiled code only."""
    raise NotImplementedError("only callable from compiled code")


@overload(_rule_code)
def _rule_code_overload(rule):
    if _plain_type(rule):
        return lambda rule: 0
    first = rule.types[0]
    if isinstance(first, types.UniTuple):
        # A tuple of code + 1 zeros: the code is a constant of the type, so the loop is
        # compiled for that method alone (the per-method dispatch benchmarks/speed.py
        # measures against the single branch chain; see docs/adding-a-method.md).
        code = first.count - 1
        return lambda rule: code
    return lambda rule: rule[0]


def _block_coef(rule, y, omega, unit, m, j0, j1, t, bufs, need_loss):
    """Units and coefficients of one block (plain, or :func:`_block_coef_rule`)."""
    raise NotImplementedError("only callable from compiled code")


@overload(_block_coef)
def _block_coef_overload(rule, y, omega, unit, m, j0, j1, t, bufs, need_loss):
    if _plain_type(rule):
        def plain(rule, y, omega, unit, m, j0, j1, t, bufs, need_loss):
            Z, F = bufs[0], bufs[2]
            _block_units(unit, m, j1 - j0, Z, F)
            return _plain_coef(y, omega, m, j0, j1, Z, F, need_loss)
        return plain

    def general(rule, y, omega, unit, m, j0, j1, t, bufs, need_loss):
        return _block_coef_rule(rule, y, omega, unit, m, j0, j1, t, bufs, need_loss)
    return general


def _step(rule, W, dims, G, G2, S, t):
    """Once per step: nothing for plain training, else :func:`_rule_step`."""
    raise NotImplementedError("only callable from compiled code")


@overload(_step)
def _step_overload(rule, W, dims, G, G2, S, t):
    if _plain_type(rule):
        return lambda rule, W, dims, G, G2, S, t: None

    def general(rule, W, dims, G, G2, S, t):
        _rule_step(rule, W, dims, G, G2, S, t)
    return general


def _update(rule, W, dims, eta, G, t):
    """The update: ``W -= eta G`` for plain training, else :func:`_rule_update`."""
    raise NotImplementedError("only callable from compiled code")


@overload(_update)
def _update_overload(rule, W, dims, eta, G, t):
    if _plain_type(rule):
        def plain(rule, W, dims, eta, G, t):
            _gd_update(W, dims, eta, G)
        return plain

    def general(rule, W, dims, eta, G, t):
        _rule_update(rule, W, dims, eta, G, t)
    return general


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
