"""Work some methods do between compiled training segments (the registry's ``hook``).

A method whose spec names a hook here (``MethodSpec.hook``, the class name) gets an instance
per training run (:class:`simcomp.train._Run`); the trainer stops its compiled segments at
the hook's ``steps`` and calls it with the run's weights at that step, before the step is
taken -- on every path (serial, parallel, batched, mini-batch), since they all advance a run
through ``_Run``.  The methods' NumPy logic (purity, blend weights, schedules) lives in their
registry modules, shared with their theory hooks; this module adds what needs the kernels,
the data and the run.
"""

from __future__ import annotations

import numpy as np

from . import kernels as _kernels
from .methods import holdout_dataset, unit_outputs
from .registry.gblending import blend_weights, head_loss, recompute_steps
from .registry.relearning import purity, reset_steps, strength

__all__ = ["RelearningHook", "GBlendingHook"]


def _pad(arrays: list, width: int, dtype) -> np.ndarray:
    """Stack (n, d_r) arrays into one zero-padded (K, n, width) array of ``dtype``."""
    out = np.zeros((len(arrays),) + arrays[0].shape[:-1] + (width,), dtype=dtype)
    for k, arr in enumerate(arrays):
        out[k, ..., : arr.shape[-1]] = arr
    return out


class RelearningHook:
    """The diagnosis and reset of a training run (after step t = s - 1, at the steps s of
    :func:`reset_steps`)."""

    def __init__(self, run):
        cfg, data = run.cfg, run.data
        method = cfg.method
        self.p = {"every": method.every, "count": method.count}
        self.reset_scale = float(method.reset_scale)
        self.steps = frozenset(reset_steps(self.p, cfg.train.steps))
        self.W0 = run.W.copy()  # the initial weights (padded), the reset target
        hold = holdout_dataset(cfg, data)
        self.X = [data.train.X[r] for r in run.trained]
        self.y, self.w = data.train.y, data.train.weight  # the full set, also with SGD
        self.Xh = [hold.X[r] for r in run.trained]
        self.yh, self.wh = hold.y, hold.weight

    def __call__(self, run, s):
        weights = run._weights()
        units = unit_outputs(run.cfg, weights, self.X)
        units_h = unit_outputs(run.cfg, weights, self.Xh)
        state = run.rule.state
        for r in range(units.shape[0]):
            pt = purity(units[r].reshape(-1, units.shape[-1]).T, self.y, self.w)
            pv = purity(units_h[r].reshape(-1, units_h.shape[-1]).T, self.yh, self.wh)
            mix = strength(self.reset_scale, pt, pv)
            d = run.dims[r]
            W = run.W[r, :, :, :d]
            W[...] = mix * self.W0[r, :, :, :d] + (1.0 - mix) * W
            state[0, r], state[1, r], state[2, r] = pt, pv, mix
        state[3, 0] += 1.0  # resets done: the compiled rule reports the diagnosis from now on
        _recheck_learned(run, s)


def _recheck_learned(run, s):
    """Banks marked learned at step s were checked before the reset: check them again."""
    learned = run.learned
    again = learned == s
    if not again.any():
        return
    learned[again] = -1
    c = np.array([1.0, -1.0])[: run.W.shape[1]]
    align = np.einsum("rbid,rd->rbi", run.W.astype(np.float64), run.signal.astype(np.float64))
    lead = (c[None, :, None] * align).max(axis=2)  # (K, B)
    hit = again & (run.beta[:, None] * lead >= float(run.cfg.model.threshold))
    learned[hit] = s


class GBlendingHook:
    """The probe trainings of a training run, at the steps of :func:`recompute_steps`."""

    def __init__(self, run):
        cfg, data = run.cfg, run.data
        self.kern = _kernels
        self.S = int(cfg.method.probe_steps)
        self.steps = frozenset(recompute_steps({"every": cfg.method.every}, cfg.train.steps))
        ev = run.train_eval
        hold = holdout_dataset(cfg, data)
        Xh = _pad([hold.X[r] for r in run.trained], run.width, run.dtype)
        K = len(run.trained)
        # (X, packed, y64, w64) of the training and held-out sets, for all encoders (index K)
        # and for each one alone (the uni-modal probes)
        self.train = [(ev.X[r:r + 1], None) for r in range(K)] + [(ev.X, ev.pack())]
        self.hold = [(Xh[r:r + 1], None) for r in range(K)] + [(Xh, None)]
        self.y, self.w = ev.y, ev.weight  # the full training set, also with SGD
        self.y64, self.w64 = data.train.y, data.train.weight
        self.yh64, self.wh64 = hold.y, hold.weight

    def _packed(self, sets, h):
        X, packed = sets[h]
        if packed is None:
            packed = self.kern.pack_samples(X)
            sets[h] = (X, packed)
        return X, packed

    def _head_loss(self, sets, h, W, dims, y, w):
        X, packed = self._packed(sets, h)
        f = np.empty(X.shape[1], dtype=W.dtype)
        phi = np.empty((X.shape[1], W.shape[0]), dtype=W.dtype)
        self.kern.forward(X, dims, W, self.kind, self.q, self.rho, f, phi, packed=packed)
        return head_loss(f, y, w)

    def __call__(self, run, s):
        K = run.W.shape[0]
        self.kind, self.q, self.rho = run.kind, run.q, run.rho
        eta = float(run.cfg.train.lr)
        L = np.zeros((4, K + 1))
        for h in range(K + 1):
            sel = slice(h, h + 1) if h < K else slice(0, K)
            W = np.ascontiguousarray(run.W[sel]).copy()
            dims = np.ascontiguousarray(run.dims[sel])
            X, packed = self._packed(self.train, h)
            learned = -np.ones(W.shape[:2], np.int64)
            grad = np.zeros_like(W)
            t = 0
            for upto, row in ((1, 0), (self.S, 2)):  # losses after probe steps 1 and S
                self.kern.gd_segment(X, dims, self.y, self.w, W, run.kind, run.q, run.rho, eta,
                                     np.ascontiguousarray(run.signal[sel]),
                                     np.ascontiguousarray(run.beta[sel]), np.inf, learned, t,
                                     upto - t, 0.0, False, grad, packed=packed)
                t = upto
                L[row, h] = self._head_loss(self.train, h, W, dims, self.y64, self.w64)
                L[row + 1, h] = self._head_loss(self.hold, h, W, dims, self.yh64, self.wh64)
        wts, G, _ = blend_weights(L[0], L[1], L[2], L[3])
        state = run.rule.state
        state[0, :K] = wts[:K]
        state[1, :] = wts[K]
        state[2, :K] = G[:K]
