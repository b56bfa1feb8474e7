"""The consistent set: every toy configuration that reproduces the measurements.

A toy configuration is: each modality's presence p_r (from its uni-modal
accuracy, within the tolerance), the ratios of the signal strengths beta_r
(a grid; pinned by half-epochs or curves when given), the correlation c of
the presence coins (``data.presence_correlation``, when simcomp has it; pinned
by ``all_wrong``), the horizon T in units of the slowest uni-modal learn
time (a nuisance parameter; pinned by curves when given) and the seed of
the initial weights.  The absolute size of the betas only sets the time
scale, which the horizon absorbs: they are scaled so that the slowest
modality alone is learned near step ``T_TARGET``.

Every configuration is evaluated with the theory (the compiled reduced
dynamics on the population patterns, docs/theory.md section 6): the
uni-modal runs and the joint run, read at every horizon of the grid.  A
configuration is consistent when its predicted accuracies, mapped to the
user's scale (:mod:`.mapping`), are within the tolerance of every
measurement.  A sample of the set is then simulated (:func:`confirm`).

The correlation enters only through the config key
``data.presence_correlation`` of the configurations built here: the
patterns come from simcomp's own population data set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..config import ConfigError
from ..config_file import build_config
from ..data import make_experiment_data
from ..theory import reduced_dynamics
from ..theory.activation import srelu
from ..trace import geometry
from .mapping import (DECISION_SCALES, all_wrong_range, presence_from_accuracy, readout_accuracy,
                      to_user, union_accuracy)
from .measurements import Measurements

__all__ = ["Candidate", "SearchResult", "search", "confirm", "correlation_supported",
           "toy_config", "CORRELATION_KEY", "T_TARGET", "HORIZONS"]

CORRELATION_KEY = "data.presence_correlation"
T_TARGET = 100  # the slowest modality alone is learned near this step
# T / (the slowest uni-modal learn time): geometric, 1.1 to 6
HORIZONS = tuple(float(x) for x in np.round(np.geomspace(1.1, 6.0, 19), 3))
SEEDS = (0, 1)
_T_CAP = int(math.ceil(max(HORIZONS) * 1.6 * T_TARGET))
_HORIZON_SLACK = 1.5  # a curve pins T / t_alone to within this factor
_HALF_SLACK = 1.25  # half-epoch ratios pin the learn-time ratios to within this factor


def correlation_supported() -> bool:
    """Whether this simcomp has the presence correlation (the config key is accepted)."""
    try:
        build_config(None, [(CORRELATION_KEY, 0.0)])
    except ConfigError:
        return False
    return True


def toy_config(names, presence, beta, c: float | None, seed: int, steps: int, *,
               population: bool = True, noise: float = 0.0, dim: int = 16,
               n_train: int = 512, n_test: int = 4096):
    """The simcomp Config of one toy configuration (the embedded default's learner).

    The dimension does not enter the theory, but it orders the draws of the
    initial weights: the search and its simulated confirmations use the same
    ``dim`` so that they start from the same initial alignments.

    ``c`` None leaves ``data.presence_correlation`` out (independent coins).
    """
    ov = [("seed", int(seed)), ("train.steps", int(steps)), ("train.trace_every", int(steps)),
          ("train.noise_theory", False), ("train.mode", "compare"),
          ("data.population", bool(population))]
    if not population:
        ov += [("data.n_train", int(n_train)), ("data.n_test", int(n_test))]
    for r, name in enumerate(names):
        ov += [(f"data.modality.{r}.name", name), (f"data.modality.{r}.presence", float(presence[r])),
               (f"data.modality.{r}.beta", float(beta[r])), (f"data.modality.{r}.dim", int(dim)),
               (f"data.modality.{r}.noise", float(noise)),
               (f"data.modality.{r}.distractors", 0)]
    if c is not None:
        ov.append((CORRELATION_KEY, float(c)))
    return build_config(None, ov)


@dataclass
class Candidate:
    """One consistent toy configuration and what the theory predicts for it (user scale)."""

    presence: np.ndarray  # (K,)
    beta: np.ndarray  # (K,)
    c: float
    seed: int
    horizon: float  # T / the slowest uni-modal learn time
    steps: int  # T
    t_alone: np.ndarray  # (K,) uni-modal learned steps
    joint_learned: np.ndarray  # (K,) learned steps in the joint run by T (-1 never)
    winner: int
    decision_scale: float  # times rho / q (see :data:`.mapping.DECISION_SCALES`)
    uni: np.ndarray  # (K,) predicted uni-modal accuracies
    joint: float  # predicted joint accuracy
    potential: float  # every modality learned
    all_wrong: tuple  # (low, high)


@dataclass
class SearchResult:
    """The consistent set and how it was found."""

    candidates: list
    searched: int  # toy configurations evaluated (one per horizon)
    correlation_modelled: bool
    reason: str | None = None  # why nothing is consistent
    seconds: float = 0.0
    grid: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.candidates)


def _c_grid(K: int) -> list:
    """The correlations searched: -0.4 to 1 for two modalities, -0.2 to 1 for more.

    c = 1 is full overlap: the modality with the smaller presence knows a
    subset of the samples the other knows.
    """
    lo = -1.0 / (K - 1)
    grid = ([-0.4, -0.2] if K == 2 else [-0.2]) + [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0]
    return [c for c in grid if c > lo + 1e-9]


def _overlap_correlation(p, joint: float, chance: float, tol: float, cs: list, cache: dict,
                         pi) -> float | None:
    """The correlation at which the modalities' union reproduces ``joint``, if the grid misses it.

    With every modality learned the joint accuracy is the union of what they know, which falls
    as the overlap c grows (the share nobody knows grows).  Overlapping, fully learned
    modalities therefore reproduce a joint accuracy at one correlation c*: the picture in which
    joint training loses nothing.  Its window of correlations is narrow (about 0.1 wide for a
    tolerance of one point), narrower than the grid's steps, so whether the grid contains it is
    luck; without it the consistent set holds only the pictures with a starved modality and
    every gain looks certain.  None when a searched correlation already lands within ``tol``
    of ``joint`` for these presences, or when no correlation in the searched range does.
    """
    from ..presence import pattern_probabilities

    def union(c):
        return float(union_accuracy(pattern_probabilities(p, c)[0], chance))

    for c in cs:
        y_p, s_p, w_p = cache[(pi, c)]
        if abs(float(union_accuracy(w_p[np.all(s_p == 0, axis=1)].sum(), chance)) - joint) <= tol:
            return None
    if not cs:
        return None
    lo, hi = min(cs), 1.0
    try:
        if not union(hi) <= joint <= union(lo):  # the union falls as c grows
            return None
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if union(mid) > joint else (lo, mid)
    except ValueError:  # pattern weights this simcomp cannot compute (too many modalities, c < 0)
        return None
    return round(0.5 * (lo + hi), 4)


def _p_grid(meas: Measurements) -> list:
    out = []
    for m in meas.modalities:
        p0 = presence_from_accuracy(m.accuracy, meas.chance)
        d = 0.5 * meas.tolerance / (1.0 - meas.chance)
        vals = [p0 - d, p0, p0 + d] if meas.K == 2 else [p0]
        out.append(sorted({min(1.0, max(1e-3, v)) for v in vals}))
    return out


def _ratio_grid(K: int) -> list:
    n = {2: 17, 3: 11, 4: 7}[K]
    return list(np.exp(np.linspace(math.log(1 / 2.5), math.log(2.5), n)))


def _psi_sum(rec_a, beta, q, rho):
    """Psi_r = sum_i psi(beta_r a_ri) of the symmetric learner, (R, K) from (R, K, 1, m)."""
    z = beta[None, :, None, None] * rec_a
    return np.sum(np.sign(z) * srelu(np.abs(z), q, rho), axis=(2, 3))


def _pins(meas: Measurements):
    """Horizon pins (modality -> measured T / t_alone) and half-epoch ratio pins."""
    run_length = None
    if meas.joint_curve is not None:
        run_length = meas.joint_curve[-1][0]
    horizon, halves = {}, {}
    for r, m in enumerate(meas.modalities):
        if m.half_epoch is None:
            continue
        halves[r] = m.half_epoch
        length = m.curve[-1][0] if m.curve is not None else run_length
        if length is not None and length > 0:
            horizon[r] = length / m.half_epoch
    return horizon, halves


def search(meas: Measurements, *, progress: Callable[[str], None] | None = None,
           seeds=SEEDS, correlations=None) -> SearchResult:
    """Evaluate the grid of toy configurations with the theory; keep the consistent ones.

    ``correlations`` replaces the grid of presence correlations (when
    simcomp models them), e.g. one value when the overlap is known.
    """
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    K, ch, tol = meas.K, meas.chance, meas.tolerance
    corr = correlation_supported()
    notes = []
    c_grid = (_c_grid(K) if correlations is None else [float(c) for c in correlations]) \
        if corr else [0.0]
    if not corr:
        notes.append("this simcomp has no presence correlation (data.presence_correlation): "
                     "the modalities' presence coins are independent (c = 0); the c-range is not "
                     "modelled")
        if meas.all_wrong is not None:
            notes.append("all_wrong can pin only the correlation, which is not modelled: it is "
                         "checked, not used to narrow")
    p_grid = _p_grid(meas)
    ratios = _ratio_grid(K)
    horizon_pin, half_pin = _pins(meas)
    names = meas.names
    base = toy_config(names, [0.5] * K, [1.0] * K, None, 0, 1)
    q, rho, eta = base.model.q, base.model.rho, base.train.lr
    thr = base.model.threshold
    scales = [f * rho / q for f in DECISION_SCALES]
    a0s = {}
    for seed in seeds:
        cfg = toy_config(names, [0.5] * K, [1.0] * K, None, seed, 1)
        data = make_experiment_data(cfg)
        a0s[seed] = geometry(data.init, data.dictionaries)[0]
    meas_uni = np.array([m.accuracy for m in meas.modalities])
    rows = []  # (candidate fields..., checks)
    combos = list(np.ndindex(*[len(g) for g in p_grid]))
    ratio_combos = list(np.ndindex(*([len(ratios)] * (K - 1))))
    total = len(combos) * len(ratio_combos) * len(seeds)
    done = 0
    last_say = time.perf_counter()
    searched = 0
    pattern_cache = {}
    c_of = {}  # presence combination -> the correlations searched with it
    added = []  # correlations added where the grid misses the overlap picture
    for pi in combos:
        p = np.array([p_grid[r][pi[r]] for r in range(K)])
        for c in c_grid:
            try:
                cfg = toy_config(names, p, [1.0] * K, c if corr else None, 0, 1)
            except ConfigError:  # a correlation this simcomp cannot use with these presences
                continue
            tr = make_experiment_data(cfg).train
            pattern_cache[(pi, c)] = (tr.y.copy(), tr.presence.astype(np.int8), tr.weight.copy())
        c_of[pi] = [c for c in c_grid if (pi, c) in pattern_cache]
        extra = _overlap_correlation(p, meas.joint, ch, tol, c_of[pi], pattern_cache, pi) \
            if corr and correlations is None else None
        if extra is not None:
            try:
                cfg = toy_config(names, p, [1.0] * K, extra, 0, 1)
            except ConfigError:
                extra = None
        if extra is not None:
            tr = make_experiment_data(cfg).train
            pattern_cache[(pi, extra)] = (tr.y.copy(), tr.presence.astype(np.int8),
                                          tr.weight.copy())
            c_of[pi].append(extra)
            added.append(extra)
        for ri in ratio_combos:
            rel = np.array([1.0] + [ratios[i] for i in ri])
            for seed in seeds:
                done += 1
                a0 = a0s[seed]
                gamma = np.maximum(a0.max(axis=(1, 2)), 1e-6)
                # race time t_r ~ 2 rho^2 / (eta p beta^3 Gamma) (q = 3): the slowest at T_TARGET
                s = max((2.0 * rho ** (q - 1) / (eta * p[r] * rel[r] ** q * gamma[r] * T_TARGET))
                        ** (1.0 / q) for r in range(K))
                beta = s * rel
                t_alone = np.empty(K, dtype=np.int64)
                uni_runs = []
                for r in range(K):
                    y1 = np.array([-1.0, -1.0, 1.0, 1.0])
                    s1 = np.array([[0], [1], [0], [1]], dtype=np.int8)
                    w1 = np.array([0.5 * (1 - p[r]), 0.5 * p[r], 0.5 * (1 - p[r]), 0.5 * p[r]])
                    red = reduced_dynamics(a0[r:r + 1], beta[r:r + 1], y1, s1, w1, q, rho, eta,
                                           _T_CAP, threshold=thr)
                    t_alone[r] = red.learned_step[0]
                    uni_runs.append(red.alignment)
                if np.any(t_alone < 0):
                    continue
                slow = int(t_alone.max())
                # the horizons of the grid, as steps (only these records are read out)
                taus = [tau for tau in HORIZONS if math.ceil(tau * slow) <= _T_CAP]
                Ts = np.array([int(math.ceil(tau * slow)) for tau in taus], dtype=np.int64)
                if Ts.size == 0:
                    continue
                uni_acc = np.empty((len(scales), Ts.size, K))  # toy accuracies
                for r in range(K):
                    psi = _psi_sum(uni_runs[r][Ts], beta[r:r + 1], q, rho)[:, 0]
                    for k, sc in enumerate(scales):
                        uni_acc[k, :, r] = readout_accuracy(np.stack([0 * psi, psi], axis=1),
                                                            [1 - p[r], p[r]], sc)
                uni_user = to_user(uni_acc, ch)
                for c in c_of[pi]:
                    y_p, s_p, w_p = pattern_cache[(pi, c)]
                    red = reduced_dynamics(a0, beta, y_p, s_p, w_p, q, rho, eta, int(Ts.max()),
                                           threshold=thr)
                    psi = _psi_sum(red.alignment[Ts], beta, q, rho)  # (len(Ts), K)
                    g = psi @ s_p.T.astype(float)  # y f per pattern (symmetric learner)
                    p_none = float(w_p[np.all(s_p == 0, axis=1)].sum())
                    for k, sc in enumerate(scales):
                        joint_user = to_user(readout_accuracy(g, w_p, sc), ch)
                        for j, (tau, T) in enumerate(zip(taus, Ts)):
                            searched += 1
                            learned = np.where((red.learned_step >= 0) & (red.learned_step <= T),
                                               red.learned_step, -1)
                            rows.append((p, beta, c, seed, tau, int(T), t_alone.copy(), learned,
                                         uni_user[k, j].copy(), float(joint_user[j]), p_none,
                                         DECISION_SCALES[k]))
                if progress and time.perf_counter() - last_say > 2.0:
                    last_say = time.perf_counter()
                    say(f"searching: {done}/{total} signal-strength and presence combinations")
    if added:
        notes.append("the correlation grid has no value at which the modalities' union reproduces "
                     "the joint accuracy within the tolerance; searched as well: "
                     + ", ".join(f"{c:.3f}" for c in sorted(set(added)))
                     + " (the overlap at which it does)")
    grid = {"presence": [list(map(float, g)) for g in p_grid], "beta_ratio": [float(x) for x in ratios],
            "correlation": [float(c) for c in c_grid], "horizon": list(HORIZONS),
            "correlation_added": sorted(set(float(c) for c in added)),
            "seeds": list(seeds), "decision_scale": list(DECISION_SCALES)}
    if not rows:
        return SearchResult([], searched, corr, reason="no toy configuration learned every "
                            "modality alone within the step budget", grid=grid, notes=notes,
                            seconds=time.perf_counter() - t0)
    # The checks, one column each.
    uni = np.array([r[8] for r in rows])
    joint = np.array([r[9] for r in rows])
    p_none = np.array([r[10] for r in rows])
    aw_lo, aw_hi = all_wrong_range(p_none, ch, K)
    checks = {}
    for r, m in enumerate(meas.modalities):
        checks[f"modality.{r}.accuracy"] = np.abs(uni[:, r] - meas_uni[r]) <= tol + 1e-12
    checks["joint.accuracy"] = np.abs(joint - meas.joint) <= tol + 1e-12
    if meas.all_wrong is not None and corr:
        checks["joint.all_wrong"] = (aw_lo - tol <= meas.all_wrong) & (meas.all_wrong <= aw_hi + tol)
    t_alone = np.array([r[6] for r in rows], dtype=float)
    T = np.array([r[5] for r in rows], dtype=float)
    for r, ratio in horizon_pin.items():
        key = f"modality.{r}.half_epoch" if meas.modalities[r].curve is None else f"modality.{r}.curve"
        toy = T / t_alone[:, r]
        checks[f"{key} (training length)"] = (toy >= ratio / _HORIZON_SLACK) & (toy <= ratio * _HORIZON_SLACK)
    if len(half_pin) >= 2:
        ref = min(half_pin)
        h0 = half_pin[ref]
        for r, h in half_pin.items():
            if r == ref:
                continue
            lo = max(h - 0.5, 0.25) / (h0 + 0.5) / _HALF_SLACK
            hi = (h + 0.5) / max(h0 - 0.5, 0.25) * _HALF_SLACK
            toy = t_alone[:, r] / t_alone[:, ref]
            checks[f"modality.{r}.half_epoch"] = (toy >= lo) & (toy <= hi)
    ok = np.all(np.stack(list(checks.values())), axis=0)
    cands = []
    for i in np.flatnonzero(ok):
        p, beta, c, seed, tau, Tn, ta, learned, u, jn, pn, dscale = rows[i]
        order = [(step, k) for k, step in enumerate(learned) if step >= 0]
        winner = min(order)[1] if order else int(np.argmin(ta))
        cands.append(Candidate(presence=p, beta=beta, c=float(c), seed=int(seed), horizon=float(tau),
                               steps=int(Tn), t_alone=ta, joint_learned=learned, winner=winner,
                               decision_scale=float(dscale), uni=u, joint=jn, potential=float(union_accuracy(pn, ch)),
                               all_wrong=(float(aw_lo[i]), float(aw_hi[i]))))
    reason = None if cands else _why_none(checks, {"uni": uni, "joint": joint, "aw": (aw_lo, aw_hi)},
                                          meas)
    return SearchResult(cands, searched, corr, reason=reason, grid=grid, notes=notes,
                        seconds=time.perf_counter() - t0)


def _why_none(checks: dict, pred: dict, meas: Measurements) -> str:
    """Which measurement could not be matched: the check that fails where all others hold."""
    keys = list(checks)
    stack = np.stack([checks[k] for k in keys])
    best_key, best_n = None, -1
    for j, key in enumerate(keys):
        others = np.all(np.delete(stack, j, axis=0), axis=0)
        n = int(others.sum())
        if n > best_n:
            best_key, best_n, mask = key, n, others
    pts = lambda x: f"{100 * x:.2f}"  # noqa: E731
    if best_n == 0:
        return ("no toy configuration matches more than one measurement at a time (" +
                ", ".join(f"{k}: {int(checks[k].sum())} alone" for k in keys) + ")")
    if best_key == "joint.accuracy":
        vals = pred["joint"][mask]
        below, above = vals[vals < meas.joint], vals[vals > meas.joint]
        near = ", ".join(x for x in (
            None if below.size == 0 else f"{pts(below.max())} below",
            None if above.size == 0 else f"{pts(above.min())} above") if x)
        return (f"joint.accuracy = {pts(meas.joint)} could not be matched within "
                f"+-{pts(meas.tolerance)}: the {best_n} toy configurations that match every other "
                f"measurement predict a joint accuracy between {pts(vals.min())} and "
                f"{pts(vals.max())}, the nearest {near}")
    if best_key.startswith("modality.") and best_key.endswith(".accuracy"):
        r = int(best_key.split(".")[1])
        vals = pred["uni"][mask, r]
        return (f"{best_key} = {pts(meas.modalities[r].accuracy)} could not be matched: the toy "
                f"configurations that match every other measurement predict "
                f"{pts(vals.min())} to {pts(vals.max())}")
    if best_key == "joint.all_wrong":
        lo, hi = pred["aw"][0][mask], pred["aw"][1][mask]
        return (f"joint.all_wrong = {pts(meas.all_wrong)} could not be matched: the toy "
                f"configurations that match every other measurement allow {pts(lo.min())} to "
                f"{pts(hi.max())}")
    return (f"{best_key} could not be matched by the {best_n} toy configurations that match "
            "every other measurement")


# --------------------------------------------------------------------------- simulation


@dataclass
class Confirmation:
    """Simulated members of the consistent set against their theory predictions."""

    simulated: int
    agreed: int
    rows: list  # per simulated candidate: predicted and simulated accuracies (user scale)
    noise: float
    tolerance: float


SIM_NOISE = 0.01  # input noise of the simulated confirmations (small: the data are sampled)
SIM_TRAIN = 16384  # training samples of the simulated confirmations
SIM_DIM = 16  # = toy_config's default dim: the same initial alignments as the search


def confirm(meas: Measurements, candidates: list, names, n: int = 2, *,
            correlation: bool = False) -> Confirmation:
    """Simulate ``n`` members of the consistent set and compare with the theory.

    Each member is trained by simcomp's simulator (compare mode) on a sampled
    training set (:data:`SIM_TRAIN` samples, input noise :data:`SIM_NOISE`,
    dimension :data:`SIM_DIM`, the search's initial weights) instead of the
    population patterns the theory uses.  Where a member reproduces the joint
    accuracy only because the starved modality is half-way learned at the
    horizon, the sampling of the presence coins shifts that moment and the
    member disagrees: the disagreement measures how fragile the fit is.  Its
    trained networks' final alignments are read out exactly as the search
    reads out the theory's (decision scale, patterns of the distribution), so
    the check is on the dynamics -- the race, the starving, the timing -- not
    on the readout, which is an assumption about the real network that the toy
    cannot test.  The simulated test accuracies (sampled test set) are
    reported beside.  A member agrees when every accuracy is within twice the
    tolerance of the theory's.  The members are spread over the set (lowest
    and highest predicted joint accuracy first).
    """
    from ..experiment import run_experiment

    ch, tol = meas.chance, meas.tolerance
    if not candidates or n <= 0:
        return Confirmation(0, 0, [], SIM_NOISE, 2 * tol)
    order = sorted(range(len(candidates)), key=lambda i: candidates[i].joint)
    pick = []
    for k in range(n):
        i = order[int(round(k * (len(order) - 1) / max(n - 1, 1)))]
        if i not in pick:
            pick.append(i)
    rows, agreed = [], 0
    for i in pick:
        cand = candidates[i]
        c = cand.c if correlation else None
        cfg = toy_config(names, cand.presence, cand.beta, c, cand.seed, cand.steps,
                         population=False, noise=SIM_NOISE, dim=SIM_DIM, n_train=SIM_TRAIN,
                         n_test=4096)
        exp = run_experiment(cfg)
        pop = make_experiment_data(toy_config(names, cand.presence, cand.beta, c, cand.seed, 1)).train
        q, rho = cfg.model.q, cfg.model.rho
        scale = cand.decision_scale * rho / q
        runs = {run.name: run for run in exp.runs}

        def readout(run, s_pat, w_pat):
            final = np.asarray(run.trace.last("alignment"), dtype=float)
            final = final.reshape(len(run.trained), 1, -1)
            psi = _psi_sum(final[None], cand.beta[run.trained], q, rho)[0]
            return float(to_user(readout_accuracy(psi @ np.asarray(s_pat, float).T, w_pat, scale), ch))

        sim_uni = np.array([readout(runs[f"unimodal-{nm}"], [[0], [1]],
                                    [1 - cand.presence[r], cand.presence[r]])
                            for r, nm in enumerate(names)])
        sim_joint = readout(runs["joint"], pop.presence, pop.weight)
        test = {run.name: float(to_user(1.0 - run.trace.last("test_error"), ch)) for run in exp.runs}
        ok = bool(np.all(np.abs(sim_uni - cand.uni) <= 2 * tol) and abs(sim_joint - cand.joint) <= 2 * tol)
        agreed += ok
        rows.append({"predicted": {"uni": cand.uni.tolist(), "joint": cand.joint},
                     "simulated": {"uni": sim_uni.tolist(), "joint": sim_joint},
                     "simulated_test": {"uni": [test[f"unimodal-{nm}"] for nm in names],
                                        "joint": test["joint"]},
                     "agreed": ok})
    return Confirmation(len(pick), agreed, rows, SIM_NOISE, 2 * tol)
