"""What a training rule is: its method code, its parameters and the tuple the kernels take.

The compiled form of a rule is the tuple
``(code, par, hyper, state, teacher, key, stats)``:

=========  ==============================================================
code       int64, index into METHOD_NAMES
par        float64 (4, K): lr_scale c_r, drop d_r, aux_weight, mix a_r
hyper      float64 (6,): alpha, start, stop (inf: never), fused_weight,
           distill_weight, rescale (0/1)
state      float64 (1, K), in/out: agm's running mean of s_r
teacher    float64 (K, B, m, n) umt's teacher unit values, else (0,0,0,0)
key        int64, the bits of the method's 64-bit key
stats      float64 (6, K), out: score, ratio, scale, cosine of the last
           step (NaN where undefined), then k_r and the noise std used
=========  ==============================================================

rules.py holds the compiled stages that run a rule; this module only builds
and checks it (plain Python), so that callers need not import the kernels'
code to describe a method.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["METHOD_NAMES", "Rule", "make_rule", "rule_needs_phi"]

METHOD_NAMES = ("none", "lr_scale", "ogm", "ogm_ge", "agm", "dropout", "aux",
                "alternating", "mmpareto", "umt")
NONE, LR_SCALE, OGM, OGM_GE, AGM, DROPOUT, AUX, ALTERNATING, MMPARETO, UMT = range(10)
_DEFAULT_ALPHA = {"ogm": 0.1, "ogm_ge": 0.1, "agm": 1.0}
# rows of ``stats``
S_SCORE, S_RATIO, S_SCALE, S_COSINE, S_K, S_NOISE = range(6)


class Rule(NamedTuple):
    """A training rule, as :func:`make_rule` builds it.

    ``kernel()`` is the tuple the compiled loop takes; ``state`` and
    ``stats`` are updated in place by every segment.
    """

    name: str
    code: int
    par: np.ndarray
    hyper: np.ndarray
    state: np.ndarray
    teacher: np.ndarray
    key: int
    stats: np.ndarray

    def kernel(self) -> tuple:
        # Plain training carries None as its code: a type of its own, so the
        # compiled loop of a plain run is specialised without any rule code
        # (a shorter first compilation, and nothing to pay per step).
        code = None if self.code == NONE else np.int64(self.code)
        return (code, self.par, self.hyper, self.state, self.teacher,
                np.int64(self.key), self.stats)

    @property
    def K(self) -> int:
        return self.par.shape[1]

    def method_stats(self) -> dict[str, np.ndarray]:
        """The per-modality statistics of the last step (copies), NaN where undefined."""
        s = self.stats
        return {"method_score": s[S_SCORE].copy(), "method_ratio": s[S_RATIO].copy(),
                "method_scale": s[S_SCALE].copy(), "method_cosine": s[S_COSINE].copy()}


def _per_modality(name, value, K, default, lo=None, hi=None, lo_open=False, hi_open=False):
    if value is None:
        return np.full(K, float(default))
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape[0] != K:
        raise ValueError(f"{name} needs {K} values (one per trained modality), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo is not None and np.any(arr <= lo if lo_open else arr < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and np.any(arr >= hi if hi_open else arr > hi):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {value!r}")
    return arr


def make_rule(name, K, *, lr_scale=None, alpha=None, start=0, stop=None, drop=None,
              rescale=False, fused_weight=1.0, aux_weight=None, mix=None, distill_weight=10.0,
              teacher_units=None, key=0) -> Rule:
    """The compiled training rule of a method.

    Parameters
    ----------
    name : str
        One of :data:`METHOD_NAMES`.
    K : int
        Number of trained modalities of the run.
    lr_scale, drop, aux_weight, mix : sequence of float, optional
        Per trained modality (length K, config order); None gives the
        method default (lr_scale 1, drop 0, aux_weight 1, mix 1).
    alpha : float, optional
        Modulation strength; None gives 0.1 (ogm, ogm_ge) or 1.0 (agm).
    start, stop : int
        ogm, ogm_ge and agm modulate while ``start <= t < stop`` (stop None:
        never stops).
    rescale : bool
        dropout: multiply a kept phi_{j,r} by 1 / (1 - d_r).
    fused_weight : float
        aux: weight w_0 of the fused loss.
    distill_weight : float
        umt: lambda.
    teacher_units : ndarray, (K, B, m, n), optional
        umt: the frozen teachers' unit values on the training set.
    key : int
        64-bit key of the method's random stream.

    Returns
    -------
    Rule
    """
    if name not in METHOD_NAMES:
        raise ValueError(f"method {name!r} is not one of {', '.join(METHOD_NAMES)}")
    K = int(K)
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    par = np.empty((4, K))
    par[0] = _per_modality("lr_scale", lr_scale, K, 1.0, lo=0.0, lo_open=True)
    par[1] = _per_modality("drop", drop, K, 0.0, lo=0.0, hi=1.0, hi_open=True)
    par[2] = _per_modality("aux_weight", aux_weight, K, 1.0, lo=0.0)
    par[3] = _per_modality("mix", mix, K, 1.0)
    a = _DEFAULT_ALPHA.get(name, 0.0) if alpha is None else float(alpha)
    if not (math.isfinite(a) and a >= 0.0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    stop_v = math.inf if stop is None else float(stop)
    if int(start) < 0 or stop_v < int(start):
        raise ValueError(f"need 0 <= start <= stop, got start={start!r}, stop={stop!r}")
    hyper = np.array([a, float(int(start)), stop_v, float(fused_weight), float(distill_weight),
                      1.0 if rescale else 0.0])
    if not np.all(np.isfinite(hyper[[0, 1, 3, 4]])):
        raise ValueError("fused_weight and distill_weight must be finite")
    if name == "umt":
        if teacher_units is None:
            raise ValueError("umt needs teacher_units (K, B, m, n)")
        teacher = np.ascontiguousarray(teacher_units, dtype=np.float64)
        if teacher.ndim != 4 or teacher.shape[0] != K:
            raise ValueError(f"teacher_units must be (K={K}, B, m, n), got {teacher.shape}")
    else:
        teacher = np.zeros((0, 0, 0, 0))
    key64 = int(np.uint64(int(key) % (1 << 64)).view(np.int64))
    stats = np.full((6, K), np.nan)
    return Rule(name, METHOD_NAMES.index(name), par, hyper, np.zeros((1, K)), teacher, key64,
                stats)


def rule_needs_phi(code) -> bool:
    """Whether a rule reads phi_{j,r} (all but none and lr_scale)."""
    return code >= OGM
