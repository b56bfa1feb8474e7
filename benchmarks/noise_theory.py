"""Where the noisy theory holds: learned steps, winner and gap under noise and distractors.

The set-up of ``theory_limits.py`` (K = 2, symmetric learner, q = 3; A: beta 1,
presence 1; B: presence p_B, beta_2 with xbar = q ln(beta_2/beta_1) + ln(p_B)),
in compare mode, at noise sigma sqrt(d)/beta in {0.1, 0.2, 0.4, 0.8} without
distractors and at distractor load gamma sqrt(k)/beta in {0.5, 1} (k = 4)
without noise, for d = 32 and d = 128 (n_train = 256, m = 8, sigma_0 = 0.01,
T = 2 x the faster modality's race + 10).  Per run and prediction:

* the joint winner's learned step against the measured one, |measured/predicted - 1|,
* the winner (agreement on runs with |x| >= 0.05, x the race coordinate),
* the performance gap (joint minus best uni-modal expected test error of
  the trained weights, ``theory.expected_test_error``) against the prediction.

Three names for three things:

* ``race`` -- the paper's race (noise-free, docs/model.md section 5.2), and
  ``noisy race`` (``race_learn_step_noisy``);
* ``predicted`` -- the distribution-level theory
  (``theory.distribution_predict``): configuration, initial weights and the
  training set's (y, s) pattern weights, never its per-sample noise; what
  every result's ``predicted_*`` is;
* ``tracked`` -- the noise-aware dynamics fed with the run's own training
  noise and initial noise pre-activations (high-dimensional limit), a check
  of the signal-noise decomposition (``tracked_*``), and ``exact`` (the full
  training-noise Gram matrix: the simulation in other coordinates).

Part 2 -- the gap, on a subset of ``performance_gap.py``'s grid (beta_A in
{1.5, 2.5}, p_A in {0.7, 0.9}, T in {100, 300}, noise sigma sqrt(d) in {0.03,
0.1, 0.3, 1}, the same sigma in both modalities, d = 32 and 128): the gap of
the trained networks' expected test errors against the noiseless and
coin-flip predictions (docs/model.md section 5.5) and the noise-aware one.

Run:  python benchmarks/noise_theory.py [--quick]
Writes benchmarks/results/noise_theory{,_summary,_gap}.csv and prints the tables.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from simcomp import theory  # noqa: E402
from simcomp.data import empirical_patterns, make_experiment_data  # noqa: E402
from simcomp.experiment import predict_run  # noqa: E402
from simcomp.sweep import derive_seed  # noqa: E402
from simcomp.theory import noisy_dynamics as nd  # noqa: E402
from simcomp.train import train_run  # noqa: E402

NAME = "noise_theory"
BAND = 0.05
K_DISTRACTORS = 4
BAND_WIDE = 0.1
PREDICTORS = ("race", "noisy_race", "predicted", "tracked", "exact")


def grid(quick: bool):
    if quick:
        return {"levels": [("noise", 0.8)], "dims": (16,), "xbar": (-0.6, 0.6), "presence": (1.0,),
                "seeds": 1, "n_train": 64}
    return {"levels": [("noise", v) for v in (0.1, 0.2, 0.4, 0.8)]
            + [("distractors", v) for v in (0.5, 1.0)],
            "dims": (32, 128), "xbar": (-0.6, -0.2, 0.2, 0.6), "presence": (0.5, 1.0),
            "seeds": 1, "n_train": 256}


def configs(quick: bool):
    g = grid(quick)
    out = []
    beta1, q = 1.0, 3.0
    for dim in g["dims"]:
        for kind, level in g["levels"]:
            for p2 in g["presence"]:
                for xbar in g["xbar"]:
                    beta2 = beta1 * math.exp((xbar - math.log(p2)) / q)
                    for rep in range(g["seeds"]):
                        sets = {"seed": derive_seed(11, {"p2": p2, "xbar": xbar, "d": dim}, rep),
                                "data.modality.0.beta": beta1, "data.modality.0.presence": 1.0,
                                "data.modality.1.beta": beta2, "data.modality.1.presence": p2}
                        for r, beta in ((0, beta1), (1, beta2)):
                            if kind == "noise":
                                sets[f"data.modality.{r}.noise"] = level * beta / math.sqrt(dim)
                            else:
                                sets[f"data.modality.{r}.distractors"] = K_DISTRACTORS
                                sets[f"data.modality.{r}.distractor_strength"] = (
                                    level * beta / math.sqrt(K_DISTRACTORS))
                        cfg = C.small_config(dim=dim, n_train=g["n_train"], n_test=64,
                                             trace_every=1000, mode="compare", sets=sets)
                        cfg = cfg.replace(**{"train.steps": C.horizon_for(cfg, "min", 2.0, 10,
                                                                          3000)})
                        out.append(({"d": dim, "kind": kind, "level": level, "p_B": p2,
                                     "xbar": xbar, "T": cfg.train.steps}, cfg))
    return out


def _noise(cfg, data, trained, exact, pre0):
    return [nd.training_noise(data.train.X[r], data.train.y, data.train.presence[:, r],
                              cfg.data.modality[r].beta, data.signals[r],
                              data.init[r] if pre0 else None, exact=exact) for r in trained]


def _predict(cfg, data, trained, a0, exact=False, pre0=False):
    return nd.noise_aware_predict(cfg, trained, a0, data.train.y, data.train.presence[:, trained],
                                  _noise(cfg, data, trained, exact, pre0))


def _distribution(cfg, data, trained, a0):
    """The distribution-level prediction (what ``predicted_*`` of every result is)."""
    y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)
    grams = [theory.weight_geometry(data.init[r], data.signals[r]) for r in trained]
    return theory.distribution_predict(cfg, trained, a0, y_pat, s_pat, w_pat, grams)


def measure_one(meta, cfg):
    data = make_experiment_data(cfg)
    runs = {name: train_run(cfg, data, name, trained) for name, trained in
            (("joint", [0, 1]), ("unimodal-A", [0]), ("unimodal-B", [1]))}
    joint = runs["joint"]
    a0 = joint.initial_alignment
    pred = predict_run(cfg, data, [0, 1], a0)
    x = theory.winner_coordinate(pred.kappa, pred.gamma, cfg.model.q)
    steps = {"race": pred.race_learned_step, "noisy_race": pred.race_learned_step_noisy}
    clock = time.perf_counter()
    lim = _distribution(cfg, data, [0, 1], a0)
    seconds_limit = time.perf_counter() - clock
    steps["predicted"] = lim.learned_step
    tracked = _predict(cfg, data, [0, 1], a0, pre0=True)
    steps["tracked"] = tracked.learned_step
    clock = time.perf_counter()
    steps["exact"] = nd.noise_aware_dynamics(
        cfg, [0, 1], a0, data.train.y, data.train.presence,
        _noise(cfg, data, [0, 1], True, True)).learned_step
    seconds_exact = time.perf_counter() - clock
    row = dict(meta)
    row.update({"seed": cfg.seed, "x": x, "seconds_sim_joint": joint.seconds,
                "seconds_limit": seconds_limit, "seconds_exact": seconds_exact})
    w = joint.winner
    row["winner"] = None if w is None else "AB"[w]
    row["measured_step"] = None if w is None else int(joint.learned_step[w])
    for name in PREDICTORS:
        if steps[name] is None:  # the noisy race is not reported without noise
            continue
        st = np.asarray(steps[name], dtype=float)
        st = np.where(st < 0, np.inf, st) if name in ("predicted", "tracked", "exact") else st
        finite = np.isfinite(st)
        pw = int(np.argmin(np.where(finite, st, np.inf))) if finite.any() else None
        row[f"winner_{name}"] = None if pw is None else "AB"[pw]
        row[f"step_{name}"] = None if w is None else float(st[w])
        row[f"err_{name}"] = (None if w is None else
                              (abs(joint.learned_step[w] / st[w] - 1) if np.isfinite(st[w])
                               else math.inf))
    # the gap: measured with the exact expected test error of the trained weights
    mods = list(cfg.data.modality)
    exp_err = {}
    for name, run in runs.items():
        tr = run.trained
        exp_err[name] = theory.expected_test_error(
            run.final_weights, [mods[r] for r in tr], [data.dictionaries[r] for r in tr],
            cfg.model.learner, cfg.model.activation, cfg.model.q, cfg.model.rho,
            points=2048, replicates=8).fused
    row["gap_measured"] = exp_err["joint"] - min(exp_err["unimodal-A"], exp_err["unimodal-B"])
    uni = [_distribution(cfg, data, [r], runs[f"unimodal-{'AB'[r]}"].initial_alignment)
           for r in (0, 1)]
    row["gap_predicted"] = nd.predicted_gap(lim, uni)
    uni = [_predict(cfg, data, [r], runs[f"unimodal-{'AB'[r]}"].initial_alignment, pre0=True)
           for r in (0, 1)]
    row["gap_tracked"] = nd.predicted_gap(tracked, uni)
    row["joint_error_measured"] = exp_err["joint"]
    row["joint_error_predicted"] = lim.test_error.fused
    return row


# --------------------------------------------------------------------------- part 3: the winner


def winner_configs(quick: bool):
    """Many joint runs near the boundary at the hardest levels (noise 0.8, load 1)."""
    if quick:
        dims, levels, xbars, pres, seeds, n = (16,), [("noise", 0.8)], (-0.2, 0.2), (1.0,), 1, 64
    else:
        dims, levels = (32, 128), [("noise", 0.8), ("distractors", 1.0)]
        xbars, pres, seeds, n = (-0.3, -0.15, -0.05, 0.05, 0.15, 0.3), (0.5, 1.0), 4, 256
    out = []
    for dim in dims:
        for kind, level in levels:
            for p2 in pres:
                for xbar in xbars:
                    beta2 = math.exp((xbar - math.log(p2)) / 3.0)
                    for rep in range(seeds):
                        sets = {"seed": derive_seed(12, {"p2": p2, "xbar": xbar, "d": dim}, rep),
                                "data.modality.0.beta": 1.0, "data.modality.0.presence": 1.0,
                                "data.modality.1.beta": beta2, "data.modality.1.presence": p2}
                        for r, beta in ((0, 1.0), (1, beta2)):
                            if kind == "noise":
                                sets[f"data.modality.{r}.noise"] = level * beta / math.sqrt(dim)
                            else:
                                sets[f"data.modality.{r}.distractors"] = K_DISTRACTORS
                                sets[f"data.modality.{r}.distractor_strength"] = (
                                    level * beta / math.sqrt(K_DISTRACTORS))
                        cfg = C.small_config(dim=dim, n_train=n, n_test=16, trace_every=1000,
                                             mode="joint", sets=sets)
                        cfg = cfg.replace(**{"train.steps": C.horizon_for(cfg, "max", 1.5, 10,
                                                                          3000)})
                        out.append(({"d": dim, "kind": kind, "level": level}, cfg))
    return out


def measure_winner(meta, cfg):
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1])
    a0 = run.initial_alignment
    pred = predict_run(cfg, data, [0, 1], a0)
    row = dict(meta)
    row["x"] = theory.winner_coordinate(pred.kappa, pred.gamma, cfg.model.q)
    row["winner"] = None if run.winner is None else "AB"[run.winner]
    row["winner_race"] = "B" if row["x"] > 0 else "A"
    dist = _distribution(cfg, data, [0, 1], a0).predicted_winner
    row["winner_predicted"] = None if dist is None else "AB"[dist]
    dyn = nd.noise_aware_dynamics(cfg, [0, 1], a0, data.train.y, data.train.presence,
                                  _noise(cfg, data, [0, 1], False, True))
    learned = [(int(t), k) for k, t in enumerate(dyn.learned_step) if t >= 0]
    row["winner_tracked"] = "AB"[min(learned)[1]] if learned else None
    return row


def summarise_winner(rows):
    out = []
    for d, kind, level in sorted({(r["d"], r["kind"], r["level"]) for r in rows}):
        sub = [r for r in rows if (r["d"], r["kind"], r["level"]) == (d, kind, level)
               and r["winner"] is not None]
        far = [r for r in sub if abs(r["x"]) >= BAND]
        wide = [r for r in sub if abs(r["x"]) >= BAND_WIDE]
        st = {"d": d, "kind": kind, "level": level, "runs": len(sub), "far": len(far),
              "wide": len(wide)}
        for name in ("race", "predicted", "tracked"):
            st[f"far_{name}"] = float(np.mean([r[f"winner_{name}"] == r["winner"] for r in far]))
            st[f"wide_{name}"] = float(np.mean([r[f"winner_{name}"] == r["winner"]
                                                for r in wide]))
            st[f"all_{name}"] = float(np.mean([r[f"winner_{name}"] == r["winner"] for r in sub]))
        out.append(st)
    return out


def pooled_winner(rows, band):
    """Winner agreement of each prediction over all runs of part 3 with |x| >= band."""
    far = [r for r in rows if r["winner"] is not None and abs(r["x"]) >= band]
    return len(far), {name: float(np.mean([r[f"winner_{name}"] == r["winner"] for r in far]))
                      for name in ("race", "predicted", "tracked")}


# --------------------------------------------------------------------------- part 2: the gap

GAP_EPS = 0.01


def gap_configs(quick: bool):
    """A subset of ``performance_gap.py``'s grid: A strong but incomplete, B weak, both noisy."""
    if quick:
        dims, noises, betas, pres, Ts = (16,), (0.3,), (2.0,), (0.7,), (60,)
    else:
        dims, noises, betas, pres, Ts = (32, 128), (0.03, 0.1, 0.3, 1.0), (1.5, 2.5), (0.7, 0.9), (
            100, 300)
    out = []
    for dim in dims:
        for noise in noises:
            for beta_a in betas:
                for p_a in pres:
                    for T in Ts:
                        sigma = noise / math.sqrt(dim)
                        sets = {"seed": derive_seed(3, {"beta_A": beta_a, "p_A": p_a}, 0),
                                "data.modality.0.beta": beta_a, "data.modality.0.presence": p_a,
                                "data.modality.1.beta": 1.0, "data.modality.1.presence": 1.0,
                                "data.modality.0.noise": sigma, "data.modality.1.noise": sigma}
                        cfg = C.small_config(dim=dim, n_train=64 if quick else 256,
                                             n_test=2048, steps=T, trace_every=T,
                                             mode="compare", sets=sets)
                        out.append(({"d": dim, "noise": noise, "beta_A": beta_a, "p_A": p_a,
                                     "T": T}, cfg))
    return out


def measure_gap(meta, cfg):
    data = make_experiment_data(cfg)
    plan = (("joint", [0, 1]), ("unimodal-A", [0]), ("unimodal-B", [1]))
    runs = {name: train_run(cfg, data, name, trained) for name, trained in plan}
    mods = list(cfg.data.modality)
    row = dict(meta)
    exp_err, test_err, old, dist, pre = {}, {}, {}, {}, {}
    for name, trained in plan:
        run = runs[name]
        exp_err[name] = theory.expected_test_error(
            run.final_weights, [mods[r] for r in trained], [data.dictionaries[r] for r in trained],
            cfg.model.learner, cfg.model.activation, cfg.model.q, cfg.model.rho,
            points=2048, replicates=8).fused
        test_err[name] = float(run.trace.records["test_error"][-1])
        pred = predict_run(cfg, data, trained, run.initial_alignment)
        old[name] = (pred.test_error_noiseless, pred.test_error_coinflip)
        dist[name] = _distribution(cfg, data, trained, run.initial_alignment)
        pre[name] = _predict(cfg, data, trained, run.initial_alignment, pre0=True)
    uni = ("unimodal-A", "unimodal-B")
    row["gap_expected"] = exp_err["joint"] - min(exp_err[u] for u in uni)
    row["gap_test_set"] = test_err["joint"] - min(test_err[u] for u in uni)
    row["gap_noiseless"] = old["joint"][0] - min(old[u][0] for u in uni)
    row["gap_coinflip"] = old["joint"][1] - min(old[u][1] for u in uni)
    row["gap_predicted"] = nd.predicted_gap(dist["joint"], [dist[u] for u in uni])
    row["gap_tracked"] = nd.predicted_gap(pre["joint"], [pre[u] for u in uni])
    row["joint_expected"] = exp_err["joint"]
    row["joint_predicted"] = dist["joint"].test_error.fused
    return row


GAP_PREDICTORS = ("noiseless", "coinflip", "predicted", "tracked")


def summarise_gap(rows):
    out = []
    for d, noise in sorted({(r["d"], r["noise"]) for r in rows}):
        sub = [r for r in rows if (r["d"], r["noise"]) == (d, noise)]
        st = {"d": d, "noise": noise, "runs": len(sub),
              "gap_runs": sum(r["gap_expected"] > GAP_EPS for r in sub),
              "test_set_mae": float(np.mean([abs(r["gap_test_set"] - r["gap_expected"])
                                             for r in sub]))}
        for name in GAP_PREDICTORS:
            st[f"mae_{name}"] = float(np.mean([abs(r[f"gap_{name}"] - r["gap_expected"])
                                               for r in sub]))
            st[f"sign_{name}"] = float(np.mean([(r[f"gap_{name}"] > GAP_EPS)
                                                == (r["gap_expected"] > GAP_EPS) for r in sub]))
        out.append(st)
    return out


def summarise(rows):
    out = []
    keys = sorted({(r["d"], r["kind"], r["level"]) for r in rows})
    for d, kind, level in keys:
        sub = [r for r in rows if (r["d"], r["kind"], r["level"]) == (d, kind, level)]
        far = [r for r in sub if abs(r["x"]) >= BAND and r["winner"] is not None]
        st = {"d": d, "kind": kind, "level": level, "runs": len(sub), "far": len(far)}
        for name in PREDICTORS:
            errs = [r.get(f"err_{name}") for r in sub if r.get(f"err_{name}") is not None]
            st[f"median_err_{name}"] = float(np.median(errs)) if errs else float("nan")
            st[f"p90_err_{name}"] = float(np.quantile(errs, 0.9)) if errs else float("nan")
            scored = [r for r in far if f"winner_{name}" in r]
            st[f"winner_{name}"] = (float(np.mean([r[f"winner_{name}"] == r["winner"]
                                                   for r in scored])) if scored else float("nan"))
        for name in ("predicted", "tracked"):
            gaps = np.array([r[f"gap_{name}"] - r["gap_measured"] for r in sub])
            st[f"gap_mae_{name}"] = float(np.mean(np.abs(gaps)))
            st[f"gap_sign_{name}"] = float(np.mean([(r[f"gap_{name}"] > 0.01)
                                                    == (r["gap_measured"] > 0.01) for r in sub]))
        st["seconds_sim_joint"] = float(np.median([r["seconds_sim_joint"] for r in sub]))
        st["seconds_limit"] = float(np.median([r["seconds_limit"] for r in sub]))
        out.append(st)
    return out


STEP_TARGET = 0.05
NAMES = {"race": "race", "noisy_race": "noisy race", "predicted": "predicted",
         "tracked": "tracked (check)", "exact": "exact Gram (check)"}


def section(summary, gsum, wsum, win_rows, step_table, gap_table, win_table, n_runs, n_gap,
            seconds):
    """The docs/results.md section: the three tables and the verdicts against the targets."""
    v = verdicts(summary, gsum, wsum)
    far = sum(st["far"] for st in summary)
    n_wide, pooled = pooled_winner(win_rows, BAND_WIDE)
    n_far, pooled_far = pooled_winner(win_rows, BAND)
    return f"""## Noisy theory: race, predicted and tracked (`benchmarks/noise_theory.py`)

Three things are compared with the runs, under three names (docs/theory.md section 12):

* **race** -- the paper's race of the leading neurons, every result's `race_*` (`race_learned_step`, `race_winner`; docs/model.md section 5.2; 'noisy race', `race_learned_step_noisy`, adds the noise's share of the pre-activation, docs/theory.md section 8);
* **predicted** -- the distribution-level theory behind every result's `predicted_*`: the noise-aware dynamics averaged over the noise's law (`theory.distribution_predict`), from the configuration, the run's initial weights and its (y, s) pattern weights -- never its per-sample noise;
* **tracked** -- the same dynamics fed with the run's own training noise and initial noise pre-activations (`tracked_*`): a check of the signal-noise decomposition, **not** a prediction (it follows the draw it is compared with). 'Exact' adds the full training-noise Gram matrix: the simulation in other coordinates.

**Part 1, learned steps.** The set-up of `theory_limits` (K = 2, symmetric, q = 3; A: beta 1, presence 1; B: presence in {{0.5, 1}}, beta_2 with xbar in {{-0.6, -0.2, 0.2, 0.6}}), compare mode, one seed per point, at noise sigma sqrt(d)/beta in {{0.1, 0.2, 0.4, 0.8}} (no distractors) and distractor load gamma sqrt(k)/beta in {{0.5, 1}} (k = 4, no noise), d = 32 and 128, n_train = 256, m = 8, T = 2 x the faster race + 10. Error = |measured / predicted - 1| for the joint winner.

{step_table}

Target median learned-step error <= 5% up to noise 0.8 and load 1 (predicted): worst level {C.pct(v['step_predicted'])} -- {C.verdict(v['step_predicted'] <= STEP_TARGET)}; tracked (check): {C.pct(v['step_tracked'])}. {far} runs outside |x| < 0.05; part 3 tests the winner.

**Part 2, the gap.** A subset of the `performance_gap` grid (beta_A in {{1.5, 2.5}}, p_A in {{0.7, 0.9}}, T in {{100, 300}}, the same noise sigma in both modalities), compare mode, one seed, d = 32 and 128. 'Measured' gap = joint minus best uni-modal *expected* test error of the trained weights (`theory.expected_test_error`, free of test-set sampling noise; the 'test-set gap MAE' column is how far the 2048-sample test-set gap is from it). Predictions: noiseless and coin flip (5.5, from the reduced dynamics), predicted and tracked, each with the expected test error of its final network.

{gap_table}

Target gap MAE <= 0.01 at every noise level (predicted): worst {v['mae_predicted']:.4f} -- {C.verdict(v['mae_predicted'] <= 0.01)}; sign of 'gap > 0.01' right on >= 95% of runs: worst level {C.pct(v['sign_predicted'], 0)} -- {C.verdict(v['sign_predicted'] >= 0.95)}. Tracked (check): worst MAE {v['mae_tracked']:.4f}, worst sign {C.pct(v['sign_tracked'], 0)}.

**Part 3, the winner at the hardest levels.** Joint runs near the boundary (xbar in {{-0.3, -0.15, -0.05, 0.05, 0.15, 0.3}}, p_B in {{0.5, 1}}, 4 seeds each, T = 1.5 x the slower race + 10) at noise 0.8 and distractor load 1, d = 32 and 128: {len(win_rows)} runs. Race: sign of x; predicted and tracked: the first modality their dynamics learns.

{win_table}

Boundary band: |x| < {BAND_WIDE:g} (x the race coordinate). Outside it, pooled over part 3 ({n_wide} runs), the winner is right on {C.pct(pooled['predicted'])} (predicted; target >= 99% -- {C.verdict(pooled['predicted'] >= 0.99)}), {C.pct(pooled['race'])} (race), {C.pct(pooled['tracked'])} (tracked); worst single level {C.pct(v['wide_predicted'])} (predicted; about 45 runs a level, so one miss is 2.2%). Outside |x| < {BAND:g} ({n_far} runs): {C.pct(pooled_far['predicted'])} / {C.pct(pooled_far['race'])} / {C.pct(pooled_far['tracked'])} (predicted / race / tracked). Grids are small ({n_runs} + {n_gap} compare-mode runs, {seconds:.0f} s in all).
"""


def verdicts(summary, gsum, wsum):
    """The worst level of every target, for predicted and tracked."""
    out = {}
    for name in ("predicted", "tracked"):
        out[f"step_{name}"] = max(st[f"median_err_{name}"] for st in summary)
        out[f"winner_{name}"] = min(st[f"winner_{name}"] for st in summary)
        out[f"mae_{name}"] = max(st[f"mae_{name}"] for st in gsum)
        out[f"sign_{name}"] = min(st[f"sign_{name}"] for st in gsum)
        if wsum:
            out[f"boundary_{name}"] = min(st[f"far_{name}"] for st in wsum)
            out[f"wide_{name}"] = min(st[f"wide_{name}"] for st in wsum)
    return out


def summary_rows(result):
    v = result["verdicts"]
    n_wide, pooled = pooled_winner(result["winner_rows"], BAND_WIDE)
    rows = [
        ["predicted (distribution level): median learned-step error, worst level up to noise "
         "0.8 / load 1", "<= 5%", C.pct(v["step_predicted"]), v["step_predicted"] <= STEP_TARGET],
        [f"predicted: winner agreement outside |x| < {BAND_WIDE:g}, pooled ({n_wide} runs; "
         f"worst level {C.pct(v['wide_predicted'])})", ">= 99%", C.pct(pooled["predicted"]),
         pooled["predicted"] >= 0.99],
        ["predicted: gap MAE vs expected gap, worst noise level", "<= 0.01",
         f"{v['mae_predicted']:.4f}", v["mae_predicted"] <= 0.01],
        ["predicted: sign of gap > 0.01 right, worst noise level", ">= 95%",
         C.pct(v["sign_predicted"], 0), v["sign_predicted"] >= 0.95],
        ["tracked (run's own noise; a check, not a prediction): median learned-step error / "
         "gap MAE / gap sign, worst level", "(check)",
         f"{C.pct(v['step_tracked'])} / {v['mae_tracked']:.4f} / "
         f"{C.pct(v['sign_tracked'], 0)}", None],
    ]
    return rows


def figure(summary, path):
    plt = C.plt()
    fig, ax = plt.subplots(figsize=(9, 4.4))
    labels = [f"{st['kind'][:5]} {st['level']:g}\nd={st['d']}" for st in summary]
    xs = np.arange(len(summary))
    for name, mk in zip(PREDICTORS, "osD^v"):
        ys = [100 * st[f"median_err_{name}"] for st in summary]
        ax.plot(xs, ys, marker=mk, ls=":" if name in ("tracked", "exact") else "-",
                label=NAMES[name])
    ax.axhline(100 * STEP_TARGET, color="k", ls="--", lw=0.8, label="target 5% (predicted)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylabel("joint winner's learned step: median |measured/predicted - 1| (%)")
    ax.set_title("Learned steps under noise and distractors: race, predicted, tracked (check)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    paths = C.output_paths(args.quick, NAME)
    clock = time.perf_counter()
    rows = [measure_one(meta, cfg) for meta, cfg in configs(args.quick)]
    gap_rows = [measure_gap(meta, cfg) for meta, cfg in gap_configs(args.quick)]
    win_rows = [measure_winner(meta, cfg) for meta, cfg in winner_configs(args.quick)]
    total = time.perf_counter() - clock
    C.write_csv(NAME, rows, path=paths["csv"])
    C.write_csv(NAME + "_gap", gap_rows, path=paths["csv"].with_name(NAME + "_gap.csv"))
    C.write_csv(NAME + "_winner", win_rows, path=paths["csv"].with_name(NAME + "_winner.csv"))
    summary = summarise(rows)
    C.write_csv(NAME + "_summary", summary,
                path=paths["csv"].with_name(NAME + "_summary.csv"))
    head = ["d", "perturbation", "level", "runs",
            "median (90th pct) step err: " + " / ".join(NAMES[n] for n in PREDICTORS),
            "winner agrees (|x| >= 0.05): same"]
    table = []
    for st in summary:
        table.append([st["d"], st["kind"], st["level"], st["runs"],
                      " / ".join(f"{C.pct(st[f'median_err_{n}'])} ({C.pct(st[f'p90_err_{n}'])})"
                                 for n in PREDICTORS),
                      " / ".join(C.pct(st[f"winner_{n}"], 0) for n in PREDICTORS)
                      + f" ({st['far']} runs)"])
    step_table = C.md_table(head, table)
    gsum = summarise_gap(gap_rows)
    head = ["d", "noise sigma sqrt(d)", "runs", "gap > 0.01", "test-set gap MAE",
            "gap MAE: noiseless / coin flip / predicted / tracked (check)",
            "sign of gap > 0.01 right: same"]
    table = [[st["d"], st["noise"], st["runs"], st["gap_runs"], f"{st['test_set_mae']:.4f}",
              " / ".join(f"{st[f'mae_{n}']:.4f}" for n in GAP_PREDICTORS),
              " / ".join(C.pct(st[f"sign_{n}"], 0) for n in GAP_PREDICTORS)] for st in gsum]
    gap_table = C.md_table(head, table)
    wsum = summarise_winner(win_rows)
    head = ["d", "perturbation", "level", "runs", f"|x| >= {BAND:g} / {BAND_WIDE:g}",
            f"winner agrees, |x| >= {BAND:g}: race / predicted / tracked",
            f"|x| >= {BAND_WIDE:g}: same", "all runs: same"]
    table = [[st["d"], st["kind"], st["level"], st["runs"], f"{st['far']} / {st['wide']}",
              " / ".join(C.pct(st[f"far_{n}"]) for n in ("race", "predicted", "tracked")),
              " / ".join(C.pct(st[f"wide_{n}"]) for n in ("race", "predicted", "tracked")),
              " / ".join(C.pct(st[f"all_{n}"]) for n in ("race", "predicted", "tracked"))]
             for st in wsum]
    win_table = C.md_table(head, table)
    body = section(summary, gsum, wsum, win_rows, step_table, gap_table, win_table, len(rows),
                   len(gap_rows), total)
    figure(summary, paths["fig_dir"] / f"{NAME}.png")
    body += f"\n{C.fig_link(NAME, 'learned-step error by level')}\n"
    print(body)
    C.update_section(NAME, body, path=paths["doc"])
    return {"rows": rows, "gap_rows": gap_rows, "winner_rows": win_rows,
            "verdicts": verdicts(summary, gsum, wsum)}


if __name__ == "__main__":
    C.script_main(main)
