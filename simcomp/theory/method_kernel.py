"""The compiled step loop of :func:`simcomp.theory.mitigation.method_dynamics`.

One GD step of a method's reduced dynamics (docs/methods.md) on the
2^(K+1) patterns: the encoder outputs of every pattern from the alignments,
the method's step scales (ogm, agm), the derivative D of its loss with
respect to each encoder output, the alignment gradient, mmpareto's
combination or umt's distillation pull, and the update.  Everything is
O(K B m P) per step with P <= 2^(K+1): about a microsecond a step at K = 2,
m = 16 on the development machine, where the Python loop it replaced spent
40-60 microseconds a step.

The arithmetic is that of the vectorised NumPy version kept in
``tests/reference_method_dynamics.py`` (the tests compare every method with
it); sums run in index order, so results agree to rounding.  The
wrapper in :mod:`simcomp.theory.mitigation` validates and prepares every
argument; nothing here checks.
"""

from __future__ import annotations

import math

import numpy as np

from simcomp._jit import jit
from simcomp.registry import REGISTRY
from simcomp.theory.reduced import _mark_learned, _record

# Method codes of the kernel (``METHOD_CODE`` maps the names): the methods that
# share a code share their reduced dynamics (ogm_ge's noise has mean zero; ume
# is the uni-modal runs, as alternating).
(NONE, LR_SCALE, OGM, AGM, AUX, ALTERNATING, MMPARETO, UMT, DROPOUT, OGM_BOOST, PMR,
 INFOREG, OPM, RECONBOOST, GREEDY) = range(15)
_DYNAMICS = {"none": NONE, "lr_scale": LR_SCALE, "ogm": OGM, "agm": AGM, "aux": AUX,
             "alternating": ALTERNATING, "mmpareto": MMPARETO, "umt": UMT, "dropout": DROPOUT,
             "ogm_boost": OGM_BOOST, "pmr": PMR, "inforeg": INFOREG, "opm": OPM,
             "reconboost": RECONBOOST, "greedy": GREEDY}
# The settings a method's theory step reads beyond (alpha, start, stop) and aux's, in the
# order of the ``extra`` array, and the shape of its state (K, B, m) -> (rows, cols).
EXTRA = {"ogm_boost": ("boost",), "pmr": ("momentum", "proto_every"),
         "opm": ("q_base", "execute_prob"),
         "inforeg": ("prox_weight", "gap_scale", "threshold", "trace_window", "every"),
         "reconboost": ("boost_steps", "correct_steps", "boost_weight", "ensemble_weight"),
         "greedy": ("epsilon", "window", "start")}
_RING = 101  # inforeg: the last trace_window + 1 <= 101 epoch traces
STATE = {"pmr": lambda K, B, m: (K, 2 * B * m + 4), "opm": lambda K, B, m: (1, K),
         "inforeg": lambda K, B, m: (K, B * m + _RING + 3),
         # greedy: the previous step's mean outputs; curating, cared modality, counter
         "greedy": lambda K, B, m: (2, max(K, 3))}
PMR_TOL = 1e-20
# every registered method's code: that of the dynamics its spec names
METHOD_CODE = {name: _DYNAMICS[spec.dynamics] for name, spec in REGISTRY.items()}
# Forms of the unit: psi of the symmetric learner, srelu or ReLU of the class banks.
SYMMETRIC, SRELU, RELU = range(3)


@jit()
def _srelu_val(z, q, rho):
    """(srelu(z), srelu'(z)) as the NumPy reference computes them (powers, not products);
    the comparisons in its order, so that a nan gives (nan, 1) as there."""
    if z <= 0.0:
        return 0.0, 0.0
    if z <= rho:
        return z**q / (q * rho ** (q - 1.0)), (z / rho) ** (q - 1.0)
    return z - (1.0 - 1.0 / q) * rho, 1.0


@jit()
def _unit(z, form, q, rho):
    """(h(z), h'(z)) of one unit; a nan propagates as in the NumPy reference."""
    if form == SYMMETRIC:  # psi(z) = sign(z) srelu(|z|), psi'(z) = srelu'(|z|)
        v, d = _srelu_val(abs(z), q, rho)
        if z > 0.0:
            return v, d
        if z < 0.0:
            return -v, d
        return (0.0 if z == 0.0 else z), d
    if form == SRELU:
        return _srelu_val(z, q, rho)
    if z > 0.0:
        return z, 1.0
    return (0.0 if z == z else z), 0.0


@jit()
def _sigmoid(u):
    """exp(-logaddexp(0, -u)), the reference's sigmoid."""
    if u >= 0.0:
        return math.exp(-math.log1p(math.exp(-u)))
    return math.exp(-(-u + math.log1p(math.exp(u))))


@jit()
def _encoders(a, ysb, form, q, rho, h, dh, phi):
    """h, h' (K, B, m, P) at the alignments and phi (P, K); z = c a y s beta."""
    K, B, m = a.shape
    P = ysb.shape[1]
    for p in range(P):
        for r in range(K):
            phi[p, r] = 0.0
    for r in range(K):
        for b in range(B):
            c = 1.0 if b == 0 else -1.0
            for i in range(m):
                for p in range(P):
                    v, d = _unit(c * a[r, b, i] * ysb[r, p], form, q, rho)
                    h[r, b, i, p] = v
                    dh[r, b, i, p] = d
    for p in range(P):
        for r in range(K):
            tot = 0.0
            for b in range(B):
                c = 1.0 if b == 0 else -1.0
                sub = 0.0
                for i in range(m):
                    sub += h[r, b, i, p]
                tot += c * sub
            phi[p, r] = tot


@jit()
def _others_mean(x, r):
    tot = 0.0
    for j in range(x.size):
        tot += x[j]
    return (tot - x[r]) / (x.size - 1)


@jit()
def _step_scales(code, t, active, alpha, y, w, phi, sbar, k, score, ratio, scale_rec):
    """k_r of ogm / agm at step t; records score, ratio and scale; updates agm's mean score."""
    P, K = phi.shape
    for r in range(K):
        k[r] = 1.0
    if code != OGM and code != AGM and code != OGM_BOOST:
        return
    sc = np.zeros(K)
    for r in range(K):
        tot = 0.0
        for p in range(P):
            sg = _sigmoid(y[p] * phi[p, r])
            tot += w[p] * (-math.log(max(sg, 1e-8)) if code == AGM else sg)
        sc[r] = tot
        score[t, r] = tot
    if K >= 2:
        for r in range(K):
            if code == AGM:
                rt = math.exp(_others_mean(sc, r) - sc[r])
                optimal = math.exp(_others_mean(sbar, r) - sbar[r])
                k_on = math.exp(alpha * min(optimal - rt, 10.0))
            elif code == OGM_BOOST:  # ``alpha`` is its boost here
                rt = sc[r] / _others_mean(sc, r)
                k_on = alpha if rt < 1.0 else 1.0
            else:
                rt = sc[r] / _others_mean(sc, r)
                k_on = 1.0 - math.tanh(alpha * rt) if rt > 1.0 else 1.0
            ratio[t, r] = rt
            if active:
                k[r] = k_on
    for r in range(K):
        scale_rec[t, r] = k[r]
    if code == AGM:
        for r in range(K):
            sbar[r] = (t * sbar[r] + sc[r]) / (t + 1)


@jit()
def _loss_derivative(code, y, w, phi, fused_weight, aux_weight, gains, probs, D):
    """D (P, K): the derivative of the method's loss with respect to phi_r on each pattern."""
    P, K = phi.shape
    for p in range(P):
        wy = w[p] * y[p]
        if code == DROPOUT:  # expected update: the average over the mask patterns
            for r in range(K):
                D[p, r] = 0.0
            for j in range(probs.size):
                ftil = 0.0
                for r in range(K):
                    ftil += phi[p, r] * gains[j, r]
                lp = -_sigmoid(-(y[p] * ftil))
                for r in range(K):
                    D[p, r] += probs[j] * (wy * lp) * gains[j, r]
            continue
        f = 0.0
        for r in range(K):
            f += phi[p, r]
        lf = -_sigmoid(-(y[p] * f))
        for r in range(K):
            if code == AUX or code == INFOREG:  # inforeg: the aux form with w_0 = 1
                w0 = 1.0 if code == INFOREG else fused_weight
                D[p, r] = wy * (w0 * lf + aux_weight[r] * -_sigmoid(-(y[p] * phi[p, r])))
            elif code == ALTERNATING:
                D[p, r] = wy * -_sigmoid(-(y[p] * phi[p, r]))
            else:
                D[p, r] = wy * lf


@jit()
def _gradient(D, dh, ysb, grad):
    """grad[r, b, i] = sum_p D[p, r] h'(z_{r,b,i,p}) y_p s_{p,r} beta_r."""
    K, B, m, P = dh.shape
    for r in range(K):
        for b in range(B):
            for i in range(m):
                tot = 0.0
                for p in range(P):
                    tot += D[p, r] * (dh[r, b, i, p] * ysb[r, p])
                grad[r, b, i] = tot


@jit()
def _mmpareto_combine(g_m, g_u, out):
    """MMPareto's combined direction of one encoder's two gradients (B, m) into ``out``;
    returns the cosine and the scale."""
    mm = uu = mu = 0.0
    for b in range(g_m.shape[0]):
        for i in range(g_m.shape[1]):
            mm += g_m[b, i] * g_m[b, i]
            uu += g_u[b, i] * g_u[b, i]
            mu += g_m[b, i] * g_u[b, i]
    cos = mu / math.sqrt(mm * uu) if mm > 0.0 and uu > 0.0 else 0.0
    if cos > 0.0:
        k0 = 0.5
    else:
        den = mm + uu - 2.0 * mu  # |g_m - g_u|^2
        k0 = min(max((uu - mu) / den, 0.001), 0.999) if den > 0.0 else 0.5
    nn = 0.0
    for b in range(g_m.shape[0]):
        for i in range(g_m.shape[1]):
            v = 2.0 * k0 * g_m[b, i] + 2.0 * (1.0 - k0) * g_u[b, i]
            out[b, i] = v
            nn += v * v
    n_new = math.sqrt(nn)
    n_sum = math.sqrt(mm + uu + 2.0 * mu)
    scale = 1.5 * max(1.0, n_sum / n_new) if n_new > 0.0 else 1.5
    for b in range(g_m.shape[0]):
        for i in range(g_m.shape[1]):
            out[b, i] *= scale
    return cos, scale


@jit()
def _pmr_step(t, h, dh, ysb, w, y, st, alpha, start, stop, extra, step, score, ratio,
              scale_rec):
    """pmr on the patterns (docs/theory.md 15.4): the prototype pull U_r[Y] added to ``step``
    with the prototypes and lam_r of the state, the statistics, then lam_r of the next step
    and the prototypes refreshed from this step's class means (the state ``st`` (K, 2F + 4)
    is laid out as the trainer's)."""
    K, B, m, P = h.shape
    F = B * m
    momentum, every = extra[0], int(extra[1])
    ready = st[0, 2 * F + 3] != 0.0
    ps = np.zeros(K)
    for r in range(K):
        lam = st[r, 2 * F + 2]
        for p in range(P):
            own = 1 if y[p] > 0 else 0
            d_own = 0.0
            d_oth = 0.0
            for b in range(B):
                for i in range(m):
                    v = h[r, b, i, p]
                    e1 = v - st[r, own * F + b * m + i]
                    e2 = v - st[r, (1 - own) * F + b * m + i]
                    d_own += e1 * e1
                    d_oth += e2 * e2
            if not ready:
                continue
            margin = math.sqrt(d_oth) - math.sqrt(d_own)
            ps[r] += w[p] * _sigmoid(margin)
            if lam == 0.0:
                continue
            g = lam * w[p] * -_sigmoid(-margin)
            a_oth = g / math.sqrt(d_oth) if d_oth > PMR_TOL * st[r, 2 * F + 1 - own] else 0.0
            a_own = -g / math.sqrt(d_own) if d_own > PMR_TOL * st[r, 2 * F + own] else 0.0
            for b in range(B):
                c = 1.0 if b == 0 else -1.0
                for i in range(m):
                    v = h[r, b, i, p]
                    unit = a_oth * (v - st[r, (1 - own) * F + b * m + i]) \
                        + a_own * (v - st[r, own * F + b * m + i])
                    step[r, b, i] += c * (unit * dh[r, b, i, p] * ysb[r, p])
    best = -np.inf
    for r in range(K):
        best = max(best, ps[r])
    for r in range(K):
        score[t, r] = ps[r] if ready else np.nan
        ratio[t, r] = ps[r] / best if ready else np.nan
        scale_rec[t, r] = st[r, 2 * F + 2]
        lam = 0.0
        if ready and start <= t + 1 < stop:
            lam = alpha * min(max(best / ps[r] - 1.0, 0.0), 1.0)
        st[r, 2 * F + 2] = lam
    if t % every == 0:
        for r in range(K):
            for c in range(2):
                lab = 1.0 if c == 1 else -1.0
                wc = 0.0
                for p in range(P):
                    if y[p] == lab:
                        wc += w[p]
                nn = 0.0
                for b in range(B):
                    for i in range(m):
                        tot = 0.0
                        for p in range(P):
                            if y[p] == lab:
                                tot += w[p] * h[r, b, i, p]
                        cm = tot / wc if wc > 0.0 else 0.0
                        j = c * F + b * m + i
                        st[r, j] = (1.0 - momentum) * cm + momentum * st[r, j] if ready else cm
                        nn += st[r, j] * st[r, j]
                st[r, 2 * F + c] = nn
            st[r, 2 * F + 3] = 1.0


@jit()
def _opm_step(t, y, w, phi, st, alpha, start, stop, extra, D, score, ratio, scale_rec):
    """opm's expected update (docs/theory.md 15.3): with the q_r of the state (set from the
    previous step's scores), D becomes (1 - e) D + e sum_delta pi(delta) D^delta over the
    2^K masks, e = execute_prob; then the statistics and q_r of the next step."""
    P, K = phi.shape
    q_base, e = extra[0], extra[1]
    q = st[0]
    theta = 0.0
    for r in range(K):
        theta += q[r]
    theta /= K
    if start <= t < stop and theta > 0.0:
        g = 1.0 / (1.0 - theta)
        for p in range(P):
            wy = w[p] * y[p]
            acc = np.zeros(K)
            for mask in range(1 << K):
                prob = 1.0
                ft = 0.0
                for r in range(K):
                    if (mask >> r) & 1:
                        prob *= 1.0 - q[r]
                        ft += phi[p, r]
                    else:
                        prob *= q[r]
                if prob == 0.0:
                    continue
                lp = -_sigmoid(-(y[p] * (g * ft)))
                for r in range(K):
                    if (mask >> r) & 1:
                        acc[r] += prob * (wy * lp) * g
            for r in range(K):
                D[p, r] = (1.0 - e) * D[p, r] + e * acc[r]
    sc = np.zeros(K)
    for r in range(K):
        tot = 0.0
        for p in range(P):
            tot += w[p] * _sigmoid(y[p] * phi[p, r])
        sc[r] = tot
    for r in range(K):
        rt = sc[r] / _others_mean(sc, r) if K > 1 else 1.0
        score[t, r] = sc[r]
        ratio[t, r] = rt
        scale_rec[t, r] = q[r]
        qn = 0.0
        if start <= t + 1 < stop:
            gr = math.tanh(max(rt - 1.0, 0.0))
            if gr > 0.0:
                qn = min(1.0, q_base * (1.0 + alpha * gr))
        q[r] = qn


@jit()
def _inforeg_step(t, a, y, w, phi, st, extra, step, score, ratio, scale_rec):
    """inforeg on the patterns (docs/theory.md 15.8), after the aux-form ``step``: at an
    epoch's first step the anchor alignments and the window statistic k_r; the leader's
    proximal pull beta (a_l - a^a_l) added to ``step``; each epoch trace adds the squared
    alignment-space step (the state ``st`` (K, B m + 104) as the trainer's, in alignments)."""
    K, B, m = a.shape
    P = y.size
    BM = B * m
    ring = st.shape[1] - BM - 3
    prox, gap_scale, threshold = extra[0], extra[1], extra[2]
    window, every = int(extra[3]), int(extra[4])
    if t % every == 0:
        for r in range(K):
            for b in range(B):
                for i in range(m):
                    st[r, b * m + i] = a[r, b, i]
            ne = int(st[r, BM + ring + 2])
            if t > 0:
                st[r, BM + ne % ring] = st[r, BM + ring]
                st[r, BM + ring] = 0.0
                ne += 1
                st[r, BM + ring + 2] = ne
            kr = 1.0
            if ne > 0:
                tr1 = 0.0
                for e in range(ne - window, ne):
                    tr1 += st[r, BM + e % ring] if e >= 0 else 0.0
                tr2 = 0.0
                for e in range(ne - 1 - window, ne - 1):
                    tr2 += st[r, BM + e % ring] if e >= 0 else 0.0
                tr1 /= window
                tr2 /= window
                kr = (tr1 - tr2) / tr1 if tr1 != 0.0 else 0.0
            st[r, BM + ring + 1] = kr
    sc = np.zeros(K)
    for r in range(K):
        tot = 0.0
        for p in range(P):
            tot += w[p] * _sigmoid(y[p] * phi[p, r])
        sc[r] = tot
    lead = 0
    for r in range(1, K):
        if sc[r] > sc[lead]:
            lead = r
    beta = 0.0
    if K > 1:
        gap = sc[lead] - _others_mean(sc, lead)
        if st[lead, BM + ring + 1] > threshold and gap > 0.0:
            beta = prox * math.exp(math.tanh(gap_scale * gap))
    for b in range(B):
        for i in range(m):
            step[lead, b, i] += beta * (a[lead, b, i] - st[lead, b * m + i])
    for r in range(K):
        tot = 0.0
        for b in range(B):
            for i in range(m):
                tot += step[r, b, i] * step[r, b, i]
        st[r, BM + ring] += tot
        score[t, r] = sc[r]
        ratio[t, r] = st[r, BM + ring + 1]
        scale_rec[t, r] = beta if r == lead else 0.0


@jit()
def _reconboost_boosted(extra, t, K):
    """The modality reconboost boosts at step t (-1: a correcting step)."""
    bs = np.int64(extra[0])
    L = bs + np.int64(extra[1])
    if t % L < bs:
        return (t // L) % K
    return -1


@jit()
def _reconboost_step(extra, t, y, w, phi, D, k, score, scale_rec):
    """reconboost's coefficients and k_r at step t (D is plain on entry)."""
    P, K = phi.shape
    rs = _reconboost_boosted(extra, t, K)
    if rs >= 0:
        w1, w2 = extra[2], extra[3]
        tot = 0.0
        for p in range(P):
            f = 0.0
            for r in range(K):
                f += phi[p, r]
            qp = _sigmoid(y[p] * (f - phi[p, rs]))
            tot += w[p] * qp
            for r in range(K):
                D[p, r] = 0.0
            D[p, rs] = w[p] * y[p] * ((w1 - w2 * qp) / 2.0) * -_sigmoid(-(y[p] * phi[p, rs]))
        score[t, rs] = tot
    for r in range(K):
        k[r] = 1.0 if (rs < 0 or r == rs) else 0.0
        scale_rec[t, r] = k[r]


@jit()
def _greedy_step(extra, t, y, w, phi, D, mstate, score, scale_rec):
    """greedy's controller and coefficients at step t (D is plain on entry).

    ``mstate`` row 0: the mean outputs of the previous step; row 1: curating, cared, counter.
    """
    P, K = phi.shape
    sf = 0.0
    for p in range(P):
        f = 0.0
        for r in range(K):
            f += phi[p, r]
        sf += w[p] * _sigmoid(y[p] * f)
    best, worst, argworst = -np.inf, np.inf, 0
    for r in range(K):
        sr = 0.0
        for p in range(P):
            f = 0.0
            for k in range(K):
                f += phi[p, k]
            sr += w[p] * _sigmoid(y[p] * (f - phi[p, r]))
        util = (sf - sr) / sf
        score[t, r] = util
        scale_rec[t, r] = 0.0
        if util > best:
            best = util
        if util < worst:
            worst, argworst = util, r
    ctl = mstate[1]
    if ctl[0] != 0.0:  # a re-balancing step for the cared modality c
        c = np.int64(ctl[1])
        tot = 0.0
        for r in range(K):
            tot += mstate[0, r]
        M = tot - mstate[0, c]
        for p in range(P):
            D[p, c] = w[p] * y[p] * -_sigmoid(-(y[p] * (phi[p, c] + M)))
        scale_rec[t, c] = 1.0
        ctl[2] += 1.0
        if ctl[2] == extra[1]:
            ctl[0] = 0.0
    elif t >= extra[2] and best - worst > extra[0]:
        ctl[0], ctl[1], ctl[2] = 1.0, float(argworst), 0.0
    for r in range(K):
        tot = 0.0
        for p in range(P):
            tot += w[p] * phi[p, r]
        mstate[0, r] = tot


@jit()
def _method_kernel(a, beta, ysb, y, w, form, act, code, run, eta_r, ogm_agm, aux, gains, probs,
                   a_teacher, rec_steps, stats, work, span):
    """Steps ``t0 <= t < t1`` of the step loop of ``method_dynamics``.

    The loop is run in pieces (``span``) so that Python sees a signal between
    two of them (simcomp.interrupts); what one step hands to the next (the
    alignments, agm's mean score) is kept in ``a`` and ``work``, so the pieces
    give exactly the results of one uninterrupted loop.

    Parameters
    ----------
    a : (K, B, m) float64
        Alignments, updated in place.
    beta : (K,) float64
    ysb : (K, P) float64
        y_p s_{p,r} beta_r of every pattern.
    y, w : (P,) float64
        Pattern labels and weights.
    form : int
        SYMMETRIC, SRELU or RELU.
    act : tuple (q, rho)
    code : int
        The method's code (``METHOD_CODE``).
    run : tuple (thr, steps)
        Learn threshold on beta_r max alignment and the number of GD steps.
    eta_r : (K,) float64
        Learning rate per modality (lr_scale's included).
    ogm_agm : tuple (alpha, start, stop)
        Modulation strength and its active window [start, stop) (stop may be inf).
    aux : tuple (fused_weight, aux_weight (K,), distill_weight)
    gains, probs : (M, K), (M,) float64
        dropout: each mask pattern's gains on phi and its probability (else empty).
    a_teacher : (K, B, m) float64
        umt: the frozen teachers' alignments (else unused).
    rec_steps : (R,) int64
        Increasing steps to record, the last one ``steps``.
    stats : (4, steps, K) float64
        score, ratio, scale, cosine per step; filled where the method defines them.
    work : tuple (rec_a (R, K, B, m), learned (K, B) int64, sbar (K,), h_teacher (K, B, m, P),
            mstate (2, max(K, 3)))
        Outputs (recorded alignments, learned steps, -1 never), agm's running mean score,
        umt's teacher outputs (computed in the first piece) and a method's state (greedy's
        controller), kept across pieces.
    span : tuple (t0, t1, rec_i)
        The steps of this piece and the next record index.

    Returns
    -------
    int
        The next record index.
    """
    q, rho = act
    thr, steps = run
    alpha, start, stop = ogm_agm
    fused_weight, aux_weight, distill_weight, extra = aux
    rec_a, learned, sbar, h_teacher, mstate = work
    t0, t1, rec_i = span
    K, B, m = a.shape
    P = y.size
    h = np.empty((K, B, m, P))
    dh = np.empty((K, B, m, P))
    phi = np.empty((P, K))
    D = np.empty((P, K))
    grad = np.empty((K, B, m))
    step = np.empty((K, B, m))
    k = np.ones(K)
    if code == UMT and t0 == 0:
        _encoders(a_teacher, ysb, form, q, rho, h_teacher, dh, phi)
    grad_u = np.empty((K, B, m))
    D_u = np.empty((P, K))
    score, ratio, scale_rec, cosine = stats[0], stats[1], stats[2], stats[3]
    for t in range(t0, t1):
        _mark_learned(a, beta, thr, t, learned)
        if rec_steps[rec_i] == t:
            _record(rec_a, rec_i, a)
            rec_i += 1
        if t == steps:
            break
        _encoders(a, ysb, form, q, rho, h, dh, phi)
        _step_scales(code, t, start <= t < stop, extra[0] if code == OGM_BOOST else alpha, y, w,
                     phi, sbar, k, score, ratio, scale_rec)
        _loss_derivative(code, y, w, phi, fused_weight, aux_weight, gains, probs, D)
        if code == OPM:
            _opm_step(t, y, w, phi, mstate, alpha, start, stop, extra, D, score, ratio,
                      scale_rec)
        elif code == RECONBOOST:
            _reconboost_step(extra, t, y, w, phi, D, k, score, scale_rec)
        elif code == GREEDY:
            _greedy_step(extra, t, y, w, phi, D, mstate, score, scale_rec)
        _gradient(D, dh, ysb, grad)
        if code == MMPARETO:
            # the uni-modal losses' gradient, combined with the fused one per encoder
            _loss_derivative(ALTERNATING, y, w, phi, fused_weight, aux_weight, gains, probs, D_u)
            _gradient(D_u, dh, ysb, grad_u)
            for r in range(K):
                cosine[t, r], scale_rec[t, r] = _mmpareto_combine(grad[r], grad_u[r], step[r])
        else:
            for r in range(K):
                for b in range(B):
                    for i in range(m):
                        step[r, b, i] = k[r] * grad[r, b, i]
        if code == UMT:
            # distillation: the pull of each unit towards its frozen teacher's output
            pull = distill_weight * (2.0 / (B * m))
            for r in range(K):
                for b in range(B):
                    c = 1.0 if b == 0 else -1.0
                    for i in range(m):
                        tot = 0.0
                        for p in range(P):
                            coef = pull * w[p] * (h[r, b, i, p] - h_teacher[r, b, i, p]) \
                                * dh[r, b, i, p]
                            tot += coef * ysb[r, p]
                        step[r, b, i] += c * tot
        if code == INFOREG:
            _inforeg_step(t, a, y, w, phi, mstate, extra, step, score, ratio, scale_rec)
        if code == PMR:
            _pmr_step(t, h, dh, ysb, w, y, mstate, alpha, start, stop, extra, step, score,
                      ratio, scale_rec)
        for r in range(K):
            for b in range(B):
                for i in range(m):
                    a[r, b, i] = a[r, b, i] - eta_r[r] * step[r, b, i]
    return rec_i
