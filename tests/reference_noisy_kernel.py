"""The compiled step loop of the noise-aware dynamics as it was before it was restructured
for speed (``simcomp.theory.noisy_dynamics._noisy_kernel``): the reference the new kernel
is compared with (tests/test_noisy_kernel.py).

One full forward pass over every neuron and sample, then one full update pass,
every sum in index order; the new kernel fuses the two per neuron, sums the
alignment drive in eight interleaved partial sums and computes the loss only
where it is recorded.
"""

import math

import numpy as np

from simcomp._jit import jit
from simcomp.theory.activation import _logistic, _srelu_pair
from simcomp.theory.reduced import _mark_learned, _record


@jit()
def _act_slope(u, act):
    """(act(u), act'(u)) for srelu, or ReLU when ``relu``; act = (q, rho, shift, n_int, relu).

    The symmetric learner calls it at |u| and signs the output itself.
    """
    q, rho, shift, n_int, relu = act
    if relu:
        return (u, 1.0) if u > 0.0 else (0.0, 0.0)
    return _srelu_pair(u, q, rho, shift, n_int) if u > 0.0 else (0.0, 0.0)


@jit()
def _forward(state, data, act, symmetric, dact):
    """f on every training sample; dact[r, b, i, k] = c act'(u) (the sign c of bank b included)."""
    a, nu = state[0], state[1]
    b_sig = data[2]
    K, B, m, n = nu.shape
    f = np.zeros(n)
    for r in range(K):
        for b in range(B):
            c = 1.0 if b == 0 else -1.0
            for i in range(m):
                for k in range(n):
                    u = c * b_sig[r, k] * a[r, b, i] + nu[r, b, i, k]
                    if symmetric:  # psi(u) = sign(u) srelu(|u|), psi'(u) = srelu'(|u|)
                        v, d = _act_slope(abs(u), act)
                        f[k] += math.copysign(v, u)
                        dact[r, b, i, k] = d
                    else:
                        v, d = _act_slope(u, act)
                        f[k] += c * v
                        dact[r, b, i, k] = c * d
    return f


@jit()
def _noisy_step(state, data, eta, coef, dact):
    """One GD step in (a, nu, theta) from g = coef_k * dact (all neurons at once)."""
    a, nu, theta = state
    b_sig, diag, gram = data[2], data[3], data[4]
    K, B, m, n = nu.shape
    exact = gram.shape[1] > 0
    g = np.empty(n)
    for r in range(K):
        for b in range(B):
            c = 1.0 if b == 0 else -1.0
            for i in range(m):
                dv = 0.0  # d<w, v> / (-eta)
                for k in range(n):
                    g[k] = coef[k] * dact[r, b, i, k]
                    dv += g[k] * b_sig[r, k]
                if exact:
                    for k in range(n):
                        h = 0.0
                        for j in range(n):
                            h += g[j] * gram[r, j, k]
                        nu[r, b, i, k] -= eta * h
                        theta[r, b, i, k] -= eta * g[k]
                else:
                    # the limit: theta_k = (nu_k - nu_k(0)) / ||N_k||^2 at any step, so theta
                    # is recovered once at the end (noise_aware_dynamics), not kept per step
                    for k in range(n):
                        nu[r, b, i, k] -= eta * (g[k] * diag[r, k])
                a[r, b, i] -= eta * c * dv


@jit()
def ref_noisy_kernel(state, data, beta, form, run, rec_steps, work, span):
    """Steps ``t0 <= t < t1`` of the step loop of :func:`noise_aware_dynamics`.

    The loop is run in pieces (``span``) so that Python sees a signal between
    two of them (simcomp.interrupts); the pieces do exactly the operations of
    one uninterrupted loop.

    Parameters
    ----------
    state : tuple (a (K, B, m), nu (K, B, m, n), theta (K, B, m, n)) float64
        Alignments, noise pre-activations and input coefficients; updated in place.
    data : tuple (y (n,), omega (n,), b (K, n), diag (K, n), gram (K, n, n) or (K, 0, 0))
        Labels, sample weights, <X_k, v> per modality, ||N_k||^2 and the
        full Gram of the orthogonal noise (empty: the diagonal limit).
    beta : (K,) float64
    form : tuple (q, rho, n_int, symmetric, relu)
    run : tuple (eta, thr, steps)
    rec_steps : (R,) int64
    work : tuple (dact (K, B, m, n), coef (n,), rec_a (R, K, B, m), rec_loss (R,),
        learned (K, B) int64, -1 never)
        Scratch and outputs, kept across pieces; filled in place.
    span : tuple (t0, t1, rec_i)
        The steps of this piece and the next record index.

    Returns
    -------
    int
        The next record index.
    """
    q, rho, n_int, symmetric, relu = form
    eta, thr, steps = run
    dact, coef, rec_a, rec_loss, learned = work
    t0, t1, rec_i = span
    a = state[0]
    y, omega = data[0], data[1]
    n = y.size
    act = (q, rho, (1.0 - 1.0 / q) * rho, n_int, relu)
    for t in range(t0, t1):
        _mark_learned(a, beta, thr, t, learned)
        f = _forward(state, data, act, symmetric, dact)
        loss = 0.0
        for k in range(n):
            sgm, lg = _logistic(y[k] * f[k])  # sigmoid(-y f), log(1 + exp(-y f))
            coef[k] = -omega[k] * y[k] * sgm  # omega l'
            loss += omega[k] * lg
        if rec_steps[rec_i] == t:
            _record(rec_a, rec_i, a)
            rec_loss[rec_i] = loss
            rec_i += 1
        if t == steps:
            break
        _noisy_step(state, data, eta, coef, dact)
    return rec_i
