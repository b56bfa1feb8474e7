"""The reduced dynamics: exact gradient descent in alignment coordinates (docs/model.md 5.4).

On noise-free, distractor-free data the gradient of every neuron lies in
the span of its modality's signal atom, so the alignments a = c <w, v_r>
evolve on their own (docs/theory.md section 2).  :func:`reduced_dynamics`
runs that recursion compiled (:func:`_reduced_kernel` and its stages);
:func:`_reduced_dynamics_numpy` is the vectorised NumPy reference the tests
compare it with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simcomp._jit import jit
from simcomp.interrupts import chunks, deferred
from simcomp.theory.activation import _logistic, _pow_int, _srelu_pair
from simcomp.theory.patterns import _Forward

__all__ = ["ReducedDynamics", "reduced_dynamics"]


@dataclass
class ReducedDynamics:
    """Trajectory of the reduced (alignment-only) gradient descent.

    Attributes
    ----------
    steps : (R,) int
        Recorded steps: 0, record_every, 2 record_every, ... and always the last.
    alignment : (R, K_run, B, m)
        Alignments at the recorded steps.
    leading_alignment : (R, K_run)
        Max over banks and neurons.
    learned_step : (K_run,) int
        First step with beta_r * max alignment >= threshold (every step checked); -1 never.
    learned_step_bank : (K_run, B) int
        The same per bank.
    final_alignment : (K_run, B, m)
        Alignments after the last step.
    loss : (R,)
        Loss over the patterns (population loss for population patterns).
    """

    steps: np.ndarray
    alignment: np.ndarray
    leading_alignment: np.ndarray
    learned_step: np.ndarray
    learned_step_bank: np.ndarray
    final_alignment: np.ndarray
    loss: np.ndarray


# --------------------------------------------------------------------------- compiled stages
# One GD step of the kernel is four stages: mark newly learned banks, the
# per-neuron pass (activations summed per modality, slopes kept), the
# per-pattern pass (sigmoid(-y f) and the loss), and the update.  The
# arithmetic is that of patterns._Forward element by element, except that
# srelu on (0, rho] comes from its slope with one power (_srelu_pair) and
# sums run in index order: results agree with the NumPy reference to a few
# ulp per step.  A nan propagates as in NumPy: a nan alignment is never
# learned and gives a nan loss.


@jit()
def _mark_learned(a, beta, thr, t, learned):
    """Set learned[r, b] = t where bank (r, b) first has beta_r max_i a >= thr; count them."""
    K, B, m = a.shape
    hits = 0
    for r in range(K):
        for b in range(B):
            if learned[r, b] >= 0:
                continue
            mx = a[r, b, 0]
            for i in range(1, m):
                v = a[r, b, i]
                if v > mx or v != v:  # a nan stays the max, as in np.max
                    mx = v
            if beta[r] * mx >= thr:
                learned[r, b] = t
                hits += 1
    return hits


@jit()
def _neuron_pass(a, beta, act, dact, gsum):
    """Activation slopes per neuron and each modality's part of the margin.

    Parameters
    ----------
    a : (K, B, m) alignments; beta : (K,) signal strengths.
    act : tuple (q, rho, shift, n_int, symmetric, relu)
        srelu parameters, shift = (1 - 1/q) rho, n_int from ``_pow_int``,
        and the learner's form.
    dact : (2, K, B, m) output
        act'(beta a) in dact[0] (symmetric: psi'(beta a)) and act'(-beta a)
        in dact[1] (class banks only).
    gsum : (2, K) output
        y f = sum_r s_r gsum[0, r] on y = +1 patterns and sum_r s_r gsum[1, r]
        on y = -1 patterns.
    """
    q, rho, shift, n_int, symmetric, relu = act
    K, B, m = a.shape
    for r in range(K):
        if symmetric:
            total = 0.0
            for i in range(m):
                z = beta[r] * a[r, 0, i]
                az = abs(z)  # psi(z) = sign(z) srelu(|z|), psi'(z) = srelu'(|z|)
                if az != az:
                    v, d = az, 0.0
                else:
                    v, d = _srelu_pair(az, q, rho, shift, n_int)
                total += math.copysign(v, z)
                dact[0, r, 0, i] = d
            gsum[0, r] = total
            gsum[1, r] = total
            continue
        sp0 = sp1 = sn0 = sn1 = 0.0  # sum act(beta a_b), sum act(-beta a_b)
        for b in range(2):
            sp = sn = 0.0
            for i in range(m):
                z = beta[r] * a[r, b, i]
                # act(z), act'(z) and act(-z), act'(-z); at most one side is > 0
                vp = dp = vn = dn = 0.0
                if z != z:
                    vp = vn = z
                elif relu:
                    if z > 0.0:
                        vp, dp = z, 1.0
                    elif z < 0.0:
                        vn, dn = -z, 1.0
                elif z > 0.0:
                    vp, dp = _srelu_pair(z, q, rho, shift, n_int)
                elif z < 0.0:
                    vn, dn = _srelu_pair(-z, q, rho, shift, n_int)
                sp += vp
                sn += vn
                dact[0, r, b, i] = dp
                dact[1, r, b, i] = dn
            if b == 0:
                sp0, sn0 = sp, sn
            else:
                sp1, sn1 = sp, sn
        # y = +1: f = F_+(beta a_+) - F_-(-beta a_-); y = -1: -f = F_-(beta a_-) - F_+(-beta a_+)
        gsum[0, r] = sp0 - sn1
        gsum[1, r] = sp1 - sn0


@jit()
def _pattern_pass(pats, gsum, sig, want_loss):
    """sig[p] = sigmoid(-y f) of every pattern; the pattern loss when ``want_loss`` (else 0).

    ``pats`` is (y, s, w, w_pos, w_neg) as in :func:`_reduced_kernel`.
    """
    y, s, w = pats[0], pats[1], pats[2]
    K = gsum.shape[1]
    loss = 0.0
    for p in range(y.size):
        row = 0 if y[p] > 0.0 else 1
        g = 0.0
        for r in range(K):
            g += s[p, r] * gsum[row, r]
        sig[p], lg = _logistic(g)
        if want_loss:
            loss += w[p] * lg
    return loss


@jit()
def _update(a, beta, pats, dact, sig, eta):
    """a += eta * (the alignment gradient): the drive of the patterns times each slope.

    Class banks take the drive from the y = +1 and the y = -1 patterns
    separately (w_pos, w_neg); a bank c is pushed by act'(beta a) on y = c
    and by act'(-beta a) on y = -c.
    """
    y, s, w, w_pos, w_neg = pats
    K, B, m = a.shape
    for r in range(K):
        if B == 1:  # the symmetric learner
            drive = 0.0
            for p in range(y.size):
                drive += w[p] * sig[p] * s[p, r]
            for i in range(m):
                a[r, 0, i] += eta * (beta[r] * dact[0, r, 0, i] * drive)
            continue
        d_pos = 0.0
        d_neg = 0.0
        for p in range(y.size):
            d_pos += w_pos[p] * sig[p] * s[p, r]
            d_neg += w_neg[p] * sig[p] * s[p, r]
        for b in range(2):
            same = d_pos if b == 0 else d_neg  # y = c
            opp = d_neg if b == 0 else d_pos  # y = -c
            for i in range(m):
                a[r, b, i] += eta * (beta[r] * (dact[0, r, b, i] * same + dact[1, r, b, i] * opp))


@jit()
def _record(rec_a, i, a):
    """``rec_a[i] = a`` element by element: an array-to-array slice assignment
    compiles numba's shape-mismatch message (string formatting), seconds of a
    cold start for a copy whose shapes are right by construction."""
    K, B, m = a.shape
    for r in range(K):
        for b in range(B):
            for j in range(m):
                rec_a[i, r, b, j] = a[r, b, j]


@jit()
def _reduced_kernel(a, beta, pats, form, run, rec_steps, work, span):
    """Steps ``t0 <= t < t1`` of the step loop of :func:`reduced_dynamics`, compiled.

    The loop is run in pieces (``span``) so that Python sees a signal between
    two of them (simcomp.interrupts); the pieces do exactly the operations of
    one uninterrupted loop.

    Parameters
    ----------
    a : (K, B, m) float64
        Alignments, updated in place (the initial ones at t0 = 0).
    beta : (K,) float64
        Signal strengths.
    pats : tuple (y, s, w, w_pos, w_neg) of float64 arrays
        Pattern labels (P,) +-1, presence (P, K) 0/1, weights (P,), and the
        weights times [y > 0] and times [y <= 0].
    form : tuple (q, rho, n_int, symmetric, relu)
        srelu parameters (unused for ReLU) with n_int = ``_pow_int(q)``;
        symmetric learner (B = 1, psi)
        rather than class banks (B = 2); class banks with plain ReLU.
    run : tuple (eta, thr, steps)
        Learning rate, learn threshold on beta_r * max alignment, number of
        GD steps T.
    rec_steps : (R,) int64
        Increasing steps to record, the last one equal to ``steps``.
    work : tuple (rec_a (R, K, B, m), rec_loss (R,), learned (K, B) int64, dact (2, K, B, m),
        gsum (2, K), sig (P,))
        Outputs (alignments and pattern loss at the recorded steps, the first
        step with beta_r * max_i a_{r,b,i} >= thr, -1 never) and scratch,
        kept across pieces.
    span : tuple (t0, t1, rec_i, n_open)
        The steps of this piece, the next record index and the number of
        banks not learned yet.

    Returns
    -------
    tuple (rec_i, n_open)
        For the next piece.
    """
    q, rho, n_int, symmetric, relu = form
    eta, thr, steps = run
    rec_a, rec_loss, learned, dact, gsum, sig = work
    t0, t1, rec_i, n_open = span
    act = (q, rho, (1.0 - 1.0 / q) * rho, n_int, symmetric, relu)
    for t in range(t0, t1):
        if n_open > 0:
            n_open -= _mark_learned(a, beta, thr, t, learned)
        _neuron_pass(a, beta, act, dact, gsum)
        is_rec = rec_steps[rec_i] == t
        loss = _pattern_pass(pats, gsum, sig, is_rec)
        if is_rec:
            _record(rec_a, rec_i, a)
            rec_loss[rec_i] = loss
            rec_i += 1
        if t == steps:
            break
        _update(a, beta, pats, dact, sig, eta)
    return rec_i, n_open


def _reduced_setup(alignment0, beta, y_pat, s_pat, w_pat, q, rho, steps, learner, activation,
                   threshold, record_every):
    """Validate the inputs of :func:`reduced_dynamics`.

    Returns
    -------
    a : (K_run, B, m) float64
        A contiguous copy of ``alignment0``.
    fwd : _Forward
        The pattern data, checked against ``beta`` and each other.
    thr : float
        The learn threshold.
    rec_steps : (R,) int64
        The steps to record.
    """
    a = np.array(alignment0, dtype=float, copy=True, order="C")
    if a.ndim != 3:
        raise ValueError(f"alignment0 must have shape (K_run, B, m), got {a.shape}")
    banks = 1 if learner == "symmetric" else 2
    if a.shape[1] != banks:
        raise ValueError(
            f"learner {learner!r} needs B = {banks} banks, alignment0 has {a.shape[1]}"
        )
    steps = int(steps)
    record_every = int(record_every)
    if steps < 0 or record_every < 1:
        raise ValueError(f"need steps >= 0 and record_every >= 1, got {steps}, {record_every}")
    fwd = _Forward(beta, y_pat, s_pat, w_pat, q, rho, learner, activation)
    if a.shape[0] != fwd.beta.size:
        raise ValueError(f"alignment0 has {a.shape[0]} modalities, beta has {fwd.beta.size}")
    if a.shape[2] == 0:
        raise ValueError("alignment0 needs at least one neuron (m >= 1)")
    thr = float(rho if threshold is None else threshold)
    rec_steps = np.arange(0, steps + 1, record_every, dtype=np.int64)
    if rec_steps[-1] != steps:
        rec_steps = np.append(rec_steps, np.int64(steps))
    return a, fwd, thr, rec_steps


def _reduced_result(rec_steps, rec_a, rec_loss, learned_bank, a) -> ReducedDynamics:
    """Bundle a trajectory; the learned step of a modality is the first of its banks."""
    never = np.iinfo(np.int64).max
    learned_any = np.where(learned_bank >= 0, learned_bank, never).min(axis=1)
    learned = np.where(learned_any == never, -1, learned_any).astype(np.int64)
    return ReducedDynamics(
        steps=rec_steps,
        alignment=rec_a,
        leading_alignment=rec_a.max(axis=(2, 3)),
        learned_step=learned,
        learned_step_bank=learned_bank,
        final_alignment=a,
        loss=rec_loss,
    )


def reduced_dynamics(
    alignment0,
    beta,
    y_pat,
    s_pat,
    w_pat,
    q: float,
    rho: float,
    eta: float,
    steps: int,
    learner: str = "symmetric",
    activation: str = "srelu",
    threshold: float | None = None,
    record_every: int = 1,
) -> ReducedDynamics:
    """Gradient descent on the pattern loss in alignment coordinates (docs/model.md section 5.4).

    Symmetric:   a_{r,i}   += eta sum_P w s_r beta_r psi'(beta_r a_{r,i}) sigmoid(-y f)
    Class banks: a_{r,c,i} += eta sum_P w s_r beta_r act'(y c beta_r a_{r,c,i}) sigmoid(-y f)
    with y f(y, s) = sum_r s_r sum_c sum_i y c act(y c beta_r a_{r,c,i})
    (for the symmetric learner y f = sum_r s_r sum_i psi(beta_r a_{r,i})).
    Exact for noise-free, distractor-free data described by the patterns.

    Parameters
    ----------
    alignment0 : array_like, shape (K_run, B, m)
        Initial alignments; B = 1 for the symmetric learner, 2 for class banks.
    beta : array_like, shape (K_run,)
        Signal strengths.
    y_pat, s_pat, w_pat : array_like
        The patterns: labels (P,), presence (P, K_run) and weights (P,).
    q, rho : float
        srelu parameters.
    eta : float
        Learning rate.
    steps : int
        Number of GD steps T.
    learner : {"symmetric", "class_banks"}
    activation : {"srelu", "relu"}
        "relu" only with class banks.
    threshold : float, optional
        Learn threshold on beta_r * max alignment; defaults to rho.
    record_every : int
        Record at steps 0, record_every, 2 record_every, ... and at T.

    Returns
    -------
    ReducedDynamics

    Notes
    -----
    The step loop is compiled (``_reduced_kernel``); a step costs well under
    a microsecond for K = 2, m = 8. :func:`_reduced_dynamics_numpy` is the
    vectorised NumPy version it replaced, kept as the slow reference the
    tests compare it with.
    """
    a, fwd, thr, rec_steps = _reduced_setup(alignment0, beta, y_pat, s_pat, w_pat, q, rho, steps,
                                            learner, activation, threshold, record_every)
    pats = tuple(np.ascontiguousarray(x) for x in (fwd.y, fwd.s, fwd.w, fwd.w_pos, fwd.w_neg))
    form = (fwd.q, fwd.rho, _pow_int(fwd.q), bool(fwd.symmetric), fwd.activation == "relu")
    K, B, m = a.shape
    rec_a = np.empty((rec_steps.size, K, B, m))
    rec_loss = np.empty(rec_steps.size)
    learned_bank = np.full((K, B), -1, dtype=np.int64)
    work = (rec_a, rec_loss, learned_bank, np.zeros((2, K, B, m)), np.empty((2, K)),
            np.empty(pats[0].size))
    beta_c, run = np.ascontiguousarray(fwd.beta), (float(eta), thr, int(steps))
    rec_i, n_open = 0, K * B
    for t0, t1 in chunks(int(steps) + 1):  # short compiled calls: a signal is seen between them
        with deferred():
            rec_i, n_open = _reduced_kernel(a, beta_c, pats, form, run, rec_steps, work,
                                            (t0, t1, rec_i, n_open))
    return _reduced_result(rec_steps, rec_a, rec_loss, learned_bank, a)


def _reduced_dynamics_numpy(alignment0, beta, y_pat, s_pat, w_pat, q, rho, eta, steps,
                            learner="symmetric", activation="srelu", threshold=None,
                            record_every=1) -> ReducedDynamics:
    """:func:`reduced_dynamics` in vectorised NumPy: the slow reference of the compiled loop.

    Same parameters and result; each step is a handful of NumPy calls on
    :class:`_Forward`, about 30 (symmetric) / 50 (class banks) microseconds
    for K = 2, m = 8. Used only by the tests.
    """
    a, fwd, thr, rec_steps = _reduced_setup(alignment0, beta, y_pat, s_pat, w_pat, q, rho, steps,
                                            learner, activation, threshold, record_every)
    steps = int(steps)
    beta_col = fwd.beta[:, None]
    R = rec_steps.size
    rec_a = np.empty((R,) + a.shape)
    rec_loss = np.empty(R)
    learned_bank = np.full(a.shape[:2], -1, dtype=np.int64)
    open_ = np.ones(a.shape[:2], dtype=bool)
    rec_i = 0
    for t in range(steps + 1):
        if open_.any():
            hit = open_ & (beta_col * a.max(axis=2) >= thr)
            if hit.any():
                learned_bank[hit] = t
                open_ &= ~hit
        is_rec = rec_steps[rec_i] == t
        if t == steps:
            if is_rec:
                rec_a[rec_i] = a
                rec_loss[rec_i] = fwd.loss(fwd.margins(a))
            break
        inc, g = fwd.increment(a)
        if is_rec:
            rec_a[rec_i] = a
            rec_loss[rec_i] = fwd.loss(g)
            rec_i += 1
        a += eta * inc
    return _reduced_result(rec_steps, rec_a, rec_loss, learned_bank, a)
