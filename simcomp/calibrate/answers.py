"""The answers of a calibration: potential, competition cost, and every method's predicted gain.

For a sample of the consistent set (spread over its potential), every
method is run through its reduced dynamics (:func:`simcomp.theory.mitigation.method_dynamics`)
on the configuration's population patterns and read out at the same
horizon and with the same decision scale as the plain joint run; the gain
is the method's predicted accuracy minus the plain joint network's, both on
the user's scale, in accuracy points.  Ranges are the smallest and largest
gain over the sample, the median its median.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..data import make_experiment_data
from ..theory.mitigation import method_dynamics, teacher_alignment
from ..trace import geometry
from .mapping import readout_accuracy, to_user
from .measurements import Measurements
from .methods import METHOD_PARAMS, MethodSpec, method_settings
from .search import SearchResult, _psi_sum, toy_config

__all__ = ["MethodAnswer", "Answers", "answer", "verdict", "VERDICT_RULE", "sample_candidates",
           "REFINE"]

# Where a method's dynamics diverge at the toy's step size, the step is divided by these
# factors in turn (k times as many steps) until they do not (docs/calibration.md).
REFINE = (2, 4, 8, 16)
# umt's stability bound may ask for a finer step than REFINE's last; past this factor the run
# would cost too many steps, and the member is reported as diverged (cannot tell).
MAX_REFINE = 256

VERDICT_RULE = ("helps: the whole range is above 0 and the median at least the tolerance; "
                "hurts: the whole range is below 0 and the median at most minus the tolerance; "
                "no measurable effect: the whole range lies within plus or minus the tolerance; "
                "cannot tell: anything else (the range straddles the tolerance band)")


def verdict(low, median, high, tol_points: float) -> str:
    """The verdict of a gain range in points (:data:`VERDICT_RULE`); None values: cannot tell."""
    if low is None or median is None or high is None:
        return "cannot tell"
    if low > 0.0 and median >= tol_points:
        return "helps"
    if high < 0.0 and median <= -tol_points:
        return "hurts"
    if -tol_points < low and high < tol_points:
        return "no measurable effect"
    return "cannot tell"


@dataclass
class MethodAnswer:
    method: str
    which: str  # "given" or "best"
    setting: dict
    gain_median: float | None
    gain_low: float | None
    gain_high: float | None
    verdict: str
    sensitivity: float | None
    diverged: int = 0  # sampled configurations where the toy's dynamics blew up

    def to_json(self) -> dict:
        r = lambda x: None if x is None else round(float(x), 2)  # noqa: E731
        return {"method": self.method, "which": self.which, "setting": self.setting,
                "gain_median": r(self.gain_median), "gain_low": r(self.gain_low),
                "gain_high": r(self.gain_high), "verdict": self.verdict,
                "sensitivity": r(self.sensitivity)}


@dataclass
class Answers:
    potential: tuple  # (low, high) in points
    competition_cost: tuple
    methods: list  # MethodAnswer
    sampled: int  # consistent configurations the methods were run on
    seconds: float
    refused: dict = None  # method -> why calibrate does not predict it
    notes: list = None  # what the methods' runs had to do (finer steps where they diverged)


def sample_candidates(candidates: list, n: int) -> list:
    """Up to ``n`` members spread over the set: sorted by (potential, joint), evenly spaced."""
    if len(candidates) <= n:
        return list(candidates)
    order = sorted(candidates, key=lambda c: (c.potential, c.joint, c.c, c.horizon))
    idx = np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))
    return [order[i] for i in idx]


def _stable_refinement(dynamics: str, params: dict, eta: float, w, s, beta, shape) -> int:
    """The factor k (a power of 2, 1 if none is needed) dividing the step so umt is stable.

    Near its teacher a learned neuron's distillation term has curvature
    lambda (2 / (B m)) pi_r beta_r^2 (pi_r the weight of the samples where modality r carries
    signal), and gradient descent on it is stable only for eta times it below 2
    (docs/methods.md, "A stability limit of umt").  Past the limit the dynamics oscillate;
    they do not always overflow, so the bound is applied before running, not after.
    """
    if dynamics != "umt":
        return 1
    K, B, m = shape
    pi = np.array([float(np.asarray(w)[np.asarray(s)[:, r] == 1].sum()) for r in range(K)])
    ratio = float(params.get("distill_weight", 0.0)) * eta * float(
        np.max(pi * np.asarray(beta) ** 2)) / (B * m)
    return 1 if ratio <= 1.0 else int(2 ** math.ceil(math.log2(ratio)))


def _setting(spec: MethodSpec, value, start) -> dict:
    if spec.param is None:
        return {}
    out = {spec.param: value}
    if spec.has_start:
        out["start"] = start
    return out


def answer(meas: Measurements, found: SearchResult, *, methods=None, sample: int = 24,
           given: dict | None = None, progress: Callable[[str], None] | None = None) -> Answers:
    """Potential, competition cost and the methods' gains over the consistent set.

    ``methods`` names the methods to evaluate (default all); ``given``
    maps a method to its setting (``{param: value, "start": fraction}``),
    overriding the defaults of :data:`.methods.METHOD_PARAMS` and the
    measurements' ``[methods]`` table.
    """
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    pts = 100.0
    names = list(METHOD_PARAMS) if methods is None else list(methods)
    refused = {nm: METHOD_PARAMS[nm].refused for nm in names if METHOD_PARAMS[nm].refused}
    names = [nm for nm in names if nm not in refused]
    if not found.candidates:
        return Answers((None, None), (None, None), [], 0, 0.0, refused)
    pot = np.array([c.potential for c in found.candidates])
    potential = (pts * pot.min(), pts * pot.max())
    cost = (potential[0] - pts * meas.joint, potential[1] - pts * meas.joint)
    settings = dict(meas.methods)
    settings.update(given or {})
    chosen = sample_candidates(found.candidates, sample)
    ch = meas.chance
    # gains[method][setting value] -> list over sampled configurations (None: diverged)
    gains = {nm: {} for nm in names}
    refined = {nm: {} for nm in names}  # method -> value -> the refinements k used (k > 1)
    last = time.perf_counter()
    for j, cand in enumerate(chosen):
        cfg = toy_config(meas.names, cand.presence, cand.beta,
                         cand.c if found.correlation_modelled else None, cand.seed, cand.steps)
        data = make_experiment_data(cfg)
        tr = data.train
        y, s, w = tr.y, tr.presence.astype(np.int8), tr.weight
        a0 = geometry(data.init, data.dictionaries)[0]
        q, rho, eta, T = cfg.model.q, cfg.model.rho, cfg.train.lr, cand.steps
        thr = cfg.model.threshold
        scale = cand.decision_scale * rho / q
        K = meas.K
        teachers = {}  # refinement k -> umt's teacher alignments at step eta / k
        baseline = {}  # refinement k -> plain training's accuracy at step eta / k

        def final(nm, dyn_name, params, k):
            """User accuracy of ``dyn_name`` run at step eta / k for k T steps; None: diverged."""
            aT = None
            if dyn_name == "umt":
                if k not in teachers:
                    teachers[k] = teacher_alignment(a0, cand.beta, y, s, w, q, rho, eta / k, T * k)
                aT = teachers[k]
            with np.errstate(over="ignore", invalid="ignore"):
                dyn = method_dynamics(a0, cand.beta, y, s, w, q, rho, eta / k, T * k, dyn_name,
                                      params, threshold=thr, record_every=T * k,
                                      teacher_alignment=aT)
                fin = dyn.final_alignment
                if not (np.all(np.isfinite(fin)) and np.all(np.abs(fin) < 1e12)):
                    return None
                psi = _psi_sum(fin[None], cand.beta, q, rho)[0]
                if nm == "alternating":
                    psi = psi * np.asarray(params.get("mix", [1.0] * K))
                return float(to_user(readout_accuracy(psi @ s.T.astype(float), w, scale), ch))

        done = {}  # (dynamics, settings) -> gain: ogm_ge runs as ogm, ume as alternating
        for nm in names:
            spec = METHOD_PARAMS[nm]
            user = settings.get(nm, {})
            start = user.get("start", 0.0)
            values = []
            if spec.param is None:
                values = [None]
            else:
                values = sorted(set(spec.grid) | {user.get(spec.param, spec.given)})
            for value in values:
                params = method_settings(spec, value, start, K, cand.winner, T)
                key = (spec.dynamics, repr(sorted(params.items())))
                if key not in done:
                    # The step is the toy's unit of time, which the horizon calibrates, not a
                    # property of the real network: where the method is past its stability
                    # limit (umt) or diverges, it runs with plain training at a finer step
                    # (the same gradient flow) and the gain is their difference.
                    k0 = _stable_refinement(spec.dynamics, params, eta, w, s, cand.beta, a0.shape)
                    gain, k_used = None, None
                    ks = (k0,) + tuple(r for r in REFINE if r > k0) if k0 <= MAX_REFINE else ()
                    for k in ks:
                        acc = final(nm, spec.dynamics, params if k == 1 else method_settings(
                            spec, value, start, K, cand.winner, T * k), k)
                        if acc is None:
                            continue
                        if k == 1:
                            gain, k_used = pts * (acc - cand.joint), 1
                        else:
                            if k not in baseline:
                                baseline[k] = final("none", "none", {}, k)
                            if baseline[k] is not None:
                                gain, k_used = pts * (acc - baseline[k]), k
                        break
                    done[key] = (gain, k_used)
                gain, k_used = done[key]
                gains[nm].setdefault(value, []).append(gain)
                if k_used is not None and k_used > 1:
                    refined[nm].setdefault(value, []).append(k_used)
            if time.perf_counter() - last > 2.0:
                last = time.perf_counter()
                say(f"methods: configuration {j + 1}/{len(chosen)}, {nm}")
    tol = pts * meas.tolerance
    out = []
    for nm in names:
        spec = METHOD_PARAMS[nm]
        user = settings.get(nm, {})
        start = user.get("start", 0.0)
        given_value = None if spec.param is None else user.get(spec.param, spec.given)
        table = gains[nm]

        def stats(value):
            vals = table[value]
            ok = [g for g in vals if g is not None]
            bad = len(vals) - len(ok)
            if not ok or bad:
                # a configuration whose dynamics diverged has no prediction: cannot tell
                return None, None, None, bad
            return float(np.median(ok)), float(np.min(ok)), float(np.max(ok)), 0

        medians = {v: stats(v)[0] for v in table}
        finite = {v: m for v, m in medians.items() if m is not None}
        sens = None
        if spec.param is not None and len(finite) >= 2:
            sens = max(finite.values()) - min(finite.values())
        # the best setting: the highest median gain; among equal medians the highest mean
        best_value = max(finite, key=lambda v: (round(finite[v], 6), float(np.mean(table[v])))) \
            if finite else given_value
        for which, value in (("given", given_value), ("best", best_value)):
            med, lo, hi, bad = stats(value)
            out.append(MethodAnswer(nm, which, _setting(spec, value, start), med, lo, hi,
                                    verdict(lo, med, hi, tol), sens, bad))
    notes = []
    for nm in names:
        spec = METHOD_PARAMS[nm]
        for value, ks in sorted(refined[nm].items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            what = nm if spec.param is None else f"{nm} ({spec.param} {value:g})"
            notes.append(f"{what}: past its stability limit or diverging at the toy's step "
                         f"size on {len(ks)} of {len(chosen)} sampled configurations; there the "
                         f"method and plain training were both run at a finer step (the step "
                         f"divided by {max(ks)} at most, as many times more steps: the same "
                         f"gradient flow) and the gain is their difference")
    return Answers(potential, cost, out, len(chosen), time.perf_counter() - t0, refused, notes)
