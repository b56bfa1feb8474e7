"""The gradient-descent loop: one compiled body for the serial, parallel and batched paths.

For t = t_start, ..., t_start + n_steps - 1 the loop evaluates the loss,
the gradient and the rule's statistics at W(t) (gradient.py), records the
banks learned at W(t), stops on a non-finite loss or gradient or below
``stop_loss``, and otherwise updates W. The ``log1p`` of the loss is only
evaluated where the loss is used (the last step of a segment, or every
step with an early stop); in between the non-finite guard uses a bound
that is finite only if the loss is, and a step that fails it is evaluated
again with the loss, so statuses and returned losses are exactly those of
evaluating the loss at every step.

Bundles: ``watch = (signal, beta, threshold, learned)`` (the learned
check), ``ctl = (eta, t_start, n_steps, stop_loss)``; the others are those
of gradient.py. ``mode`` None is the serial gradient, a bool the parallel
one (a compile-time choice, see gradient.py). The batched body runs every
run through the serial specialisation of the very same loop, so a run's
result does not depend on the batch it is in, nor on the thread count.
"""

import math

import numpy as np
from numba import prange

from simcomp._jit import jit, jit_parallel
from simcomp.kernels.gradient import SCRATCH_GRAD2, _lg_parallel, _lg_serial, _scratch
from simcomp.kernels.layout import (_check_args, _check_backward, _check_gd, _check_samples,
                                    chunk_layout)
from simcomp.kernels.rule_spec import HAS_TABLE, N_CODES, N_HYPER, N_PAR
from simcomp.kernels.rules import _acc_rows, _rule_code, _state_ok, _step, _update

STATUS_OK = 0
STATUS_STOP_LOSS = 1
STATUS_NONFINITE = 2

@jit()
def _check_learned(W, dims, signal, beta, threshold, learned, t):
    """Set ``learned[r, b] = t`` for banks not yet learned whose leading
    alignment satisfies ``beta_r * max_i c_b <w_{r,b,i}, v_r> >= threshold``.

    Each dot product is summed in four interleaved partial sums, added as
    ``(s0 + s1) + (s2 + s3)`` -- a fixed order, four times less latency than
    one running sum (this check runs at every step).
    """
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
                s0 = s1 = s2 = s3 = 0.0
                k = 0
                while k + 4 <= d:
                    s0 += np.float64(w[k]) * np.float64(v[k])
                    s1 += np.float64(w[k + 1]) * np.float64(v[k + 1])
                    s2 += np.float64(w[k + 2]) * np.float64(v[k + 2])
                    s3 += np.float64(w[k + 3]) * np.float64(v[k + 3])
                    k += 4
                while k < d:
                    s0 += np.float64(w[k]) * np.float64(v[k])
                    k += 1
                s = (s0 + s1) + (s2 + s3)
                if b == 1:
                    s = -s
                if s > best:
                    best = s
            if beta[r] * best >= threshold:
                learned[r, b] = t


@jit()
def _all_finite(dims, A):
    """True if ``A[r, b, i, :d_r]`` is finite everywhere.

    Counts the non-finite entries instead of stopping at the first, so that
    the loop vectorises (an integer sum may be reordered).
    """
    K, B, m, _ = A.shape
    bad = 0
    for r in range(K):
        for b in range(B):
            for i in range(m):
                a = A[r, b, i]
                for k in range(dims[r]):
                    bad += 0 if abs(a[k]) < np.inf else 1
    return bad == 0


@jit()
def _step_status(loss, need_loss, bound, dims, grad, stop_loss):
    """Status after evaluating one step: -1 (go on), STATUS_NONFINITE or STATUS_STOP_LOSS.

    Without the loss (``need_loss`` False) a finite ``bound`` stands for a
    finite loss; a caller that gets STATUS_NONFINITE without the loss must
    evaluate the step again with it (see the module notes).
    """
    finite = math.isfinite(loss) if need_loss else math.isfinite(bound)
    if not (finite and _all_finite(dims, grad)):
        return STATUS_NONFINITE
    if stop_loss > 0.0 and loss < stop_loss:
        return STATUS_STOP_LOSS
    return -1



@jit()
def _gd_loop(mode, data, unit, W, watch, ctl, rule, grad_buf, scratch):
    """The loop (no checks); returns ``(status, t_stop, last_loss)``."""
    dims = data[2]
    signal, beta, threshold, learned = watch
    eta, t_start, n_steps, stop_loss = ctl
    K = W.shape[0]
    # the step's accumulated statistics (rows: the method's, sized from the run)
    S = np.zeros((_acc_rows(rule, W.shape[1] * W.shape[2]), K), np.float64)
    loss = np.nan
    t_end = t_start + n_steps
    for t in range(t_start, t_end):
        need_loss = stop_loss > 0.0 or t == t_end - 1
        # ``mode is None`` is decided when compiling (numba prunes the dead
        # branch on the argument's type), so a serial loop never compiles the
        # parallel gradient; a direct call, not an overload, because every
        # call level that receives the bundles pays a reference count on each
        # of their arrays at every step.
        if mode is None:
            loss, bound = _lg_serial(data, unit, W, rule, t, grad_buf, scratch, S, need_loss)
        else:
            loss, bound = _lg_parallel(data, unit, W, rule, t, grad_buf, scratch, S, need_loss)
        _check_learned(W, dims, signal, beta, threshold, learned, t)
        _step(rule, W, dims, grad_buf, scratch[SCRATCH_GRAD2], S, t)
        status = _step_status(loss, need_loss, bound, dims, grad_buf, stop_loss)
        if status == STATUS_NONFINITE and not need_loss:
            # Stopping here: evaluate again with the loss, which is returned.
            # ``not need_loss`` is True here; a variable rather than the literal
            # True, which would compile a second specialisation of the gradient.
            if mode is None:
                loss, bound = _lg_serial(data, unit, W, rule, t, grad_buf, scratch, S,
                                         not need_loss)
            else:
                loss, bound = _lg_parallel(data, unit, W, rule, t, grad_buf, scratch, S,
                                           not need_loss)
        if status >= 0:
            return status, t, loss
        _update(rule, W, dims, eta, grad_buf, t)
    _check_learned(W, dims, signal, beta, threshold, learned, t_end)
    return STATUS_OK, t_end, loss


@jit()
def _check_run(data, unit, W, watch, rule, grad_buf):
    Xf, Xb, dims, y, omega = data
    kind, qcode, q, rho = unit
    _check_args(Xf, y.shape[0], dims, W, kind, q, rho)
    _check_backward(Xb, y.shape[0], W)
    _check_samples(y, omega, W, grad_buf)
    _check_gd(W, watch[0], watch[1], watch[3])
    _check_rule(rule, W, y.shape[0])


@jit()
def _check_rule(rule, W, n):
    code = _rule_code(rule)
    par, hyper, state, teacher, stats = rule[1], rule[2], rule[3], rule[4], rule[6]
    K, B, m, _ = W.shape
    if code < 0 or code >= N_CODES:
        raise ValueError("unknown rule code")
    if par.shape[0] != N_PAR or par.shape[1] != K or stats.shape[1] != K:
        raise ValueError("the rule's per-modality arrays need K columns")
    if hyper.shape[0] != N_HYPER or stats.shape[0] != 6:
        raise ValueError("malformed rule")
    if HAS_TABLE[code] and (teacher.shape[0] != K or teacher.shape[1] != B or teacher.shape[2] != m
                      or teacher.shape[3] != n):
        raise ValueError("the rule's table (umt's teacher_units) must be (K, B, m, n)")
    if not _state_ok(rule, W):
        raise ValueError("the rule's state does not fit the run: make_rule needs "
                         "shape=(B, m, n, D)")


@jit()
def _gd_serial(data, unit, W, watch, ctl, rule, grad_buf):
    """Compiled body of ``gd_segment``, one thread."""
    _check_run(data, unit, W, watch, rule, grad_buf)
    grad_buf[...] = 0.0
    scratch = _scratch(data, W, rule, 1)
    return _gd_loop(None, data, unit, W, watch, ctl, rule, grad_buf, scratch)


@jit()
def _gd_parallel(data, unit, W, watch, ctl, rule, grad_buf):
    """Compiled body of ``gd_segment``, the gradient on the thread pool."""
    _check_run(data, unit, W, watch, rule, grad_buf)
    grad_buf[...] = 0.0
    _, nbuf = chunk_layout(data[3].shape[0])
    scratch = _scratch(data, W, rule, nbuf)
    return _gd_loop(True, data, unit, W, watch, ctl, rule, grad_buf, scratch)


@jit()
def _check_batch(data, unit, W, watch, ctl, rules, out):
    """Raise ValueError unless every batched array has the run axis R and every run is valid."""
    Xf, Xb, dims, y, omega = data
    signal, beta, threshold, learned = watch
    eta, t_start, n_steps, stop_loss = ctl
    code = _rule_code(rules)
    par, hyper, state, teacher, key, stats = (rules[1], rules[2], rules[3], rules[4], rules[5],
                                              rules[6])
    R = W.shape[0]
    for arr_len in (Xf.shape[0], Xb.shape[0], dims.shape[0], y.shape[0], omega.shape[0],
                    signal.shape[0], beta.shape[0], threshold.shape[0], learned.shape[0],
                    eta.shape[0], t_start.shape[0], n_steps.shape[0], stop_loss.shape[0],
                    par.shape[0], hyper.shape[0], state.shape[0], key.shape[0], stats.shape[0],
                    out[0].shape[0], out[1].shape[0], out[2].shape[0]):
        if arr_len != R:
            raise ValueError("every batched array needs the same leading run axis R")
    if HAS_TABLE[code] and teacher.shape[0] != R:
        raise ValueError("every batched array needs the same leading run axis R")
    for i in range(R):
        rule_i = (rules[0], par[i], hyper[i], state[i], teacher[i if HAS_TABLE[code] else 0],
                  key[i], stats[i])
        _check_run((Xf[i], Xb[i], dims[i], y[i], omega[i]), unit, W[i],
                   (signal[i], beta[i], threshold[i], learned[i]), rule_i, W[i])


@jit_parallel()
def _gd_batch(data, unit, W, watch, ctl, rules, out):
    """Compiled body of ``gd_segment_batch``: R runs, one per task, each serial.

    Every argument carries a leading run axis R (``rules`` is the stacked
    rule ``(code, par, hyper, state, teacher, key, stats)``, the code
    shared); ``out = (status, t_stop, loss)``.
    """
    _check_batch(data, unit, W, watch, ctl, rules, out)
    for i in prange(W.shape[0]):
        _batch_run(np.int64(i), data, unit, W, watch, ctl, rules, out)


@jit()
def _batch_run(i, data, unit, W, watch, ctl, rules, out):
    """Run ``i`` of a batch through the serial loop (kept out of the parallel region,
    whose compilation time grows with the code inside it)."""
    Xf, Xb, dims, y, omega = data
    signal, beta, threshold, learned = watch
    eta, t_start, n_steps, stop_loss = ctl
    code = _rule_code(rules)
    par, hyper, state, teacher, key, stats = (rules[1], rules[2], rules[3], rules[4], rules[5],
                                              rules[6])
    if n_steps[i] < 0:
        return
    data_i = (Xf[i], Xb[i], dims[i], y[i], omega[i])
    rule_i = (rules[0], par[i], hyper[i], state[i], teacher[i if HAS_TABLE[code] else 0],
              key[i], stats[i])
    grad_buf = np.zeros_like(W[i])
    scratch = _scratch(data_i, W[i], rule_i, 1)
    st, ts, ls = _gd_loop(None, data_i, unit, W[i], (signal[i], beta[i], threshold[i], learned[i]),
                          (eta[i], t_start[i], n_steps[i], stop_loss[i]), rule_i, grad_buf,
                          scratch)
    out[0][i] = st
    out[1][i] = ts
    out[2][i] = ls
