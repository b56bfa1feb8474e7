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
from simcomp.kernels.lanes import LANES, _lane_dot, _lane_sum
from simcomp.kernels.layout import BLOCK
from simcomp.kernels.rule_spec import (AGM, ALTERNATING, AUX, DROPOUT, H_ALPHA,
                                       H_DISTILL_WEIGHT, H_FUSED_WEIGHT, H_RESCALE, H_START,
                                       H_STOP, MMPARETO, OGM, OGM_GE, P_AUX_WEIGHT, P_DROP,
                                       P_STEP, READS_PHI, READS_UNITS, S_COSINE, S_K, S_NOISE,
                                       S_RATIO, S_SCALE, S_SCORE, SECOND_GRADIENT)
from simcomp.kernels.rng import _normal, _stream, _uniform
from simcomp.kernels.rule_spec import CODE, H, N_ACC, UMT

OGM_BOOST = CODE["ogm_boost"]
H_BOOST = H["boost"]
PMR = CODE["pmr"]
H_MOMENTUM, H_PROTO_EVERY = H["momentum"], H["proto_every"]
# pmr's accumulators: S[0] pscore, S[1 + c] the weight of class c, then the class sums of the
# unit outputs S[3 + c F + bi] (F = B m); its state row r: the prototypes P_{r,c} at
# [c F, (c + 1) F), their squared norms at 2 F + c, lam_r at 2 F + 2, "prototypes exist" at 2 F + 3
PMR_TOL = 1e-20
OPM = CODE["opm"]
H_Q_BASE, H_EXECUTE_PROB = H["q_base"], H["execute_prob"]
INFOREG = CODE["inforeg"]
H_PROX_WEIGHT, H_GAP_SCALE, H_THRESHOLD, H_TRACE_WINDOW, H_EVERY = (
    H[k] for k in ("prox_weight", "gap_scale", "threshold", "trace_window", "every"))
# inforeg's state row r: the anchor W^a_r (B m D, row-major), the ring of the last
# ``ring`` closed epoch traces, then the running epoch's trace, k_r and the closed epochs
from simcomp.kernels.units import _block_units, _block_units_split, _exp_nonpos

RECONBOOST, GREEDY = CODE["reconboost"], CODE["greedy"]
RELEARNING, GBLENDING = CODE["relearning"], CODE["gblending"]
H_EPSILON, H_WINDOW, H_GSTART = H["epsilon"], H["window"], H["start"]
H_BOOST_STEPS, H_CORRECT_STEPS, H_BOOST_WEIGHT, H_ENSEMBLE_WEIGHT = (
    H["boost_steps"], H["correct_steps"], H["boost_weight"], H["ensemble_weight"])


@jit()
def _reconboost_boosted(hyper, t, K):
    """The modality reconboost boosts at step t, or -1 in a correcting step."""
    bs = np.int64(hyper[H_BOOST_STEPS])
    L = bs + np.int64(hyper[H_CORRECT_STEPS])
    if t % L < bs:
        return (t // L) % K
    return -1


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
    yb = y[j0:j1]  # views: y[j0 + jj] compiled to gathers (see _pmr_coef)
    ob = omega[j0:j1]
    phi = P[0]
    C = P[1]
    # Each quantity has its own loop over the samples, the method's branch
    # outside it, so that the loops vectorise (one loop with the branches
    # inside ran scalar). Every value is computed by the same operations as
    # in a single loop, and each sum still runs over the samples in order.
    Fd = F[BLOCK:]  # y_j l'(y_j f_j) of the fused output
    for jj in range(nb):
        Fd[jj] = _dlogistic(np.float64(yb[jj]), F[jj])
    if (code == OGM or code == OGM_GE or code == AGM or code == OGM_BOOST or code == INFOREG
            or code == OPM):  # the rules that read the scores
        for r in range(K):
            pr = P[2, r]
            for jj in range(nb):
                u = np.float64(yb[jj]) * phi[r, jj]
                e = _exp_nonpos(-abs(u))
                pr[jj] = (1.0 if u >= 0.0 else e) / (1.0 + e)  # sigmoid(u), one exp
            if code == AGM:
                for jj in range(nb):
                    S[1, r] += np.float64(ob[jj]) * (-math.log(max(pr[jj], 1e-8)))
            else:
                for jj in range(nb):
                    S[0, r] += np.float64(ob[jj]) * pr[jj]
    if code == OPM and _opm_drops(rule, t):
        # q_r from the previous step's scores (the state); the kept outputs rescaled
        q = state[0]
        theta = 0.0
        for r in range(K):
            theta += q[r]
        g = 1.0 / (1.0 - theta / K)
        ft = P[2, 0]
        for jj in range(nb):
            acc = 0.0
            for r in range(K):
                keep = _keep(key, t, j0 + jj, r, q[r])
                C[r, jj] = keep * g  # the mask times the rescale, for now
                acc += keep * phi[r, jj]
            ft[jj] = g * acc
        for r in range(K):
            for jj in range(nb):
                yj = np.float64(yb[jj])
                C[r, jj] = np.float64(ob[jj]) * (C[r, jj] * _dlogistic(yj, ft[jj]))
    elif code == DROPOUT:
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
                yj = np.float64(yb[jj])
                C[r, jj] = np.float64(ob[jj]) * (C[r, jj] * _dlogistic(yj, ft[jj]))
    elif code == AUX or code == INFOREG:  # inforeg: the aux form with w_0 = 1
        w0 = 1.0 if code == INFOREG else hyper[H_FUSED_WEIGHT]
        for r in range(K):
            for jj in range(nb):
                yj = np.float64(yb[jj])
                C[r, jj] = np.float64(ob[jj]) * (
                    w0 * Fd[jj] + par[P_AUX_WEIGHT, r] * _dlogistic(yj, phi[r, jj]))
    elif code == RECONBOOST and _reconboost_boosted(hyper, t, K) >= 0:
        # boosting: only encoder rs learns, on its own loss weighted by (w1 - w2 q_j)/2,
        # q_j = sigmoid(y_j (f_j - phi_{j,rs})) the others' true-class probability
        rs = _reconboost_boosted(hyper, t, K)
        w1, w2 = hyper[H_BOOST_WEIGHT], hyper[H_ENSEMBLE_WEIGHT]
        qb = P[2, 0]
        for jj in range(nb):
            u = np.float64(yb[jj]) * (F[jj] - phi[rs, jj])
            e = _exp_nonpos(-abs(u))
            qb[jj] = (1.0 if u >= 0.0 else e) / (1.0 + e)
        for jj in range(nb):
            S[0, rs] += np.float64(ob[jj]) * qb[jj]
        for r in range(K):
            for jj in range(nb):
                C[r, jj] = 0.0
        for jj in range(nb):
            C[rs, jj] = np.float64(ob[jj]) * ((w1 - w2 * qb[jj]) / 2.0) * _dlogistic(
                np.float64(yb[jj]), phi[rs, jj])
    elif code == GREEDY:
        _greedy_coef(state, y, omega, j0, nb, F, phi, C, S, P[2])
    elif code == GBLENDING:  # the aux loss, weighted as the last probes said (state rows 0, 1)
        for r in range(K):
            for jj in range(nb):
                yj = np.float64(yb[jj])
                C[r, jj] = np.float64(ob[jj]) * (
                    state[1, 0] * Fd[jj] + state[0, r] * _dlogistic(yj, phi[r, jj]))
    elif code == ALTERNATING:
        for r in range(K):
            for jj in range(nb):
                C[r, jj] = np.float64(ob[jj]) * _dlogistic(np.float64(yb[jj]),
                                                                   phi[r, jj])
    else:  # ogm, ogm_ge, agm, mmpareto, umt: the plain coefficient
        for r in range(K):
            for jj in range(nb):
                C[r, jj] = np.float64(ob[jj]) * Fd[jj]
        if code == MMPARETO:
            for r in range(K):
                for jj in range(nb):
                    P[2, r, jj] = np.float64(ob[jj]) * _dlogistic(
                        np.float64(yb[jj]), phi[r, jj])
    if code == PMR:
        _pmr_coef(rule, y, omega, m, j0, j1, t, bufs)
        return
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
            if units and code == UMT:  # the distillation pull of every unit towards its teacher
                b = 0 if bi < m else 1
                i = bi - b * m
                lam = hyper[H_DISTILL_WEIGHT] * 2.0 / BM
                h = U[r, bi]
                hT = teacher[r, b, i]
                for jj in range(nb):
                    dist = lam * np.float64(ob[jj]) * (h[jj] - hT[j0 + jj])
                    z[jj] = (s * C[r, jj]) * z[jj] + dist * z[jj]
            else:
                for jj in range(nb):
                    z[jj] = (s * C[r, jj]) * z[jj]


@jit()
def _pmr_coef(rule, y, omega, m, j0, j1, t, bufs):
    """pmr's block stage: its prototype score, the class sums of the unit outputs (at a
    refresh step) and the backward coefficients (s_b C_{j,r} + E_{j,r,b,i}) act'(z).

    E is the derivative of lam_r sum_j omega_j (-log sigmoid(Delta_j)) with respect to the
    unit outputs h_j, with the prototypes and lam_r of the state (set by earlier steps):
    lam_r omega_j (-sigmoid(-Delta_j)) ((h_j - P_other) / d_other - (h_j - P_own) / d_own),
    a distance within rounding of 0 (d^2 <= 1e-20 |P|^2) contributing nothing.  Written as
    c0_j (P_0 - h_j) + c1_j (P_1 - h_j), so that every loop runs over the samples of the
    block with the unit fixed (they vectorise; per-sample loops over the units were 1.8x
    `none`). The sums over the samples (class sums, class weights, the score) run in the
    eight fixed lanes of lanes.py: as ordered scalar sums they took a third of the stage.
    """
    _, par, hyper, state, teacher, key, stats = rule
    Z, Z2, F, P, U, S = bufs
    K = Z.shape[0]
    BM = Z.shape[1]
    nb = j1 - j0
    ng = nb // LANES  # whole groups of the lane sums; the samples from nl on are added after
    nl = ng * LANES
    C = P[1]
    # the block's labels and weights as views: y[j0 + jj] with a run-time j0 compiled to
    # a gather (numba's check for a negative index), yb[jj] to a vector load
    yb = y[j0:j1]
    ob = omega[j0:j1]
    refresh = t % int(hyper[H_PROTO_EVERY]) == 0
    work = np.empty((7, nb))  # one allocation per block
    w_all = work[0]  # omega_j in float64
    w_neg = work[1]  # omega_j of the samples of each class, 0 for the others
    w_pos = work[2]
    for jj in range(nb):
        wj = np.float64(ob[jj])
        pos = yb[jj] > 0
        w_all[jj] = wj
        w_pos[jj] = wj if pos else 0.0
        w_neg[jj] = 0.0 if pos else wj
    d0 = work[3]  # squared distances to P_0 (y = -1) and P_1 (y = +1), then c0 and c1
    d1 = work[4]
    sp = work[5]  # the margin Delta_j, then sigmoid(Delta_j)
    sn = work[6]  # sigmoid(-Delta_j)
    if refresh:  # the class weights, the same for every modality
        tn = _lane_sum(w_neg, 0, ng)
        tp = _lane_sum(w_pos, 0, ng)
        for jj in range(nl, nb):
            tn += w_neg[jj]
            tp += w_pos[jj]
        for r in range(K):
            S[1, r] += tn
            S[2, r] += tp
    for r in range(K):
        st = state[r]
        lam = st[2 * BM + 2]
        ready = st[2 * BM + 3] != 0.0
        h = U[r]
        if refresh:
            for bi in range(BM):
                hb = h[bi]
                cn = _lane_dot(w_neg, 0, hb, 0, ng)
                cp = _lane_dot(w_pos, 0, hb, 0, ng)
                for jj in range(nl, nb):
                    cn += w_neg[jj] * hb[jj]
                    cp += w_pos[jj] * hb[jj]
                S[3 + bi, r] += cn
                S[3 + BM + bi, r] += cp
        pull = ready and lam != 0.0
        if ready:
            for jj in range(nb):
                d0[jj] = 0.0
                d1[jj] = 0.0
            for bi in range(BM):
                hb = h[bi]
                p0 = st[bi]
                p1 = st[BM + bi]
                for jj in range(nb):
                    e0 = hb[jj] - p0
                    e1 = hb[jj] - p1
                    d0[jj] += e0 * e0
                    d1[jj] += e1 * e1
            # per sample, in loops without branches, so that they vectorise. With
            # y_j = +-1 the margin is y_j (d_0 - d_1) and the pull
            # E = c0 (P_0 - h) + c1 (P_1 - h) has c0 = -y g / d_0, c1 = y g / d_1
            # (g = lam omega (-sigmoid(-Delta))); a distance within rounding of 0
            # (d^2 <= 1e-20 |P|^2, no direction) has inverse 0
            t0 = PMR_TOL * st[2 * BM]
            t1 = PMR_TOL * st[2 * BM + 1]
            for jj in range(nb):
                a0 = d0[jj]
                a1 = d1[jj]
                r0 = math.sqrt(a0)
                r1 = math.sqrt(a1)
                sp[jj] = np.float64(yb[jj]) * (r0 - r1)  # the margin Delta_j
                d0[jj] = 1.0 / r0 if a0 > t0 else 0.0
                d1[jj] = 1.0 / r1 if a1 > t1 else 0.0
            for jj in range(nb):  # both sigmoids from one exp and one division
                u = sp[jj]
                e = _exp_nonpos(-abs(u))
                inv = 1.0 / (1.0 + e)
                sp[jj] = (1.0 if u >= 0.0 else e) * inv
                sn[jj] = (e if u >= 0.0 else 1.0) * inv
            ps = _lane_dot(w_all, 0, sp, 0, ng)
            for jj in range(nl, nb):
                ps += w_all[jj] * sp[jj]
            S[0, r] += ps
            if pull:
                for jj in range(nb):
                    yg = np.float64(yb[jj]) * (lam * w_all[jj] * -sn[jj])
                    d0[jj] = -yg * d0[jj]
                    d1[jj] = yg * d1[jj]
        for bi in range(BM):
            s = 1.0 if bi < m else -1.0
            z = Z[r, bi]
            if pull:
                hb = h[bi]
                p0 = st[bi]
                p1 = st[BM + bi]
                for jj in range(nb):
                    z[jj] = (s * C[r, jj] + (d0[jj] * (p0 - hb[jj]) + d1[jj] * (p1 - hb[jj]))
                             ) * z[jj]
            else:
                for jj in range(nb):
                    z[jj] = (s * C[r, jj]) * z[jj]


@jit()
def _state_ok(rule, W):
    """Whether the rule's state has the shape its method needs on weights W (K, B, m, D)."""
    code = _rule_code(rule)
    state = rule[3]
    K, B, m, D = W.shape
    if code == PMR:
        return state.shape[0] == K and state.shape[1] == 2 * B * m + 4
    if code == INFOREG:
        return state.shape[0] == K and state.shape[1] > B * m * D + 4 \
            and state.shape[1] - B * m * D - 3 > _hyper_window(rule)
    return True


@jit()
def _hyper_window(rule):
    return int(rule[2][H_TRACE_WINDOW])


@jit()
def _inforeg_step(rule, W, dims, G, S, t):
    """inforeg once per step (docs/methods.md): at an epoch's first step the anchor becomes W
    and the window statistic k_r is taken from the closed epoch traces; the leader's
    gradient gets beta (W_l - W^a_l); every encoder's epoch trace adds its squared applied
    gradient over its number of weights."""
    _, par, hyper, state, teacher, key, stats = rule
    K, B, m, D = W.shape
    BMD = B * m * D
    ring = state.shape[1] - BMD - 3
    every = int(hyper[H_EVERY])
    window = int(hyper[H_TRACE_WINDOW])
    if t % every == 0:
        for r in range(K):
            st = state[r]
            for b in range(B):
                for i in range(m):
                    for k in range(D):
                        st[(b * m + i) * D + k] = W[r, b, i, k]
            ne = int(st[BMD + ring + 2])
            if t > 0:  # close the previous epoch
                st[BMD + ne % ring] = st[BMD + ring]
                st[BMD + ring] = 0.0
                ne += 1
                st[BMD + ring + 2] = ne
            kr = 1.0
            if ne > 0:  # means of the last ``window`` traces and of the window before
                tr1 = 0.0
                for e in range(ne - window, ne):
                    tr1 += st[BMD + e % ring] if e >= 0 else 0.0
                tr2 = 0.0
                for e in range(ne - 1 - window, ne - 1):
                    tr2 += st[BMD + e % ring] if e >= 0 else 0.0
                tr1 /= window
                tr2 /= window
                kr = (tr1 - tr2) / tr1 if tr1 != 0.0 else 0.0
            st[BMD + ring + 1] = kr
    lead = 0
    for r in range(1, K):
        if S[0, r] > S[0, lead]:
            lead = r
    beta = 0.0
    if K > 1:
        gap = S[0, lead] - _others_mean(S[0], lead)
        if state[lead, BMD + ring + 1] > hyper[H_THRESHOLD] and gap > 0.0:
            beta = hyper[H_PROX_WEIGHT] * math.exp(math.tanh(hyper[H_GAP_SCALE] * gap))
    if beta != 0.0:
        st = state[lead]
        for b in range(B):
            for i in range(m):
                for k in range(dims[lead]):
                    G[lead, b, i, k] += beta * (W[lead, b, i, k] - st[(b * m + i) * D + k])
    for r in range(K):
        tot = 0.0
        for b in range(B):
            for i in range(m):
                for k in range(dims[r]):
                    g = np.float64(G[r, b, i, k])
                    tot += g * g
        state[r, BMD + ring] += tot / (B * m * dims[r])
        stats[S_SCORE, r] = S[0, r]
        stats[S_RATIO, r] = state[r, BMD + ring + 1]
        stats[S_SCALE, r] = beta if r == lead else 0.0


@jit()
def _opm_drops(rule, t):
    """Whether opm drops at step t: in its window, the step's coin (a draw at (key, t, 0, 0),
    a position no mask uses) under execute_prob, and some q_r > 0."""
    hyper, state, key = rule[2], rule[3], rule[5]
    if not (hyper[H_START] <= t < hyper[H_STOP]):
        return False
    if not (_uniform(key, t, 0, 0) < hyper[H_EXECUTE_PROB]):
        return False
    for r in range(state.shape[1]):
        if state[0, r] > 0.0:
            return True
    return False


@jit()
def _opm_step(rule, S, t):
    """opm once per step: its statistics (the q_r this step used), then q_r of the next step
    from this step's score ratios (0 outside the window and for a modality not ahead)."""
    _, par, hyper, state, teacher, key, stats = rule
    K = stats.shape[1]
    for r in range(K):
        rho = S[0, r] / _others_mean(S[0], r) if K > 1 else 1.0
        stats[S_SCORE, r] = S[0, r]
        stats[S_RATIO, r] = rho
        stats[S_SCALE, r] = state[0, r]
    nxt = hyper[H_START] <= t + 1 < hyper[H_STOP]
    for r in range(K):
        q = 0.0
        if nxt:
            g = math.tanh(max(stats[S_RATIO, r] - 1.0, 0.0))
            if g > 0.0:
                q = min(1.0, hyper[H_Q_BASE] * (1.0 + hyper[H_ALPHA] * g))
        state[0, r] = q


@jit()
def _acc_rows(rule, BM):
    """Rows of the step's accumulated statistics S: N_ACC, or pmr's class sums of its units."""
    if _rule_code(rule) == PMR:
        return max(N_ACC, 3 + 2 * BM)
    return N_ACC


@jit()
def _pmr_step(rule, S, t):
    """pmr once per step: its statistics, lam_r of the next step from this step's prototype
    scores, then the prototypes refreshed from this step's class means (at refresh steps)."""
    _, par, hyper, state, teacher, key, stats = rule
    K = stats.shape[1]
    BM = (state.shape[1] - 4) // 2
    ready = state[0, 2 * BM + 3] != 0.0
    best = -np.inf
    for r in range(K):
        best = max(best, S[0, r])
    for r in range(K):
        pscore = S[0, r] if ready else np.nan
        stats[S_SCORE, r] = pscore
        stats[S_RATIO, r] = pscore / best if ready else np.nan
        stats[S_SCALE, r] = state[r, 2 * BM + 2]
    nxt = hyper[H_START] <= t + 1 < hyper[H_STOP]
    for r in range(K):
        lam = 0.0
        if ready and nxt:
            lam = hyper[H_ALPHA] * min(max(best / S[0, r] - 1.0, 0.0), 1.0)
        state[r, 2 * BM + 2] = lam
    if t % int(hyper[H_PROTO_EVERY]) == 0:
        mom = hyper[H_MOMENTUM]
        for r in range(K):
            st = state[r]
            for c in range(2):
                wc = S[1 + c, r]
                nn = 0.0
                for bi in range(BM):
                    cm = S[3 + c * BM + bi, r] / wc if wc > 0.0 else 0.0
                    v = (1.0 - mom) * cm + mom * st[c * BM + bi] if ready else cm
                    st[c * BM + bi] = v
                    nn += v * v
                st[2 * BM + c] = nn
            st[2 * BM + 3] = 1.0


@jit()
def _greedy_coef(state, y, omega, j0, nb, F, phi, C, S, buf):
    """greedy's coefficients of one block and its sums S[0, r] = sum_j omega_j sigma(y_j (f_j -
    phi_{j,r})), S[1, 0] = sum_j omega_j sigma(y_j f_j), S[2, r] = sum_j omega_j phi_{j,r}.

    In a re-balancing step (state[1, 0] = 1) the cared encoder c = state[1, 1] trains on
    l(y (phi_c + sum_{s != c} mbar_s)), mbar (state[0]) the mean outputs of the previous step.
    ``buf`` (K, BLOCK) is scratch.  The sigmoids are computed in loops of their own, apart
    from the sums (which keep the sample order), so that they vectorise.
    """
    K = phi.shape[0]
    for r in range(K):
        pr = buf[r]
        for jj in range(nb):
            u = np.float64(y[j0 + jj]) * (F[jj] - phi[r, jj])
            e = _exp_nonpos(-abs(u))
            pr[jj] = (1.0 if u >= 0.0 else e) / (1.0 + e)
        for jj in range(nb):
            S[0, r] += np.float64(omega[j0 + jj]) * pr[jj]
        for jj in range(nb):
            S[2, r] += np.float64(omega[j0 + jj]) * phi[r, jj]
    pf = buf[0]
    for jj in range(nb):
        u = np.float64(y[j0 + jj]) * F[jj]
        e = _exp_nonpos(-abs(u))
        pf[jj] = (1.0 if u >= 0.0 else e) / (1.0 + e)
    for jj in range(nb):
        S[1, 0] += np.float64(omega[j0 + jj]) * pf[jj]
    for r in range(K):
        for jj in range(nb):
            C[r, jj] = np.float64(omega[j0 + jj]) * F[BLOCK + jj]  # plain: F[BLOCK:] = y l'(y f)
    if state[1, 0] != 0.0:
        c = np.int64(state[1, 1])
        tot = 0.0
        for s in range(K):
            tot += state[0, s]
        M = tot - state[0, c]
        for jj in range(nb):
            C[c, jj] = np.float64(omega[j0 + jj]) * _dlogistic(np.float64(y[j0 + jj]),
                                                               phi[c, jj] + M)


@jit()
def _greedy_step(state, hyper, S, stats, t):
    """greedy's controller after step t's sums: utilisation rates, trigger, window, mbar."""
    K = stats.shape[1]
    best, worst, argworst = -np.inf, np.inf, 0
    for r in range(K):
        util = (S[1, 0] - S[0, r]) / S[1, 0]
        stats[S_SCORE, r] = util
        stats[S_SCALE, r] = 0.0
        if util > best:
            best = util
        if util < worst:
            worst, argworst = util, r
    ctl = state[1]
    if ctl[0] != 0.0:  # a re-balancing step was taken
        stats[S_SCALE, np.int64(ctl[1])] = 1.0
        ctl[2] += 1.0
        if ctl[2] == hyper[H_WINDOW]:
            ctl[0] = 0.0
    elif t >= hyper[H_GSTART] and best - worst > hyper[H_EPSILON]:
        ctl[0], ctl[1], ctl[2] = 1.0, float(argworst), 0.0
    for r in range(K):
        state[0, r] = S[2, r]


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
    yb = y[j0:j1]  # views: y[j0 + jj] compiled to gathers (see _pmr_coef)
    ob = omega[j0:j1]
    _block_units_split(unit, m, nb, Z, F, P[0], U)
    loss = 0.0
    if need_loss:
        for jj in range(nb):
            u = -np.float64(yb[jj]) * F[jj]
            e = _exp_nonpos(-abs(u))
            loss += np.float64(ob[jj]) * (max(u, 0.0) + math.log1p(e))
    # The bound's terms first (a loop that vectorises), then their sum in eight lanes (the
    # bound only decides finiteness: no result depends on its rounding).
    for jj in range(nb):
        u = -np.float64(yb[jj]) * F[jj]
        e = _exp_nonpos(-abs(u))
        F[BLOCK + jj] = abs(np.float64(ob[jj])) * (max(u, 0.0) + e)
    ng = nb // LANES
    bound = _lane_sum(F, BLOCK, ng)
    for jj in range(ng * LANES, nb):
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
    if code == RELEARNING:
        if state[3, 0] > 0.0:  # the last diagnosis: purities on train / held-out, strength
            for r in range(K):
                stats[S_SCORE, r], stats[S_RATIO, r] = state[0, r], state[1, r]
                stats[S_SCALE, r] = state[2, r]
        return
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
    elif code == PMR:
        _pmr_step(rule, S, t)
    elif code == INFOREG:
        _inforeg_step(rule, W, dims, G, S, t)
    elif code == OPM:
        _opm_step(rule, S, t)
    elif code == GREEDY:
        _greedy_step(state, hyper, S, stats, t)
    elif code == GBLENDING:
        for r in range(K):
            stats[S_SCORE, r], stats[S_RATIO, r] = state[2, r], state[1, 0]
            stats[S_SCALE, r] = state[0, r]
    elif code == RECONBOOST:
        rs = _reconboost_boosted(hyper, t, K)
        for r in range(K):
            k = 1.0 if (rs < 0 or r == rs) else 0.0
            stats[S_SCALE, r] = k
            stats[S_K, r] = k
        if rs >= 0:
            stats[S_SCORE, rs] = S[0, rs]


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
