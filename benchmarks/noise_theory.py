"""Where the noise-aware dynamics holds: learned steps, winner and gap under noise and distractors.

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

Predictions: ``race`` (noise-free race, docs/model.md section 5.2), ``noisy
race`` (``race_learn_step_noisy``), ``limit`` (``noise_aware_dynamics`` in
the high-dimensional limit with drawn initial noise pre-activations: config,
training-noise norms and initial alignments only), ``limit+pre0`` (the same
with the run's own initial noise pre-activations) and ``exact`` (the full
training-noise Gram matrix: a check of the derivation, must equal the
simulation).  The gap is predicted by the noise-aware theory (limit).

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
from simcomp.data import make_experiment_data  # noqa: E402
from simcomp.experiment import predict_run  # noqa: E402
from simcomp.sweep import derive_seed  # noqa: E402
from simcomp.theory import noisy_dynamics as nd  # noqa: E402
from simcomp.train import train_run  # noqa: E402

NAME = "noise_theory"
BAND = 0.05
K_DISTRACTORS = 4
PREDICTORS = ("race", "noisy_race", "limit", "limit_pre0", "exact")


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
    lim = _predict(cfg, data, [0, 1], a0)
    seconds_limit = time.perf_counter() - clock
    steps["limit"] = lim.learned_step
    steps["limit_pre0"] = _predict(cfg, data, [0, 1], a0, pre0=True).learned_step
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
        st = np.where(st < 0, np.inf, st) if name in ("limit", "limit_pre0", "exact") else st
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
    uni = [_predict(cfg, data, [r], runs[f"unimodal-{'AB'[r]}"].initial_alignment)
           for r in (0, 1)]
    row["gap_limit"] = nd.predicted_gap(lim, uni)
    row["joint_error_measured"] = exp_err["joint"]
    row["joint_error_limit"] = lim.test_error.fused
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
    for name, pre0 in (("limit", False), ("limit_pre0", True)):
        dyn = nd.noise_aware_dynamics(cfg, [0, 1], a0, data.train.y, data.train.presence,
                                      _noise(cfg, data, [0, 1], False, pre0))
        learned = [(int(t), k) for k, t in enumerate(dyn.learned_step) if t >= 0]
        row[f"winner_{name}"] = "AB"[min(learned)[1]] if learned else None
    return row


def summarise_winner(rows):
    out = []
    for d, kind, level in sorted({(r["d"], r["kind"], r["level"]) for r in rows}):
        sub = [r for r in rows if (r["d"], r["kind"], r["level"]) == (d, kind, level)
               and r["winner"] is not None]
        far = [r for r in sub if abs(r["x"]) >= BAND]
        st = {"d": d, "kind": kind, "level": level, "runs": len(sub), "far": len(far)}
        for name in ("race", "limit", "limit_pre0"):
            st[f"far_{name}"] = float(np.mean([r[f"winner_{name}"] == r["winner"] for r in far]))
            st[f"all_{name}"] = float(np.mean([r[f"winner_{name}"] == r["winner"] for r in sub]))
        out.append(st)
    return out


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
    exp_err, test_err, old, lim, pre = {}, {}, {}, {}, {}
    for name, trained in plan:
        run = runs[name]
        exp_err[name] = theory.expected_test_error(
            run.final_weights, [mods[r] for r in trained], [data.dictionaries[r] for r in trained],
            cfg.model.learner, cfg.model.activation, cfg.model.q, cfg.model.rho,
            points=2048, replicates=8).fused
        test_err[name] = float(run.trace.records["test_error"][-1])
        pred = predict_run(cfg, data, trained, run.initial_alignment)
        old[name] = (pred.test_error_noiseless, pred.test_error_coinflip)
        lim[name] = _predict(cfg, data, trained, run.initial_alignment)
        pre[name] = _predict(cfg, data, trained, run.initial_alignment, pre0=True)
    uni = ("unimodal-A", "unimodal-B")
    row["gap_expected"] = exp_err["joint"] - min(exp_err[u] for u in uni)
    row["gap_test_set"] = test_err["joint"] - min(test_err[u] for u in uni)
    row["gap_noiseless"] = old["joint"][0] - min(old[u][0] for u in uni)
    row["gap_coinflip"] = old["joint"][1] - min(old[u][1] for u in uni)
    row["gap_limit"] = nd.predicted_gap(lim["joint"], [lim[u] for u in uni])
    row["gap_limit_pre0"] = nd.predicted_gap(pre["joint"], [pre[u] for u in uni])
    row["joint_expected"] = exp_err["joint"]
    row["joint_limit"] = lim["joint"].test_error.fused
    return row


GAP_PREDICTORS = ("noiseless", "coinflip", "limit", "limit_pre0")


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
        gaps = np.array([r["gap_limit"] - r["gap_measured"] for r in sub])
        st["gap_mae_limit"] = float(np.mean(np.abs(gaps)))
        st["gap_sign_limit"] = float(np.mean([(r["gap_limit"] > 0.01) == (r["gap_measured"] > 0.01)
                                              for r in sub]))
        st["seconds_sim_joint"] = float(np.median([r["seconds_sim_joint"] for r in sub]))
        st["seconds_limit"] = float(np.median([r["seconds_limit"] for r in sub]))
        out.append(st)
    return out


def section(summary, gsum, step_table, gap_table, n_runs, n_gap, seconds):
    """The docs/results.md section: both tables and the verdicts against the targets."""
    v = verdicts(summary, gsum, None)
    worst_med, worst_win, worst_mae, worst_sign = (v["step_limit"], v["winner_limit"],
                                                   v["mae_limit"], v["sign_limit"])
    far = sum(st["far"] for st in summary)
    step_ok = worst_med <= 0.03
    mae_ok = worst_mae <= 0.01
    sign_ok = worst_sign >= 0.95
    return f"""## Noise-aware theory (`benchmarks/noise_theory.py`)

**Part 1, learned steps and winner.** The set-up of `theory_limits` (K = 2, symmetric, q = 3; A: beta 1, presence 1; B: presence in {{0.5, 1}}, beta_2 with xbar in {{-0.6, -0.2, 0.2, 0.6}}), compare mode, one seed per point, at noise sigma sqrt(d)/beta in {{0.1, 0.2, 0.4, 0.8}} (no distractors) and distractor load gamma sqrt(k)/beta in {{0.5, 1}} (k = 4, no noise), d = 32 and 128, n_train = 256, m = 8, T = 2 x the faster race + 10. Error = |measured / predicted - 1| for the joint winner. Predictions: the noise-free race (5.2), the noisy race (docs/theory.md section 8; only with noise), the noise-aware dynamics in the high-dimensional limit with drawn initial noise pre-activations ('limit': config, noise norms and initial alignments only) and with the run's own ('limit+pre0'), and with the exact training-noise Gram matrix ('exact', a check of the derivation: it is the simulation in other coordinates).

{step_table}

Target median learned-step error <= 3% up to noise 0.8 and load 1 ('limit'): worst level {C.pct(worst_med)} -- {C.verdict(step_ok)}; 'limit+pre0' (what every result's `predicted_learned_step` uses): worst level {C.pct(v['step_limit_pre0'])} -- {C.verdict(v['step_limit_pre0'] <= 0.03)}. Winner ('limit'), outside |x| < 0.05: worst level {C.pct(worst_win, 0)}, {far} runs in all; with 8 runs per level this cannot resolve 99%, which part 3 tests.

**Part 2, the gap.** A subset of the `performance_gap` grid (beta_A in {{1.5, 2.5}}, p_A in {{0.7, 0.9}}, T in {{100, 300}}, the same noise sigma in both modalities), compare mode, one seed, d = 32 and 128. 'Measured' gap = joint minus best uni-modal *expected* test error of the trained weights (`theory.expected_test_error`, free of test-set sampling noise; the 'test-set gap MAE' column is how far the 2048-sample test-set gap is from it). Predictions: noiseless and coin flip (5.5, from the reduced dynamics) and the noise-aware dynamics with its expected test error, with drawn initial noise pre-activations ('limit') and with the run's own ('limit+pre0': the `predicted_gap` every result carries).

{gap_table}

Target gap MAE <= 0.01 at every noise level (noise-aware, 'limit'): worst {worst_mae:.3f} -- {C.verdict(mae_ok)}; sign of 'gap > 0.01' right on >= 95% of runs: worst level {C.pct(worst_sign, 0)} -- {C.verdict(sign_ok)}. With the run's own initial pre-activations ('limit+pre0', what every result's `predicted_gap` uses): worst MAE {v['mae_limit_pre0']:.3f} -- {C.verdict(v['mae_limit_pre0'] <= 0.01)}, worst sign {C.pct(v['sign_limit_pre0'], 0)} -- {C.verdict(v['sign_limit_pre0'] >= 0.95)}. Grids are small ({n_runs} + {n_gap} compare-mode runs, {seconds:.0f} s); the percentages carry the sampling error of 8 runs per row.
"""


def verdicts(summary, gsum, wsum):
    """The worst level of every target, for 'limit' and 'limit+pre0'."""
    out = {}
    for name in ("limit", "limit_pre0"):
        out[f"step_{name}"] = max(st[f"median_err_{name}"] for st in summary)
        out[f"winner_{name}"] = min(st[f"winner_{name}"] for st in summary)
        out[f"mae_{name}"] = max(st[f"mae_{name}"] for st in gsum)
        out[f"sign_{name}"] = min(st[f"sign_{name}"] for st in gsum)
        if wsum:
            out[f"boundary_{name}"] = min(st[f"far_{name}"] for st in wsum)
    return out


def summary_rows(result):
    v = result["verdicts"]
    rows = []
    for name, label in (("limit", "limit (drawn pre-activations)"),
                        ("limit_pre0", "limit+pre0 (the results' prediction)")):
        rows += [
            [f"{label}: median learned-step error, worst level up to noise 0.8 / load 1",
             "<= 3%", C.pct(v[f"step_{name}"]), v[f"step_{name}"] <= 0.03],
            [f"{label}: winner agreement near the boundary, |x| >= 0.05, worst level", ">= 99%",
             C.pct(v[f"boundary_{name}"]), v[f"boundary_{name}"] >= 0.99],
            [f"{label}: gap MAE vs expected gap, worst noise level", "<= 0.01",
             f"{v[f'mae_{name}']:.4f}", v[f"mae_{name}"] <= 0.01],
            [f"{label}: sign of gap > 0.01 right, worst noise level", ">= 95%",
             C.pct(v[f"sign_{name}"], 0), v[f"sign_{name}"] >= 0.95],
        ]
    return rows


def figure(summary, path):
    plt = C.plt()
    fig, ax = plt.subplots(figsize=(9, 4.4))
    labels = [f"{st['kind'][:5]} {st['level']:g}\nd={st['d']}" for st in summary]
    xs = np.arange(len(summary))
    names = {"race": "race (5.2)", "noisy_race": "noisy race", "limit": "noise-aware, limit",
             "limit_pre0": "noise-aware, limit+pre0 (results)", "exact": "exact Gram (check)"}
    for name, mk in zip(PREDICTORS, "osD^v"):
        ys = [100 * st[f"median_err_{name}"] for st in summary]
        ax.plot(xs, ys, marker=mk, ls="-" if name != "exact" else ":", label=names[name])
    ax.axhline(3.0, color="k", ls="--", lw=0.8, label="target 3%")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylabel("joint winner's learned step: median |measured/predicted - 1| (%)")
    ax.set_title("Learned steps under noise and distractors: race vs the noise-aware dynamics")
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
            "median (90th pct) step err: race / noisy race / limit / limit+pre0 / exact",
            "winner agrees (|x| >= 0.05): race / noisy / limit / limit+pre0 / exact"]
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
            "gap MAE: noiseless / coin flip / limit / limit+pre0",
            "sign of gap > 0.01 right: same"]
    table = [[st["d"], st["noise"], st["runs"], st["gap_runs"], f"{st['test_set_mae']:.3f}",
              " / ".join(f"{st[f'mae_{n}']:.3f}" for n in GAP_PREDICTORS),
              " / ".join(C.pct(st[f"sign_{n}"], 0) for n in GAP_PREDICTORS)] for st in gsum]
    gap_table = C.md_table(head, table)
    wsum = summarise_winner(win_rows)
    head = ["d", "perturbation", "level", "runs", "|x| >= 0.05",
            "winner agrees, |x| >= 0.05: race / limit / limit+pre0", "all runs: same"]
    table = [[st["d"], st["kind"], st["level"], st["runs"], st["far"],
              " / ".join(C.pct(st[f"far_{n}"]) for n in ("race", "limit", "limit_pre0")),
              " / ".join(C.pct(st[f"all_{n}"]) for n in ("race", "limit", "limit_pre0"))]
             for st in wsum]
    win_table = C.md_table(head, table)
    body = section(summary, gsum, step_table, gap_table, len(rows), len(gap_rows), total)
    worst = min(st["far_limit"] for st in wsum)
    worst_pre0 = min(st["far_limit_pre0"] for st in wsum)
    body += f"""
**Part 3, the winner at the hardest levels.** Joint runs near the boundary (xbar in {{-0.3, -0.15, -0.05, 0.05, 0.15, 0.3}}, p_B in {{0.5, 1}}, 4 seeds each, T = 1.5 x the slower race + 10) at noise 0.8 and distractor load 1, d = 32 and 128: {len(win_rows)} runs. Race: sign of x; limit and limit+pre0: the first modality the noise-aware dynamics learns.

{win_table}

Target winner agreement >= 99% outside |x| < 0.05 ('limit'): worst level {C.pct(worst)} -- {C.verdict(worst >= 0.99)}; 'limit+pre0' (what every result's `predicted_winner` uses): worst level {C.pct(worst_pre0)} -- {C.verdict(worst_pre0 >= 0.99)}.
"""
    figure(summary, paths["fig_dir"] / f"{NAME}.png")
    body += f"\n{C.fig_link(NAME, 'learned-step error by level')}\n"
    print(body)
    C.update_section(NAME, body, path=paths["doc"])
    return {"rows": rows, "gap_rows": gap_rows, "winner_rows": win_rows,
            "verdicts": verdicts(summary, gsum, wsum)}


if __name__ == "__main__":
    C.script_main(main)
