"""Theory of the mitigation methods: reduced dynamics of the alignments and the race.

Without input noise and distractors, every sample is one of the 2^(K+1)
(label, presence) patterns and each neuron only ever sees its modality's
signal direction v_r.  The pre-activation of neuron (r, b, i) on a pattern is
y s_r c_b beta_r a_{r,b,i}, so every encoder output -- and with it every
quantity a method computes from outputs (loss coefficients, OGM scores, AGM
scores, the teacher's features, MMPareto's gradient inner products) -- is a
function of the alignments a.  Every gradient is a multiple of v_r per
neuron, so a GD step on the weights is exactly a step on the alignments
(docs/methods.md derives it method by method):

    a_{r,b,i} <- a_{r,b,i} - eta_r ( k_r sum_P D_{P,r} y_P s_{P,r} beta_r h'(z_{r,b,i,P}) + distillation )

with D_{P,r} the derivative of the method's loss with respect to phi_r on
pattern P.  For dropout the step is averaged over the 2^K mask patterns
(the expected update); ogm_ge's noise has mean zero, so its expected update
is ogm's.

The step loop is compiled (:mod:`simcomp.theory.method_kernel`); this module
validates and prepares its arguments.  The NumPy version it replaced is kept
in ``tests/reference_method_dynamics.py`` as the slow reference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..config import Config
from ..interrupts import chunks, deferred
from ..registry import REGISTRY, all_keys, setting_of
from .errors import test_error_coinflip
from .patterns import population_patterns, presence_fraction
from . import method_kernel as _kernel
from .race import initial_gamma, race_learn_step, rate

__all__ = [
    "DETERMINISTIC_REDUCTION",
    "MethodDynamics",
    "MethodPrediction",
    "method_params",
    "method_dynamics",
    "teacher_alignment",
    "predictor_test_error",
    "effective_rates",
    "predict_method",
]

# The methods whose reduced dynamics is exact; dropout's and ogm_ge's are
# exact for the expected update only.  A method that needs the trainable fusion head
# (mmcosine) is not a method of this learner: its recursion is simcomp.theory.fusion_cosine.
_FIXED_HEAD = tuple(name for name, spec in REGISTRY.items() if not spec.needs_trainable_head)
DETERMINISTIC_REDUCTION = tuple(name for name in _FIXED_HEAD if REGISTRY[name].exact_reduction)
_ALL = DETERMINISTIC_REDUCTION + tuple(name for name in _FIXED_HEAD
                                       if name not in DETERMINISTIC_REDUCTION)


# --------------------------------------------------------------------------- learner on patterns


def _srelu(z, q, rho):
    zc = np.clip(z, 0.0, rho)
    return np.where(z <= 0.0, 0.0, np.where(z <= rho, zc**q / (q * rho ** (q - 1.0)),
                                            z - (1.0 - 1.0 / q) * rho))


def _srelu_prime(z, q, rho):
    zc = np.clip(z, 0.0, rho)
    return np.where(z <= 0.0, 0.0, np.where(z <= rho, (zc / rho) ** (q - 1.0), 1.0))


def _unit(z, form, q, rho):
    """Unit output and derivative: psi (symmetric), srelu or relu (class banks)."""
    if form == "symmetric":
        az = np.abs(z)
        return np.sign(z) * _srelu(az, q, rho), _srelu_prime(az, q, rho)
    if form == "srelu":
        return _srelu(z, q, rho), _srelu_prime(z, q, rho)
    return np.maximum(z, 0.0), (z > 0.0).astype(np.float64)


def _sigmoid(u):
    return np.exp(-np.logaddexp(0.0, -u))


@dataclass
class _Patterns:
    beta: np.ndarray  # (K,)
    y: np.ndarray  # (P,)
    s: np.ndarray  # (P, K) float
    w: np.ndarray  # (P,)
    q: float
    rho: float
    form: str  # "symmetric", "srelu" (class banks) or "relu" (class banks)

    def encoders(self, a):
        """z, h, h' of shape (K, B, m, P), phi (P, K) and dphi/da (K, B, m, P) at alignments a."""
        B = a.shape[1]
        c = np.array([1.0, -1.0])[:B]
        ysb = (self.y[:, None] * self.s * self.beta[None, :]).T  # (K, P): y s_r beta_r
        z = c[None, :, None, None] * a[..., None] * ysb[:, None, None, :]
        h, dh = _unit(z, self.form, self.q, self.rho)
        phi = np.einsum("b,rbip->pr", c, h)
        return c, z, h, dh, phi, dh * ysb[:, None, None, :]


def _check_patterns(alignment0, beta, y_pat, s_pat, w_pat, learner, activation):
    a = np.array(alignment0, dtype=np.float64, copy=True)
    beta = np.asarray(beta, dtype=np.float64).reshape(-1)
    y = np.asarray(y_pat, dtype=np.float64).reshape(-1)
    s = np.asarray(s_pat, dtype=np.float64)
    w = np.asarray(w_pat, dtype=np.float64).reshape(-1)
    if learner not in ("symmetric", "class_banks") or activation not in ("srelu", "relu"):
        raise ValueError(f"unknown learner/activation {learner!r}/{activation!r}")
    if learner == "symmetric" and activation != "srelu":
        raise ValueError("the symmetric learner is built from srelu only")
    banks = 1 if learner == "symmetric" else 2
    if a.ndim != 3 or a.shape[0] != beta.size or a.shape[1] != banks or a.shape[2] < 1:
        raise ValueError(
            f"alignment0 must have shape (K_run={beta.size}, B={banks}, m >= 1), got {a.shape}")
    if s.shape != (y.size, beta.size) or w.size != y.size:
        raise ValueError(f"pattern shapes disagree: y {y.shape}, s {s.shape}, w {w.shape}, "
                         f"beta {beta.shape}")
    form = "symmetric" if learner == "symmetric" else activation
    return a, beta, y, s, w, form


class _HookContext:
    """What a method's theory hook reads: the patterns' outputs, losses and probe steps."""

    def __init__(self, pat: _Patterns, w_holdout: np.ndarray, eta_r: np.ndarray):
        self.pat, self.eta_r = pat, eta_r
        self.y, self.w, self.w_holdout = pat.y, pat.w, w_holdout

    def units(self, a):
        """Unit outputs h (K, B, m, P) at alignments a."""
        return self.pat.encoders(a)[2]

    def head_output(self, a, head):
        """phi_head on every pattern (head = K: the fused output f)."""
        phi = self.pat.encoders(a)[4]
        return phi[:, head] if head < phi.shape[1] else phi.sum(axis=1)

    def loss(self, g, weight):
        return float(np.dot(weight, np.logaddexp(0.0, -self.y * g)))

    def probe_step(self, a, head):
        """One plain GD step on head ``head``'s own loss: modality head's uni-modal loss
        (only a_head moves), or the fused loss (head = K)."""
        _, _, _, _, phi, dphi = self.pat.encoders(a)
        y, w = self.y, self.w
        K = phi.shape[1]
        if head < K:
            D = np.zeros_like(phi)
            D[:, head] = w * y * -_sigmoid(-y * phi[:, head])
        else:
            D = np.repeat((w * y * -_sigmoid(-y * phi.sum(axis=1)))[:, None], K, axis=1)
        return a - self.eta_r[:, None, None] * np.einsum("pr,rbip->rbi", D, dphi)


# --------------------------------------------------------------------------- parameters


def method_params(cfg: Config, trained: Sequence[int]) -> dict[str, Any]:
    """The method's settings for a run training ``trained`` (per-modality lists in config order).

    The same keys as the training rule takes (``lr_scale``, ``alpha``,
    ``start``, ``stop``, ``drop``, ``rescale``, ``fused_weight``,
    ``aux_weight``, ``mix``, ``distill_weight``), only those of the method.
    """
    idx = sorted(int(r) for r in trained)
    out: dict[str, Any] = {}
    method = cfg.method
    rule_keys = [k for k in all_keys() if setting_of(k).in_rule]
    for key in rule_keys:
        value = getattr(method, key)
        if value is not None and not setting_of(key).per_modality:
            out[key] = value
    for key in rule_keys:
        value = getattr(method, key)
        if value is None or not setting_of(key).per_modality:
            continue
        out[key] = ([float(value[r]) for r in idx] if isinstance(value, tuple)
                    else [float(value)] * len(idx))
    return out


def _resolve(method: str, params: dict | None, K: int) -> dict[str, Any]:
    if method in REGISTRY and REGISTRY[method].needs_trainable_head:
        raise ValueError(f"method {method!r} needs a trainable fusion head (the fusion engine); "
                         f"the fixed-head theory takes: {', '.join(_ALL)}")
    if method not in _ALL:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(_ALL)}")
    p = {key: value for key, value in dict(params or {}).items() if value is not None}
    spec = REGISTRY[method]
    out: dict[str, Any] = {}
    # Every setting of every method (the registry's): the method's own default,
    # another method's for a key it does not take (then unused).
    for key in all_keys():
        s = spec.setting(key) if key in spec.keys else setting_of(key)
        if not s.in_rule:
            continue
        if s.per_modality:
            out[key] = np.asarray(p.get(key, [s.default] * K), dtype=np.float64).reshape(-1)
            if out[key].shape != (K,):
                raise ValueError(f"{key} must have {K} entries, got {out[key].tolist()}")
        elif s.kind == "stop":
            out[key] = int(p[key]) if key in p else np.inf
        elif s.kind == "count":
            out[key] = int(p[key]) if key in p else None
        else:
            value = p.get(key, s.default)
            out[key] = {"int": int, "bool": bool}.get(s.kind, float)(value)
    return out


# --------------------------------------------------------------------------- dynamics


@dataclass
class MethodDynamics:
    """Trajectory of a method's reduced dynamics.

    Attributes
    ----------
    method : str
    steps : (R,) int
        Recorded steps (0, record_every, ..., and always the last).
    alignment : (R, K_run, B, m)
    leading_alignment : (R, K_run)
        Max over banks and neurons.
    learned_step : (K_run,) int
        First step with beta_r max alignment >= threshold (every step checked); -1 never.
    learned_step_bank : (K_run, B) int
    final_alignment : (K_run, B, m)
    score, ratio, scale, cosine : (T, K_run)
        Per-step method statistics (NaN where the method does not define them).
    """

    method: str
    steps: np.ndarray
    alignment: np.ndarray
    leading_alignment: np.ndarray
    learned_step: np.ndarray
    learned_step_bank: np.ndarray
    final_alignment: np.ndarray
    score: np.ndarray = field(repr=False)
    ratio: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    cosine: np.ndarray = field(repr=False)


def method_dynamics(alignment0, beta, y_pat, s_pat, w_pat, q: float, rho: float, eta: float,
                    steps: int, method: str = "none", params: dict | None = None,
                    learner: str = "symmetric", activation: str = "srelu",
                    threshold: float | None = None, record_every: int = 1,
                    teacher_alignment=None, w_holdout=None) -> MethodDynamics:
    """Gradient descent under ``method`` on the pattern loss, in alignment coordinates.

    Parameters
    ----------
    alignment0 : array_like, shape (K_run, B, m)
        Initial alignments (B = 1 symmetric, 2 class banks; bank 0 is c = +1).
    beta : array_like, shape (K_run,)
    y_pat, s_pat, w_pat : array_like
        Patterns: labels (P,), presence (P, K_run), weights (P,).
    q, rho, eta : float
    steps : int
        Number of GD steps T.
    method : str
        Any method; ``dropout`` gives the expected-update dynamics and
        ``ogm_ge`` ogm's; ``ume`` is the uni-modal runs (as ``alternating``).
    params : dict, optional
        The method's settings (see :func:`method_params`); missing ones take
        the method defaults.
    learner, activation : str
    threshold : float, optional
        Learn threshold on beta_r * max alignment (default rho).
    record_every : int
    teacher_alignment : array_like, shape (K_run, B, m)
        umt only: the frozen teachers' alignments (see :func:`teacher_alignment`).
    w_holdout : array_like, shape (P,), optional
        Methods that compare with a held-out sample (relearning, gblending): its
        weights on the same patterns; default ``w_pat`` (population mode: the
        held-out sample is the population).

    Returns
    -------
    MethodDynamics

    Notes
    -----
    The step loop is compiled (:func:`simcomp.theory.method_kernel._method_kernel`), about a
    microsecond a step for K = 2, m = 16; no Python runs per step.
    """
    a, beta, y, s, w, form = _check_patterns(alignment0, beta, y_pat, s_pat, w_pat, learner,
                                            activation)
    K, B, m = a.shape
    p = _resolve(method, params, K)
    steps, record_every = int(steps), int(record_every)
    if steps < 0 or record_every < 1:
        raise ValueError(f"need steps >= 0 and record_every >= 1, got {steps}, {record_every}")
    a_teacher = np.zeros_like(a)
    if method == "umt":
        if teacher_alignment is None:
            raise ValueError("method umt needs teacher_alignment")
        a_teacher = np.ascontiguousarray(teacher_alignment, dtype=np.float64)
        if a_teacher.shape != a.shape:
            raise ValueError(f"teacher_alignment must have shape {a.shape}, got {a_teacher.shape}")
    gains, probs = np.zeros((0, K)), np.zeros(0)
    if method == "dropout":  # every mask pattern: its gains on phi and its probability
        deltas = np.array(list(itertools.product((0.0, 1.0), repeat=K))).reshape(-1, K)
        probs = np.prod(np.where(deltas == 1.0, 1.0 - p["drop"], p["drop"]), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # drop 1 with rescaling: nan, as trained
            gains = deltas / (1.0 - p["drop"]) if p["rescale"] else deltas
    lr = REGISTRY[method].lr_setting
    eta_r = float(eta) * (p[lr] if lr else np.ones(K))
    thr = float(rho if threshold is None else threshold)
    rec_steps = np.arange(0, steps + 1, record_every, dtype=np.int64)
    if rec_steps[-1] != steps:
        rec_steps = np.append(rec_steps, np.int64(steps))
    stats = np.full((4, steps, K), np.nan)
    ysb = np.ascontiguousarray((y[:, None] * s * beta[None, :]).T)  # (K, P): y s_r beta_r
    code = _kernel.METHOD_CODE[method]
    unit = {"symmetric": _kernel.SYMMETRIC, "srelu": _kernel.SRELU, "relu": _kernel.RELU}[form]
    a = np.array(a, dtype=np.float64, order="C")  # updated in place by the kernel
    rec = np.empty((rec_steps.size, K, B, m))
    learned_bank = np.full((K, B), -1, dtype=np.int64)
    # a method's own state (pmr's prototypes ...), and the settings its step reads
    mstate = np.zeros(_kernel.STATE[method](K, B, m) if method in _kernel.STATE else (0, 0))
    extra = np.array([float(p[key]) for key in _kernel.EXTRA.get(method, ())], dtype=np.float64)
    work = (rec, learned_bank, np.zeros(K), np.empty((K, B, m, y.size)), mstate)
    args = (np.ascontiguousarray(beta), ysb, np.ascontiguousarray(y), np.ascontiguousarray(w),
            unit, (float(q), float(rho)), code, (thr, steps),
            np.ascontiguousarray(eta_r, dtype=np.float64),
            (p["alpha"], float(p["start"]), float(p["stop"])),
            (p["fused_weight"], np.ascontiguousarray(p["aux_weight"]), p["distill_weight"],
             extra),
            np.ascontiguousarray(gains, dtype=np.float64),
            np.ascontiguousarray(probs, dtype=np.float64), a_teacher, rec_steps, stats, work)
    # A method's work between steps (probes, resets: its registry module's theory hook)
    # splits the loop at the steps it names, and may change the aux weights of the pieces.
    hook, stops = None, []
    if REGISTRY[method].theory_hook is not None:
        w_hold = w if w_holdout is None else np.asarray(w_holdout, dtype=np.float64).reshape(-1)
        if w_hold.shape != w.shape:
            raise ValueError(f"w_holdout must have shape {w.shape}, got {w_hold.shape}")
        ctx = _HookContext(_Patterns(beta, y, s, w, float(q), float(rho), form), w_hold,
                           np.asarray(eta_r, dtype=np.float64))
        hook = REGISTRY[method].theory_hook(p, steps, ctx)
        hook.start(a)
        stops = sorted(t for t in set(hook.steps) if 0 <= t <= steps)
    blend = {"fused_weight": float(p["fused_weight"]),
             "aux_weight": np.ascontiguousarray(p["aux_weight"], dtype=np.float64).copy()}
    rec_i = 0
    for c0, c1 in chunks(steps + 1):  # short compiled calls: a signal is seen between them
        cuts = [c0] + [t for t in stops if c0 < t < c1] + [c1]
        for t0, t1 in zip(cuts[:-1], cuts[1:]):
            if hook is not None and t0 in stops:
                hook(t0, a, blend)
            piece = args[:10] + ((blend["fused_weight"], blend["aux_weight"],
                                  p["distill_weight"], extra),) + args[11:]
            with deferred():
                rec_i = _kernel._method_kernel(a, *piece, (t0, t1, rec_i))
            if hook is not None:
                hook.stats(t0, min(t1, steps), stats)
    never = np.iinfo(np.int64).max
    first = np.where(learned_bank >= 0, learned_bank, never).min(axis=1)
    return MethodDynamics(
        method=method, steps=rec_steps, alignment=rec, leading_alignment=rec.max(axis=(2, 3)),
        learned_step=np.where(first == never, -1, first).astype(np.int64),
        learned_step_bank=learned_bank, final_alignment=a, score=stats[0], ratio=stats[1],
        scale=stats[2], cosine=stats[3],
    )


def teacher_alignment(alignment0, beta, y_pat, s_pat, w_pat, q: float, rho: float, eta: float,
                      teacher_steps: int, learner: str = "symmetric",
                      activation: str = "srelu") -> np.ndarray:
    """umt's teachers: every modality trained alone (plainly) for ``teacher_steps`` steps.

    Each encoder alone follows its own uni-modal loss, which is what the
    ``alternating`` dynamics computes for all of them at once.  Returns the
    teachers' final alignments, (K_run, B, m).
    """
    # only the final alignments are used: record the first and the last step, not every one
    return method_dynamics(alignment0, beta, y_pat, s_pat, w_pat, q, rho, eta, teacher_steps,
                           "alternating", learner=learner, activation=activation,
                           record_every=max(int(teacher_steps), 1)).final_alignment


def predictor_test_error(final_alignment, beta, presence, mix=None, learner: str = "symmetric",
                         activation: str = "srelu", q: float = 3.0, rho: float = 1.0,
                         correlation: float = 0.0) -> float:
    """Noise-free test error of sign(sum_r mix_r phi_r) at the given alignments.

    Patterns are weighted by the distribution's presence probabilities; an
    output of exactly 0 counts half.  With ``mix`` ones this is the plain
    fused model's error; with the uni-modal runs' alignments stacked it is
    the uni-modal ensemble's.  ``correlation`` is the data's presence correlation.
    """
    a = np.asarray(final_alignment, dtype=np.float64)
    y, s, w = population_patterns(presence, correlation)
    a, beta, y, s, w, form = _check_patterns(a, beta, y, s, w, learner, activation)
    mix = np.ones(beta.size) if mix is None else np.asarray(mix, dtype=np.float64).reshape(-1)
    phi = _Patterns(beta, y, s, w, float(q), float(rho), form).encoders(a)[4]
    margin = y * (phi @ mix)
    return float(w @ ((margin < 0.0) + 0.5 * (margin == 0.0)))


# --------------------------------------------------------------------------- the race


def effective_rates(method: str, kappa, params: dict | None = None, *, teacher_unit=None,
                    banks: int = 1, width: int = 1) -> np.ndarray:
    """The race's growth rates under ``method`` while every output is still near 0.

    At the start every p_{j,r} is about 1/2, so: ogm/ogm_ge (ratio 1, no
    modulation), agm (ratio = optimal = 1, k = 1), alternating, ume keep kappa;
    lr_scale multiplies it by c_r; aux by w_0 + lambda_r; dropout by the
    keep probability 1 - d_r (by 1 with rescaling); mmpareto by 3 (the two
    gradients agree, their sum is taken and scaled by 1.5); umt adds the
    teacher's pull 4 lambda hT / (B m) relative to the fused drive of 1/2 per
    sample, with hT the teacher's leading unit output on a signal sample
    (``teacher_unit``, (K_run,)).

    ``kappa`` is (K_run,) or (K_run, B); the result has its shape.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    K = kappa.shape[0]
    p = _resolve(method, params, K)
    col = (slice(None),) + (None,) * (kappa.ndim - 1)
    # each method's own formula (its registry module's ``race_rate``)
    return REGISTRY[method].race_rate(kappa, p, col, teacher_unit=teacher_unit, banks=banks,
                                      width=width)


# --------------------------------------------------------------------------- prediction


@dataclass
class MethodPrediction:
    """Theory's prediction for one run under a method (per-modality arrays indexed like ``trained``)."""

    method: str
    trained: list
    kappa: np.ndarray  # (K_run, B) plain rates
    kappa_effective: np.ndarray  # (K_run, B) rates under the method (early phase)
    race_learned_step: np.ndarray  # (K_run,) float, inf never
    predicted_winner: int | None
    dynamics: MethodDynamics = field(repr=False)
    predicted_learned_step: np.ndarray  # (K_run,) int, -1 never
    learned_by_horizon: np.ndarray  # (K_run,) bool
    co_learned: bool  # every trained modality learned by T
    test_error_noiseless: float  # the method's predictor
    test_error_coinflip: float
    teacher_alignment: np.ndarray | None = None
    diverged: bool = False  # the alignments overflowed (e.g. umt with too large a distill_weight)

    def to_json(self, names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready dict; per-modality values keyed by ``names`` (inf and -1 become None)."""
        names = list(names)

        def per_mod(arr, never=None):
            out = {}
            for nm, v in zip(names, np.asarray(arr).tolist()):
                if isinstance(v, list):
                    v = v[0] if len(v) == 1 else v
                bad = (never is not None and v == never) or (isinstance(v, float) and not np.isfinite(v))
                out[nm] = None if bad else v
            return out

        return {
            "method": self.method,
            "kappa_effective": per_mod(self.kappa_effective),
            "race_learned_step": per_mod(self.race_learned_step),
            "predicted_winner": None if self.predicted_winner is None else names[self.predicted_winner],
            "predicted_learned_step": per_mod(self.predicted_learned_step, never=-1),
            "learned_by_horizon": per_mod(self.learned_by_horizon),
            "co_learned": bool(self.co_learned),
            "test_error_noiseless": self.test_error_noiseless,
            "test_error_coinflip": self.test_error_coinflip,
            "diverged": bool(self.diverged),
        }


def _plain_dynamics(reduced) -> MethodDynamics:
    """Method ``none``'s dynamics is plain training's: the reduced dynamics, reused."""
    steps = max(int(reduced.steps[-1]), 0)
    K = reduced.final_alignment.shape[0]
    nan = np.full((steps, K), np.nan)
    return MethodDynamics(
        method="none", steps=reduced.steps, alignment=reduced.alignment,
        leading_alignment=reduced.leading_alignment, learned_step=reduced.learned_step,
        learned_step_bank=reduced.learned_step_bank, final_alignment=reduced.final_alignment,
        score=nan, ratio=nan.copy(), scale=nan.copy(), cosine=nan.copy())


def predict_method(cfg: Config, trained: Sequence[int], alignment0, y_pat, s_pat,
                   w_pat, plain=None, w_holdout=None) -> MethodPrediction:
    """Section-5-style prediction of a run of ``cfg`` under its method.

    ``alignment0`` (K_run, B, m) are the run's initial alignments and the
    patterns its training data (or the population patterns).  The reduced
    dynamics runs ``train.steps`` steps at ``train.lr``; umt's teachers run
    ``method.teacher_steps`` (default ``train.steps``) from the same
    initial alignments; ``ume`` is the uni-modal runs and its predictor their
    sum.  Test errors use the distribution's presence probabilities.
    ``plain``: plain training's :class:`~simcomp.theory.ReducedDynamics` of
    the same run, reused as method ``none``'s dynamics (the same recursion)
    instead of being run again.  ``w_holdout``: the held-out sample's weights on the
    same patterns, for a method that compares with one (default: ``w_pat``, the
    population mode's held-out "sample").
    """
    trained = sorted(int(r) for r in trained)
    mods = [cfg.data.modality[r] for r in trained]
    beta = np.array([mod.beta for mod in mods])
    presence = np.array([mod.presence for mod in mods])
    model, name = cfg.model, cfg.method.name
    q, rho, thr, eta, T = model.q, model.rho, model.threshold, cfg.train.lr, cfg.train.steps
    a0 = np.asarray(alignment0, dtype=np.float64)
    params = method_params(cfg, trained)
    common = dict(learner=model.learner, activation=model.activation)
    aT = None
    teacher_unit = None
    if name == "umt":
        t_steps = cfg.train.steps if cfg.method.teacher_steps is None else cfg.method.teacher_steps
        aT = teacher_alignment(a0, beta, y_pat, s_pat, w_pat, q, rho, eta, t_steps, **common)
        form = "symmetric" if model.learner == "symmetric" else model.activation
        teacher_unit = _unit(beta * aT.max(axis=(1, 2)), form, q, rho)[0]
    # a method without a joint run (ume) is predicted by the dynamics its spec names
    dyn_method = name if REGISTRY[name].trains_joint else REGISTRY[name].dynamics
    with np.errstate(over="ignore", invalid="ignore"):  # reported as ``diverged`` instead
        if name == "none" and plain is not None:
            dyn = _plain_dynamics(plain)
        else:
            dyn = method_dynamics(a0, beta, y_pat, s_pat, w_pat, q, rho, eta, T, dyn_method,
                                  params, threshold=thr, record_every=cfg.train.trace_every,
                                  teacher_alignment=aT, w_holdout=w_holdout, **common)
        predictor = REGISTRY[name].predictor_setting
        err = predictor_test_error(dyn.final_alignment, beta, presence,
                                   params.get(predictor) if predictor else None,
                                   q=q, rho=rho, correlation=cfg.data.presence_correlation,
                                   **common)
    # Learned alignments stay O(rho / beta) (they grow at most linearly after learning).
    diverged = not bool(np.all(np.abs(dyn.alignment) < 1e12))
    pi = presence_fraction(y_pat, s_pat, w_pat, model.banks)
    q_race, rho_race = (1.0, thr) if model.activation == "relu" else (q, rho)
    kappa = rate(beta, pi, q_race, rho_race)
    kappa_eff = effective_rates(name, kappa, params, teacher_unit=teacher_unit, banks=model.banks,
                                width=model.width)
    eta_race = eta
    race = race_learn_step(initial_gamma(a0), kappa_eff, beta[:, None], q_race, rho_race, eta_race,
                           thr).min(axis=1)
    finite = np.isfinite(race)
    winner = int(np.argmin(np.where(finite, race, np.inf))) if finite.any() else None
    learned = dyn.learned_step >= 0
    coin = test_error_coinflip(learned, presence, cfg.data.presence_correlation)
    return MethodPrediction(
        method=name, trained=trained, kappa=kappa, kappa_effective=kappa_eff,
        race_learned_step=race, predicted_winner=winner, dynamics=dyn,
        predicted_learned_step=dyn.learned_step, learned_by_horizon=learned,
        co_learned=bool(learned.all()), test_error_noiseless=err, test_error_coinflip=coin,
        teacher_alignment=aT, diverged=diverged,
    )
