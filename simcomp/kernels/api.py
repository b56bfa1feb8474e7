"""Public wrappers of the compiled kernels (the only entry points the trainer uses).

Each wrapper checks what compiled code cannot check cheaply (contiguity),
converts every scalar to one fixed type (int64, float64) so that Python
and NumPy scalars reuse one compiled version per array dtype, bundles the
arguments into the tuples of the compiled functions and, before any
compiled code that may hold a ``parallel=True`` function runs, starts
numba's threading layer: a cached function calling a parallel one does
not start it when loaded from the cache, and then crashes (numba issue
#8578, tested in tests/test_cache.py).

Status codes of :func:`gd_segment`: ``STATUS_OK = 0`` all steps taken;
``STATUS_STOP_LOSS = 1`` the loss fell below ``stop_loss``;
``STATUS_NONFINITE = 2`` the loss or the gradient was not finite.
"""

import sys

import numba
import numpy as np

from simcomp._jit import jit
from simcomp.interrupts import deferred
from simcomp.kernels.gd import (_gd_batch, _gd_parallel, _gd_serial, STATUS_NONFINITE,
                                STATUS_OK, STATUS_STOP_LOSS)
from simcomp.kernels.gradient import _lg, _scratch
from simcomp.kernels.layout import (BLOCK, _check_args, _check_backward, _check_samples,
                                    chunk_layout, pack_samples)
from simcomp.kernels.rule_spec import HAS_TABLE, make_rule
from simcomp.kernels.units import _q_code, _unit_rows
from simcomp.kernels.tile import _block_preact

__all__ = ["announce_compile", "cache_is_cold", "loss_and_grad", "loss_and_grad_parallel",
           "forward", "alignments", "gd_segment", "gd_segment_batch", "STATUS_OK",
           "STATUS_STOP_LOSS", "STATUS_NONFINITE"]


# Seconds a cold cache costs the default `simcomp simulate` on the 2-core
# reference machine (benchmarks/speed.py measures it: docs/performance.md).
COLD_START_SECONDS = 20
_checked = set()  # entry points whose cache was looked at
_said = []  # the path that was announced (at most one per process)


def _cached(dispatcher) -> bool:
    """Whether numba's on-disk cache holds a current entry for ``dispatcher``."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # an internal of numba changed: assume warm, say nothing
        return True


def announce_compile(path="serial", stream=None) -> bool:
    """Say on stderr, once per process, that kernels are about to be compiled.

    Parameters
    ----------
    path : {"serial", "parallel", "batch"}
        The entry point a run is about to call.
    stream : file, optional
        Where to write (default ``sys.stderr``).

    Returns
    -------
    bool
        True if the note was written: ``path``'s cache is cold and nothing
        was announced before in this process.
    """
    if path in _checked:  # reading numba's cache index costs: once per path
        return False
    body = {"serial": _gd_serial, "parallel": _gd_parallel, "batch": _gd_batch}[path]
    _checked.add(path)
    if _said or _cached(body):
        return False
    _said.append(path)
    # Only sweeps train through the batched loop, often right after `simcomp simulate`
    # compiled its own: "first run only" would read as a second first run.
    when = "the batched loop sweeps use, once" if path == "batch" else "first run only"
    print(f"simcomp: compiling kernels for this machine ({when}, about "
          f"{COLD_START_SECONDS} s)", file=stream or sys.stderr, flush=True)
    return True


def cache_is_cold(path="batch") -> bool:
    """Whether numba's on-disk cache lacks ``path``'s compiled training loop.

    Parameters
    ----------
    path : {"serial", "parallel", "batch"}
        The entry point to look at.

    Returns
    -------
    bool
        True when calling it would compile (no cache index for it).
    """
    body = {"serial": _gd_serial, "parallel": _gd_parallel, "batch": _gd_batch}[path]
    return not _cached(body)


def _need_c(name, arr):
    if not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous NumPy array")


def _packed(X, packed):
    """``packed`` as given, or made from X when None."""
    if packed is None:
        return pack_samples(X)
    if packed[1] is None:
        raise ValueError("the gradient needs the backward copy: pack_samples(X, backward=True)")
    return packed


def _unit(kind, q):
    q = float(q)
    return int(kind), int(_q_code(q)), q


def _rule_tuple(rule, K):
    if rule is None:
        rule = make_rule("none", K)
    return rule.kernel()


def loss_and_grad(X, dims, y, omega, W, kind, q, rho, grad_out, packed=None):
    """Loss and gradient at ``W`` (one thread), plain training.

    Parameters
    ----------
    X : ndarray, (K, n, D)
        Inputs, float64 or float32; columns beyond ``dims[r]`` are padding.
    dims : ndarray of int64, (K,)
        Dimension of each modality.
    y : ndarray, (n,)
        Labels in {-1, +1}.
    omega : ndarray, (n,)
        Sample weights.
    W : ndarray, (K, B, m, D), C-contiguous
        Weights, B = 1 for kind 0 and B = 2 for kinds 1 and 2.
    kind : int
        0 symmetric, 1 class banks with srelu, 2 class banks with ReLU.
    q : float
        srelu power, q >= 2 (fast paths for q = 2, 3, 4, 5).
    rho : float
        srelu threshold, rho > 0.
    grad_out : ndarray, (K, B, m, D), C-contiguous
        Filled with dL/dW (zero in the padded columns).
    packed : tuple, optional
        ``pack_samples(X)``, made here when not given.

    Returns
    -------
    float
        ``L = sum_j omega_j softplus(-y_j f_j)``, accumulated in float64.

    Raises
    ------
    ValueError
        On inconsistent shapes or an invalid ``kind``, ``q`` or ``rho``.
    """
    return _lg_entry(X, dims, y, omega, W, (kind, q, rho), grad_out, packed, False)


def loss_and_grad_parallel(X, dims, y, omega, W, kind, q, rho, grad_out, packed=None):
    """Loss and gradient at ``W``, chunks of samples on numba's thread pool.

    Same parameters, result and errors as :func:`loss_and_grad`, and
    bit-identical to it for any number of threads.
    """
    return _lg_entry(X, dims, y, omega, W, (kind, q, rho), grad_out, packed, True)


def _lg_entry(X, dims, y, omega, W, unit, grad_out, packed, parallel):
    numba.get_num_threads()  # start the threading layer (numba #8578, see above)
    _need_c("W", W)
    _need_c("grad_out", grad_out)
    Xf, Xb = _packed(X, packed)
    if np.shape(y)[0] != np.shape(X)[1]:
        raise ValueError("y and omega must have shape (n,)")
    kind, qcode, q = _unit(unit[0], unit[1])
    data = (Xf, Xb, dims, y, omega)
    rule = _rule_tuple(None, W.shape[0])
    body = _loss_and_grad_parallel if parallel else _loss_and_grad
    return body(data, (kind, qcode, q, float(unit[2])), W, rule, grad_out)


@jit()
def _check_lg(data, unit, W, grad_out):
    Xf, Xb, dims, y, omega = data
    _check_args(Xf, y.shape[0], dims, W, unit[0], unit[2], unit[3])
    _check_backward(Xb, y.shape[0], W)
    _check_samples(y, omega, W, grad_out)


@jit()
def _loss_and_grad(data, unit, W, rule, grad_out):
    _check_lg(data, unit, W, grad_out)
    scratch = _scratch(data, W, rule, 1)
    S = np.zeros((2, W.shape[0]), np.float64)
    return _lg(None, data, unit, W, rule, 0, grad_out, scratch, S, True)[0]


@jit()
def _loss_and_grad_parallel(data, unit, W, rule, grad_out):
    _check_lg(data, unit, W, grad_out)
    _, nbuf = chunk_layout(data[3].shape[0])
    scratch = _scratch(data, W, rule, nbuf)
    S = np.zeros((2, W.shape[0]), np.float64)
    return _lg(True, data, unit, W, rule, 0, grad_out, scratch, S, True)[0]


def forward(X, dims, W, kind, q, rho, f_out, phi_out, packed=None):
    """Network output and the output of each modality's encoder.

    Parameters
    ----------
    X, dims, W, kind, q, rho
        As in :func:`loss_and_grad`.
    f_out : ndarray, (n,)
        Filled with ``f_j = sum_r phi_r(X_{r,j})`` (summed in float64).
    phi_out : ndarray, (n, K)
        Filled with ``phi_r(X_{r,j})``.
    packed : tuple, optional
        ``pack_samples(X)``, of which only the forward copy is read
        (``pack_samples(X, backward=False)`` is enough).
    """
    _need_c("W", W)
    Xf = pack_samples(X, backward=False)[0] if packed is None else packed[0]
    kind, qcode, q = _unit(kind, q)
    with deferred(hot=True):  # see gd_segment
        _forward(Xf, np.shape(X)[1], dims, W, (kind, qcode, q, float(rho)), f_out, phi_out)


@jit()
def _forward(Xf, n, dims, W, unit, f_out, phi_out):
    _check_args(Xf, n, dims, W, unit[0], unit[2], unit[3])
    K, B, m, _ = W.shape
    if f_out.shape[0] != n or phi_out.shape[0] != n or phi_out.shape[1] != K:
        raise ValueError("f_out must be (n,) and phi_out (n, K)")
    Z = np.empty((K, B * m, BLOCK), Xf.dtype)
    P = np.empty((K, BLOCK), np.float64)
    nblocks, _ = chunk_layout(n)
    for blk in range(nblocks):
        j0 = blk * BLOCK
        j1 = min(j0 + BLOCK, n)
        nb = j1 - j0
        _block_preact(Xf, dims, W, blk, nb, Z)
        P[...] = 0.0
        for r in range(K):  # phi_r of each modality on its own, in neuron order
            for bi in range(B * m):
                _unit_rows(Z, r, bi, P[r], 1.0 if bi < m else -1.0, unit, nb)
        for jj in range(nb):
            f = 0.0
            for r in range(K):
                phi_out[j0 + jj, r] = P[r, jj]
                f += P[r, jj]
            f_out[j0 + jj] = f


@jit()
def alignments(W, signal):
    """Signed alignments ``a[r, b, i] = c_b <w_{r,b,i}, v_r>``.

    Parameters
    ----------
    W : ndarray, (K, B, m, D)
        Weights (all D columns are summed; the padding is zero).
    signal : ndarray, (K, D)
        Unit signal vectors v_r, zero padded.

    Returns
    -------
    ndarray of float64, (K, B, m)
        With ``c_0 = +1`` and ``c_1 = -1``.
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


def gd_segment(X, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold, learned,
               t_start, n_steps, stop_loss, parallel_flag, grad_buf, packed=None, rule=None):
    """Run up to ``n_steps`` gradient-descent steps on ``W`` in place.

    For t = t_start, ..., t_start + n_steps - 1: evaluate the loss, the
    gradient (and the rule's statistics) at W(t), record the banks learned
    at W(t), then stop if the loss or the gradient is not finite (status 2)
    or if ``stop_loss > 0`` and the loss is below it (status 1); otherwise
    apply the rule's update (plain: W(t+1) = W(t) - eta grad). After the
    last step the learned check is also made at W(t_start + n_steps).

    Parameters
    ----------
    X, dims, y, omega, W, kind, q, rho
        As in :func:`loss_and_grad`; ``W`` is updated in place.
    eta : float
        Learning rate.
    signal : ndarray, (K, D)
        Unit signal vectors v_r, zero padded.
    beta : ndarray of float64, (K,)
        Signal strengths beta_r.
    threshold : float
        Bank (r, b) is learned at the first step t at which
        ``beta_r * max_i c_b <w_{r,b,i}, v_r> >= threshold``.
    learned : ndarray of int64, (K, B)
        In/out: -1 for banks not learned yet, set to the step at which they
        are learned; entries >= 0 are left alone.
    t_start : int
        Step index of the current W.
    n_steps : int
        Maximum number of updates.
    stop_loss : float
        Stop when the loss is below it; ignored when <= 0.
    parallel_flag : bool
        Evaluate the gradient on numba's thread pool (bit-identical results).
    grad_buf : ndarray, (K, B, m, D), C-contiguous
        Work buffer; holds the gradient at the last evaluated step.
    packed : tuple, optional
        ``pack_samples(X)``; pass it when calling repeatedly on one X.
    rule : Rule, optional
        ``simcomp.kernels.make_rule(...)``; default plain training. Its
        ``state`` and ``stats`` are updated in place.

    Returns
    -------
    status : int
        ``STATUS_OK`` (0), ``STATUS_STOP_LOSS`` (1) or ``STATUS_NONFINITE`` (2).
    t_stop : int
        Step index of W on return: ``t_start + n_steps`` for status 0,
        otherwise the step that triggered the stop (W is then W(t_stop)).
    last_loss : float
        Plain fused loss at the last evaluated step (nan if ``n_steps == 0``).
    """
    numba.get_num_threads()  # start the threading layer (numba #8578, see above)
    _need_c("W", W)
    _need_c("grad_buf", grad_buf)
    Xf, Xb = _packed(X, packed)
    if np.shape(y)[0] != np.shape(X)[1]:
        raise ValueError("y and omega must have shape (n,)")
    kind, qcode, q = _unit(kind, q)
    body = _gd_parallel if parallel_flag else _gd_serial
    with deferred(hot=True):  # a signal raised inside numba (compiling, boxing) hangs or crashes
        return body((Xf, Xb, dims, y, omega), (kind, qcode, q, float(rho)), W,
                    (signal, beta, float(threshold), learned),
                    (float(eta), int(t_start), int(n_steps), float(stop_loss)),
                    _rule_tuple(rule, W.shape[0]), grad_buf)


def stack_rules(rules, K):
    """The batched form of R rules of one method (``None`` entries: plain training)."""
    rules = [make_rule("none", K) if rule is None else rule for rule in rules]
    codes = {rule.code for rule in rules}
    if len(codes) != 1:
        raise ValueError("a batch needs one method for all its runs")
    has_table = bool(HAS_TABLE[rules[0].code])  # umt's teacher units
    teacher = (np.stack([rule.teacher for rule in rules]) if has_table
               else np.zeros((1, 0, 0, 0, 0)))
    return (rules[0].kernel()[0], np.stack([rule.par for rule in rules]),
            np.stack([rule.hyper for rule in rules]), np.stack([rule.state for rule in rules]),
            teacher, np.array([rule.key for rule in rules], np.int64),
            np.stack([rule.stats for rule in rules]))


def gd_segment_batch(Xf, Xb, dims, y, omega, W, kind, q, rho, eta, signal, beta, threshold,
                     learned, t_start, n_steps, stop_loss, status_out, t_stop_out, loss_out,
                     rules=None):
    """:func:`gd_segment` for R independent runs of one shape, in one call.

    Runs are spread over numba's thread pool (one run per task, handed out
    dynamically, so runs of different lengths balance); each run's steps are
    the serial loop of :func:`gd_segment`, so its result is bit-identical to
    ``gd_segment(..., parallel_flag=False)`` on that run alone, for any
    number of threads and any batch.

    Parameters
    ----------
    Xf, Xb : ndarray, (R, ...)
        ``pack_samples(X_i)`` of each run, stacked (C-contiguous).
    dims : ndarray of int64, (R, K)
    y, omega : ndarray, (R, n)
    W : ndarray, (R, K, B, m, D)
        Updated in place.
    kind, q, rho
        Shared by all runs, as in :func:`loss_and_grad`.
    eta, threshold, stop_loss : ndarray of float64, (R,)
    signal : ndarray, (R, K, D)
    beta : ndarray of float64, (R, K)
    learned : ndarray of int64, (R, K, B)
        In/out, as in :func:`gd_segment`.
    t_start, n_steps : ndarray of int64, (R,)
        A negative ``n_steps[i]`` leaves run i alone.
    status_out, t_stop_out : ndarray of int64, (R,)
    loss_out : ndarray of float64, (R,)
    rules : tuple, optional
        :func:`stack_rules` of the runs' rules (their ``state`` and
        ``stats`` are then copies: the caller reads them back from the
        stacked arrays); default plain training.
    """
    numba.get_num_threads()  # start the threading layer (numba #8578, see above)
    for name, arr in (("Xf", Xf), ("Xb", Xb), ("W", W), ("learned", learned)):
        _need_c(name, arr)
    if rules is None:
        rules = stack_rules([None] * W.shape[0], W.shape[1])
    kind, qcode, q = _unit(kind, q)
    saved = numba.get_parallel_chunksize()
    numba.set_parallel_chunksize(1)  # dynamic hand-out: one run per task
    try:
        with deferred(hot=True):  # see gd_segment
            _gd_batch((Xf, Xb, dims, y, omega), (kind, qcode, q, float(rho)), W,
                      (signal, beta, threshold, learned), (eta, t_start, n_steps, stop_loss),
                      rules, (status_out, t_stop_out, loss_out))
    finally:
        numba.set_parallel_chunksize(saved)
