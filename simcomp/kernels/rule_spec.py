"""What a training rule is: its method code, its named settings and the tuple the kernels take.

The compiled form of a rule is the tuple
``(code, par, hyper, state, table, key, stats)``:

=========  ==============================================================
code       int64, index into METHOD_NAMES (None for plain training)
par        float64 (N_PAR, K): row P_STEP is the step factor c_r, then one
           row per per-modality setting of any method (``P[key]``)
hyper      float64 (N_HYPER,): one slot per scalar setting of any method
           (``H[key]``; stop None is inf, a bool is 0/1)
state      float64 (rows, cols), in/out: the method's state kept across
           steps and segments, of the shape its spec declares (agm: (1, K),
           its running mean of s_r)
table      float64 (K, B, m, n): a per-sample table the method carries
           (umt's teacher unit values), else (0, 0, 0, 0)
key        int64, the bits of the method's 64-bit key
stats      float64 (6, K), out: score, ratio, scale, cosine of the last
           step (NaN where undefined), then k_r and the noise std used
=========  ==============================================================

Every layout above is generated from the method registry
(:mod:`simcomp.registry`): a setting a new method declares gets its row or
slot, and its index constant, without an edit here.  Compiled code reads
settings by name (``hyper[H_ALPHA]``, ``par[P_DROP, r]``), never by a literal
position.  The flags of each code (``READS_PHI`` ...) are arrays indexed by
the code, so no behaviour depends on the order of the codes.

rules.py holds the compiled stages that run a rule; this module only builds
and checks it (plain Python), so that callers need not import the kernels'
code to describe a method.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from simcomp.registry import REGISTRY, all_keys, setting_of

__all__ = ["METHOD_NAMES", "Rule", "make_rule", "rule_needs_phi", "P", "H"]

# The compiled rules: every registered method that trains with its own rule.
_KERNEL_SPECS = tuple(spec for spec in REGISTRY.values() if spec.kernel == spec.name)
METHOD_NAMES = tuple(spec.name for spec in _KERNEL_SPECS)
CODE = {name: code for code, name in enumerate(METHOD_NAMES)}
N_CODES = len(METHOD_NAMES)
NONE, LR_SCALE, OGM, OGM_GE, AGM, DROPOUT, AUX, ALTERNATING, MMPARETO, UMT = (
    CODE[n] for n in ("none", "lr_scale", "ogm", "ogm_ge", "agm", "dropout", "aux",
                      "alternating", "mmpareto", "umt"))

# What each code's compiled stage reads (indexed by code; numba freezes them as constants).
READS_PHI = np.array([s.reads_phi for s in _KERNEL_SPECS], dtype=np.bool_)
READS_UNITS = np.array([s.reads_units for s in _KERNEL_SPECS], dtype=np.bool_)
SECOND_GRADIENT = np.array([s.second_gradient for s in _KERNEL_SPECS], dtype=np.bool_)
HAS_TABLE = np.array([s.table is not None for s in _KERNEL_SPECS], dtype=np.bool_)
# Rows of the per-step statistics the block stages accumulate (the widest method's).
N_ACC = max([2] + [s.accumulators for s in _KERNEL_SPECS])

# Named rows of ``par`` and slots of ``hyper``, generated from the registry.
_RULE_KEYS = [k for k in all_keys() if setting_of(k).in_rule]
P = {"step": 0, **{k: i + 1 for i, k in enumerate(k for k in _RULE_KEYS
                                                   if setting_of(k).per_modality)}}
H = {k: i for i, k in enumerate(k for k in _RULE_KEYS if not setting_of(k).per_modality)}
N_PAR = len(P)
N_HYPER = max(len(H), 1)
P_STEP, P_DROP, P_AUX_WEIGHT, P_MIX = P["step"], P["drop"], P["aux_weight"], P["mix"]
H_ALPHA, H_START, H_STOP, H_RESCALE, H_FUSED_WEIGHT, H_DISTILL_WEIGHT = (
    H[k] for k in ("alpha", "start", "stop", "rescale", "fused_weight", "distill_weight"))
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

    def setting(self, key: str):
        """A setting as the rule holds it: (K,) for a per-modality one, else a float."""
        return self.par[P[key]].copy() if key in P else float(self.hyper[H[key]])

    def method_stats(self) -> dict[str, np.ndarray]:
        """The per-modality statistics of the last step (copies), NaN where undefined."""
        s = self.stats
        return {"method_score": s[S_SCORE].copy(), "method_ratio": s[S_RATIO].copy(),
                "method_scale": s[S_SCALE].copy(), "method_cosine": s[S_COSINE].copy()}


def _per_modality(name, value, K, setting):
    if value is None:
        return np.full(K, float(setting.default))
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape[0] != K:
        raise ValueError(f"{name} needs {K} values (one per trained modality), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo, hi = setting.lo, setting.hi
    if lo is not None and np.any(arr <= lo if setting.lo_open else arr < lo):
        raise ValueError(f"{name} must be {'>' if setting.lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and np.any(arr >= hi if setting.hi_open else arr > hi):
        raise ValueError(f"{name} must be {'<' if setting.hi_open else '<='} {hi}, got {value!r}")
    return arr


def make_rule(name, K, *, teacher_units=None, key=0, shape=(0, 0, 0, 0), **settings) -> Rule:
    """The compiled training rule of a method.

    Parameters
    ----------
    name : str
        One of :data:`METHOD_NAMES`.
    K : int
        Number of trained modalities of the run.
    teacher_units : ndarray, (K, B, m, n), optional
        The per-sample table of a method that carries one (umt: the frozen
        teachers' unit values on the training set).
    key : int
        64-bit key of the method's random stream.
    shape : tuple (B, m, n, D)
        The run's banks, width, samples and padded input width, for a method
        whose state size depends on them.
    **settings
        Any setting of any method (``simcomp.registry``), per trained
        modality (length K, config order) for per-modality ones; a setting
        left out takes the named method's default (another method's for a
        key the method does not take: unused).  ``start``/``stop``: the
        window of steps ``start <= t < stop`` (stop None: never stops).

    Returns
    -------
    Rule
    """
    if name not in METHOD_NAMES:
        raise ValueError(f"method {name!r} is not one of {', '.join(METHOD_NAMES)}")
    unknown = sorted(set(settings) - set(_RULE_KEYS))
    if unknown:
        raise TypeError(f"make_rule() got unexpected setting(s) {', '.join(unknown)}; "
                        f"valid: {', '.join(_RULE_KEYS)}")
    spec = REGISTRY[name]
    K = int(K)
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")

    def setting(k):
        return spec.setting(k) if k in spec.keys else setting_of(k)

    par = np.empty((N_PAR, K))
    for k, row in P.items():
        if k != "step":
            par[row] = _per_modality(k, settings.get(k), K, setting(k))
    par[P_STEP] = par[P[spec.lr_setting]] if spec.lr_setting else (
        _per_modality("lr_scale", settings.get("lr_scale"), K, setting("lr_scale")))
    hyper = np.zeros(N_HYPER)
    for k, slot in H.items():
        s = setting(k)
        value = settings.get(k, s.default)
        if s.kind == "float":
            value = 0.0 if value is None else value
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and (s.lo is None or value >= s.lo)):
                raise ValueError(f"{k} must be a finite number >= {s.lo:g}, got {value!r}")
        hyper[slot] = s.rule_value(value)
    if "start" in H and not (0 <= hyper[H_START] <= hyper[H_STOP]):
        raise ValueError(f"need 0 <= start <= stop, got start={settings.get('start')!r}, "
                         f"stop={settings.get('stop')!r}")
    if spec.table is not None:
        if teacher_units is None:
            raise ValueError(f"{name} needs {spec.table} (K, B, m, n)")
        teacher = np.ascontiguousarray(teacher_units, dtype=np.float64)
        if teacher.ndim != 4 or teacher.shape[0] != K:
            raise ValueError(f"{spec.table} must be (K={K}, B, m, n), got {teacher.shape}")
    else:
        teacher = np.zeros((0, 0, 0, 0))
    key64 = int(np.uint64(int(key) % (1 << 64)).view(np.int64))
    stats = np.full((6, K), np.nan)
    state = np.zeros(tuple(int(v) for v in spec.state_shape(K, *shape)))
    return Rule(name, CODE[name], par, hyper, state, teacher, key64, stats)


def rule_needs_phi(code) -> bool:
    """Whether a rule reads phi_{j,r} (its spec's ``reads_phi``)."""
    return bool(READS_PHI[code])
