"""Where the theory stops: agreement as noise and distractors grow, and the population-mode check.

Part 1 -- limits.  The winner-boundary set-up of ``winner_boundary.py`` (K = 2,
symmetric learner, q = 3; B's beta chosen so that xbar = q ln(beta_2/beta_1)
+ ln(p_2/p_1) spans the boundary) in joint mode, repeated

* for growing noise sigma sqrt(d) / beta (no distractors), and
* for growing distractor load gamma sqrt(k) / beta (k = 4 atoms, no noise),

both measured relative to each modality's beta.  At every level: the winner
agreement with sign(x) on runs with |x| >= 0.05, and the learned-step error
|measured / race - 1| (docs/model.md section 5.2) of the joint winner; and,
on the same runs, the same two for the prediction every result now carries
(``predicted_winner``, ``predicted_learned_step``: the distribution-level
noise-aware dynamics of docs/theory.md section 12 where there is noise or
there are distractors, the reduced dynamics at level 0), to show the regime where each holds.

Part 2 -- population mode.  With noise = 0, distractors = 0 and
``data.population = true`` the simulator trains on the 2^(K+1) patterns
weighted by their probability; the reduced dynamics of docs/model.md section 5.4 must then
reproduce every neuron's alignment at every step to rounding error.  Several
configs (q = 2, 3, 4; class banks with srelu and ReLU; K = 3; random
dictionaries), 500 steps, compare mode, trace at every step.  Target: max
relative error <= 1e-10.

Run:  python benchmarks/theory_limits.py [--quick] [--workers W]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from simcomp.sweep import derive_seed  # noqa: E402

NAME = "theory_limits"
BAND = 0.05
WIN_TARGET = 0.99
TIME_TARGET = 0.03
POP_TARGET = 1e-10
K_DISTRACTORS = 4


def grid(quick: bool):
    if quick:
        return {"noise": (0.0, 0.8), "load": (1.0,), "xbar": (-0.6, 0.6), "presence": (1.0,),
                "seeds": 1, "dim": 16, "n_train": 64, "pop_steps": 40, "pop_configs": 2}
    return {"noise": (0.0, 0.1, 0.2, 0.4, 0.8, 1.6), "load": (0.25, 0.5, 1.0, 2.0, 4.0),
            "xbar": tuple(float(v) + 0.0 for v in np.round(np.linspace(-0.9, 0.9, 7), 6)),
            "presence": (0.5, 1.0), "seeds": 8,
            "dim": 32, "n_train": 256, "pop_steps": 500, "pop_configs": None}


# --------------------------------------------------------------------------- part 1


def build(quick: bool):
    g = grid(quick)
    levels = [("noise", v) for v in g["noise"]] + [("distractors", v) for v in g["load"]]
    metas, configs = [], []
    beta1, q = 1.0, 3.0
    for kind, level in levels:
        for p2 in g["presence"]:
            for xbar in g["xbar"]:
                xbar = round(float(xbar), 6)
                beta2 = beta1 * math.exp((xbar - math.log(p2)) / q)
                point = {"p2": p2, "xbar": xbar}
                for rep in range(g["seeds"]):
                    # The same seeds at every level: only the noise / distractors change.
                    sets = {"seed": derive_seed(4, point, rep),
                            "data.modality.0.beta": beta1, "data.modality.0.presence": 1.0,
                            "data.modality.1.beta": beta2, "data.modality.1.presence": p2}
                    for r, beta in ((0, beta1), (1, beta2)):
                        if kind == "noise":
                            sets[f"data.modality.{r}.noise"] = level * beta / math.sqrt(g["dim"])
                        else:
                            sets[f"data.modality.{r}.distractors"] = K_DISTRACTORS
                            sets[f"data.modality.{r}.distractor_strength"] = (
                                level * beta / math.sqrt(K_DISTRACTORS))
                    cfg = C.small_config(dim=g["dim"], n_train=g["n_train"], n_test=64,
                                         trace_every=100, mode="joint", sets=sets)
                    cfg = cfg.replace(**{"train.steps": C.horizon_for(cfg, "min", 2.0, 10, 3000)})
                    metas.append({"kind": kind, "level": level, "p_B": p2, "xbar": xbar,
                                  "repeat": rep, "T": cfg.train.steps})
                    configs.append(cfg)
    return metas, configs


def _err(measured, race, T):
    """|measured/race - 1|; None when the case is censored (race beyond T and nothing measured)."""
    if race is None:
        return None
    if measured is None:
        return math.inf if race <= T else None
    return abs(measured / race - 1)


def measure_limits(quick: bool, workers):
    metas, configs = build(quick)
    sim = C.run_configs(configs, workers, label=f"{NAME} (noise, distractors)")
    rows = []
    for meta, r in zip(metas, sim):
        out = dict(meta)
        out["seed"] = r["seed"]
        out["x"] = C.winner_x(r)
        out["winner"] = r["winner_joint"]
        out["agree"] = r["winner_joint"] == ("B" if out["x"] > 0 else "A")
        w = r["winner_joint"]
        out["winner_err"] = (_err(r[f"learned_step_joint_{w}"], r[f"race_learned_step_joint_{w}"],
                                  meta["T"]) if w else math.inf)
        out["learned_joint_winner"] = r[f"learned_step_joint_{w}"] if w else None
        out["race_joint_winner"] = r[f"race_learned_step_joint_{w}"] if w else None
        # the run's own theory (noise-aware with noise or distractors, else reduced)
        out["theory"] = r["prediction_theory_joint"]
        out["theory_winner"] = r["predicted_winner_joint"]
        out["theory_agree"] = r["predicted_winner_joint"] == w
        pred = r[f"predicted_learned_step_joint_{w}"] if w else None
        out["theory_joint_winner"] = pred
        out["theory_err"] = (math.inf if w is None or pred is None else
                             abs(r[f"learned_step_joint_{w}"] / pred - 1) if pred > 0 else
                             (0.0 if r[f"learned_step_joint_{w}"] == 0 else math.inf))
        rows.append(out)
    return rows, configs


def analyse_limits(rows):
    out = []
    for kind in ("noise", "distractors"):
        for level in dict.fromkeys(r["level"] for r in rows if r["kind"] == kind):
            sub = [r for r in rows if r["kind"] == kind and r["level"] == level]
            far = [r for r in sub if abs(r["x"]) >= BAND]
            errs = np.array([r["winner_err"] for r in sub if r["winner_err"] is not None],
                            dtype=float)
            signed = [r["learned_joint_winner"] / r["race_joint_winner"] - 1 for r in sub
                      if r["learned_joint_winner"] is not None and r["race_joint_winner"]]
            st = {"kind": kind, "level": level, "runs": len(sub), "far": len(far),
                  "agree_far": float(np.mean([r["agree"] for r in far])) if far else float("nan"),
                  "agree_all": float(np.mean([r["agree"] for r in sub])),
                  "time_median": float(np.median(errs)) if errs.size else float("nan"),
                  "time_p90": float(np.quantile(errs, 0.9)) if errs.size else float("nan"),
                  "time_signed": float(np.median(signed)) if signed else float("nan"),
                  "time_cases": int(errs.size)}
            st["holds"] = bool(st["agree_far"] >= WIN_TARGET and st["time_median"] <= TIME_TARGET)
            terr = np.array([r["theory_err"] for r in sub], dtype=float)
            st["theory"] = "/".join(sorted({r["theory"] for r in sub}))
            st["theory_agree_far"] = (float(np.mean([r["theory_agree"] for r in far])) if far
                                      else float("nan"))
            st["theory_agree_all"] = float(np.mean([r["theory_agree"] for r in sub]))
            st["theory_median"] = float(np.median(terr))
            st["theory_p90"] = float(np.quantile(terr, 0.9))
            st["theory_holds"] = bool(st["theory_agree_far"] >= WIN_TARGET
                                      and st["theory_median"] <= TIME_TARGET)
            out.append(st)
    return out


def regime(stats, kind, key="holds"):
    """The largest level up to which both targets hold at every level (None: not the first)."""
    ok_up_to = None
    for st in [s for s in stats if s["kind"] == kind]:
        if not st[key]:
            break
        ok_up_to = st["level"]
    return ok_up_to


# --------------------------------------------------------------------------- part 2

POP_CONFIGS = [
    ("symmetric, q = 3 (default data)", {}),
    ("symmetric, q = 4", {"model.q": 4.0, "model.init_scale": 0.05}),
    ("symmetric, q = 2", {"model.q": 2.0, "data.modality.0.beta": 1.5}),
    ("symmetric, q = 3, random dictionaries",
     {"data.modality.0.dictionary": "random", "data.modality.1.dictionary": "random",
      "data.modality.0.presence": 0.6}),
    ("class_banks, srelu, q = 3", {"model.learner": "class_banks"}),
    ("class_banks, relu (threshold 1)",
     {"model.learner": "class_banks", "model.activation": "relu", "model.learned_threshold": 1.0,
      "model.init_scale": 0.01, "train.lr": 0.5}),
    ("K = 3, symmetric, q = 3, random dictionaries",
     {"data.modality.2.dim": 24, "data.modality.2.beta": 1.5, "data.modality.2.presence": 0.7,
      "data.modality.2.noise": 0.0, "data.modality.0.dictionary": "random",
      "data.modality.2.dictionary": "random"}),
]


def population_check(quick: bool):
    """Max relative error between the simulated and the reduced-dynamics alignments."""
    from simcomp.experiment import run_experiment

    g = grid(quick)
    chosen = POP_CONFIGS[: g["pop_configs"]] if g["pop_configs"] else POP_CONFIGS
    results = []
    for label, sets in chosen:
        sets = {"data.population": True, "seed": 7, **sets}
        cfg = C.small_config(dim=g["dim"], steps=g["pop_steps"], trace_every=1, mode="compare",
                             sets=sets)
        exp = run_experiment(cfg)
        worst, worst_abs, worst_run, steps = 0.0, 0.0, None, 0
        learned_match = True
        for run in exp.runs:
            sim = np.asarray(run.trace.records["alignment"], dtype=float)  # (R, K, B, m)
            red = exp.predictions[run.name].reduced.alignment            # (R, K, B, m)
            if sim.shape != red.shape:
                raise RuntimeError(f"{label} {run.name}: trace {sim.shape} vs reduced {red.shape}")
            diff = np.abs(sim - red).reshape(sim.shape[0], -1).max(axis=1)
            scale = np.abs(red).reshape(red.shape[0], -1).max(axis=1)
            rel = diff / np.maximum(scale, 1e-300)
            if rel.max() > worst:
                worst, worst_run = float(rel.max()), run.name
            worst_abs = max(worst_abs, float(diff.max()))
            steps = max(steps, sim.shape[0] - 1)
            learned_match &= bool(np.array_equal(run.learned_step,
                                                 exp.predictions[run.name].predicted_learned_step))
        results.append({"config": label, "K": cfg.K, "learner": cfg.model.learner,
                        "activation": cfg.model.activation, "q": cfg.model.q,
                        "steps": steps, "runs": len(exp.runs), "max_rel_error": worst,
                        "max_abs_error": worst_abs, "worst_run": worst_run,
                        "learned_steps_equal": learned_match})
    return results


# --------------------------------------------------------------------------- output


def figure(stats, pop, path: Path, pop_path: Path):
    plt = C.plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6))
    for ax, kind, xlabel in ((axes[0], "noise", r"noise $\sigma\sqrt{d}/\beta$"),
                             (axes[1], "distractors",
                              rf"distractor load $\gamma\sqrt{{k}}/\beta$  (k = {K_DISTRACTORS})")):
        sub = [s for s in stats if s["kind"] == kind]
        xs = np.arange(len(sub))
        ax.plot(xs, [100 * (1 - s["agree_far"]) for s in sub], marker="o", color="tab:blue",
                label=f"winner: % of runs disagreeing with sign(x), |x| >= {BAND}")
        ax.plot(xs, [100 * s["time_median"] for s in sub], marker="s", color="tab:orange",
                label="winner's learned step: median |measured/race - 1| (%)")
        ax.plot(xs, [100 * min(s["time_p90"], 10) for s in sub], marker="s", ls="--",
                color="tab:orange", alpha=0.6,
                label="winner's learned step: 90th percentile (%, cut at 1000)")
        ax.plot(xs, [100 * s["time_signed"] for s in sub], marker="^", ls=":", color="tab:red",
                label="winner's learned step: median signed error (%)")
        ax.plot(xs, [100 * (1 - s["theory_agree_far"]) for s in sub], marker="o", ls="-.",
                color="tab:cyan", label="run's theory (noise-aware / reduced): % winner "
                f"disagreeing, |x| >= {BAND}")
        ax.plot(xs, [100 * s["theory_median"] for s in sub], marker="D", ls="-.",
                color="tab:purple", label="run's theory: winner's learned step, median error (%)")
        ax.axhline(100 * (1 - WIN_TARGET), color="tab:blue", lw=0.9, ls=(0, (1, 3)),
                   label=f"target: {100 * (1 - WIN_TARGET):g}% disagreement")
        ax.axhline(100 * TIME_TARGET, color="tab:orange", lw=0.9, ls=(0, (1, 3)),
                   label=f"target: {100 * TIME_TARGET:g}% median error")
        held = regime(stats, kind)
        if held is not None:
            k = [s["level"] for s in sub].index(held)
            ax.axvspan(-0.5, k + 0.5, color="tab:green", alpha=0.08, lw=0,
                       label="both targets hold (race)")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xticks(xs, [f"{s['level']:g}" for s in sub])
        ax.set_xlim(-0.5, len(sub) - 0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("%  (symlog scale)")
        held_t = regime(stats, kind, "theory_holds")
        ax.set_title(f"{'Noise' if kind == 'noise' else 'Distractors'}: race holds up to "
                     f"{'-' if held is None else format(held, 'g')}, run's theory up to "
                     f"{'-' if held_t is None else format(held_t, 'g')}", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8.5, frameon=False)
    fig.suptitle("Where the theory stops: agreement as noise and distractors grow", fontsize=12)
    fig.tight_layout(rect=(0, 0.22, 1, 1))
    C.save(fig, path)

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(pop) + 1.6))
    ys = np.arange(len(pop))
    vals = [max(p["max_rel_error"], 1e-18) for p in pop]
    ax.barh(ys, vals, color=["tab:green" if v <= POP_TARGET else "tab:red" for v in vals])
    ax.axvline(POP_TARGET, color="k", ls="--", lw=1.0, label=f"target {POP_TARGET:g}")
    ax.axvline(np.finfo(float).eps, color="grey", ls=":", lw=1.0, label="machine epsilon")
    ax.set_xscale("log")
    ax.set_xlim(1e-17, 1e-9)
    ax.set_yticks(ys, [p["config"] for p in pop])
    ax.invert_yaxis()
    ax.set_xlabel("max relative error of the alignments, simulation vs reduced dynamics")
    ax.set_title(f"Population mode: {len(pop)} configs x {pop[0]['steps'] if pop else 0} steps, "
                 f"every neuron of every run")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    C.save(fig, pop_path)


def level_text(level):
    return "(not even the lowest level)" if level is None else format(level, "g")


def section(stats, pop, rows, configs, seconds, quick):
    g = grid(quick)
    Ts = [c.train.steps for c in configs]
    noise_ok, dist_ok = regime(stats, "noise"), regime(stats, "distractors")
    table = []
    for s in stats:
        table.append([s["kind"], f"{s['level']:g}", s["runs"],
                      f"{C.pct(s['agree_far'], 1)} ({s['far']})", C.pct(s["agree_all"], 1),
                      C.pct(s["time_median"], 2),
                      C.pct(s["time_p90"], 1) if np.isfinite(s["time_p90"]) else "inf",
                      f"{100 * s['time_signed']:+.2f}%", "yes" if s["holds"] else "**no**"])
    theory_table = [[s["kind"], f"{s['level']:g}", s["theory"],
                     f"{C.pct(s['theory_agree_far'], 1)} ({s['far']})",
                     C.pct(s["theory_agree_all"], 1), C.pct(s["theory_median"], 2),
                     C.pct(s["theory_p90"], 1) if np.isfinite(s["theory_p90"]) else "inf",
                     "yes" if s["theory_holds"] else "**no**"] for s in stats]
    theory_noise_ok = regime(stats, "noise", "theory_holds")
    theory_dist_ok = regime(stats, "distractors", "theory_holds")
    theory_bad = {kind: next((s for s in stats if s["kind"] == kind and not s["theory_holds"]),
                             None) for kind in ("noise", "distractors")}

    def theory_bad_text(kind, what):
        s = theory_bad[kind]
        if s is None:
            return f"every level of {what} swept here meets both targets"
        return (f"at {what} {s['level']:g} the winner agreement is "
                f"{C.pct(s['theory_agree_far'])} and the median learned-step error "
                f"{C.pct(s['theory_median'])}")
    pop_ok = all(p["max_rel_error"] <= POP_TARGET for p in pop)
    worst = max((p["max_rel_error"] for p in pop), default=float("nan"))
    pop_table = [[p["config"], p["runs"], p["steps"], f"{p['max_rel_error']:.2e}",
                  f"{p['max_abs_error']:.2e}", p["worst_run"],
                  "yes" if p["learned_steps_equal"] else "**no**"] for p in pop]
    first_bad = {kind: next((s for s in stats if s["kind"] == kind and not s["holds"]), None)
                 for kind in ("noise", "distractors")}

    def bad_text(kind, what):
        s = first_bad[kind]
        if s is None:
            return f"no level of {what} swept here breaks the targets"
        return (f"at {what} {s['level']:g} the winner agreement is {C.pct(s['agree_far'])} and the "
                f"median learned-step error {C.pct(s['time_median'])} (median signed error "
                f"{100 * s['time_signed']:+.1f}%)")

    lines = [
        "## Where the theory stops (`benchmarks/theory_limits.py`)", "",
        "### Noise and distractors", "",
        f"**Swept:** the winner-boundary set-up (K = 2, symmetric, q = 3; A: beta 1, presence 1; "
        f"B: presence in {{{', '.join(f'{p:g}' for p in g['presence'])}}}, beta_2 with xbar in "
        f"{{{', '.join(f'{x:g}' for x in g['xbar'])}}}), joint mode, {g['seeds']} seeds per "
        f"point (the same seeds at every level), at noise sigma sqrt(d)/beta in "
        f"{{{', '.join(f'{v:g}' for v in g['noise'])}}} without distractors, and at distractor "
        f"load gamma sqrt(k)/beta in {{{', '.join(f'{v:g}' for v in g['load'])}}} (k = "
        f"{K_DISTRACTORS} atoms) without noise.",
        f"**Sizes:** {C.sizes_text(configs[0])}; T = 2 x the faster modality's race + 10 "
        f"({min(Ts)} to {max(Ts)} steps).",
        f"**Runs:** {len(rows)} joint runs, {seconds:.0f} s in all (with part 2). Learned-step "
        f"error: the joint winner's measured step against its race (5.2); a winner not learned "
        f"by T counts as an infinite error.",
        "",
        C.md_table(["perturbation", "level", "runs", f"winner agrees (|x| >= {BAND})",
                    "winner agrees (all)", "learned step: median err", "90th pct",
                    "median signed", f"targets hold (>= {WIN_TARGET:.0%}, <= {TIME_TARGET:.0%})"],
                   table),
        "",
        f"**Regime where the formulas hold** (winner agreement >= {WIN_TARGET:.0%} outside "
        f"|x| < {BAND} and median learned-step error <= {TIME_TARGET:.0%}, at every level up to "
        f"it): noise sigma sqrt(d) <= "
        f"{'(not even the lowest level)' if noise_ok is None else format(noise_ok, 'g')} beta, "
        f"distractor load gamma sqrt(k) <= "
        f"{'(not even the lowest level)' if dist_ok is None else format(dist_ok, 'g')} beta "
        f"(at these sizes: d = {g['dim']}, n_train = {g['n_train']}). Beyond: "
        f"{bad_text('noise', 'noise')}; {bad_text('distractors', 'distractor load')}. "
        f"Noise and distractors add to every neuron's pre-activation a random part of size "
        f"about sigma ||w|| (or gamma sqrt(k) times the distractor weights), which the race of "
        f"5.1 ignores; since srelu' is convex near 0 this part speeds the small-alignment phase "
        f"up (a negative signed error: learned earlier than predicted) and, once it is "
        f"comparable to beta Gamma, it decides the race instead of Gamma.",
        "",
        "**The run's own theory on the same runs.** Every result now carries `prediction_theory`, "
        "`predicted_winner` and `predicted_learned_step` from the noise-aware dynamics "
        "averaged over the noise's law (docs/theory.md section 12: configuration, initial "
        "weights and pattern weights, never the drawn training noise) "
        "where a modality has noise or distractors, and from the reduced dynamics otherwise "
        "(level 0). Winner agreement is with the measured winner; learned-step error as above "
        "(a winner the theory does not learn by T counts as infinite).",
        "",
        C.md_table(["perturbation", "level", "theory", f"winner agrees (|x| >= {BAND})",
                    "winner agrees (all)", "learned step: median err", "90th pct",
                    f"targets hold (>= {WIN_TARGET:.0%}, <= {TIME_TARGET:.0%})"], theory_table),
        "",
        f"**Regime where the run's theory holds** (same targets): noise sigma sqrt(d) <= "
        f"{level_text(theory_noise_ok)} beta, distractor load gamma sqrt(k) <= "
        f"{level_text(theory_dist_ok)}"
        f" beta, against {'-' if noise_ok is None else format(noise_ok, 'g')} and "
        f"{'-' if dist_ok is None else format(dist_ok, 'g')} for the race; "
        f"{theory_bad_text('noise', 'noise')}; "
        f"{theory_bad_text('distractors', 'distractor load')}.",
        "",
        C.fig_link(NAME, "where theory stops"),
        "",
        "### Population mode against the reduced dynamics", "",
        f"{len(pop)} configs, compare mode (every run of each), {pop[0]['steps'] if pop else 0} "
        f"steps, trace at every step; error = max over steps of max_neurons |a_sim - a_reduced| "
        f"/ max_neurons |a_reduced| (alignments of every neuron of every run).",
        "",
        C.md_table(["config", "runs", "steps", "max relative error", "max absolute error",
                    "worst run", "learned steps equal"], pop_table),
        "",
        f"Max relative error over all configs: {worst:.2e} (target <= {POP_TARGET:g}: "
        f"{C.verdict(pop_ok)}).",
        "",
        C.fig_link(NAME + "_population", "population mode check"),
    ]
    return "\n".join(lines)


def summary_rows(result):
    stats, pop = result["stats"], result["population"]
    worst = max(p["max_rel_error"] for p in pop)
    n_ok, d_ok = regime(stats, "noise"), regime(stats, "distractors")
    tn, td = regime(stats, "noise", "theory_holds"), regime(stats, "distractors", "theory_holds")
    return [["population mode vs reduced dynamics: max relative error", f"<= {POP_TARGET:g}",
             f"{worst:.1e} ({len(pop)} configs x {pop[0]['steps']} steps)", worst <= POP_TARGET],
            ["regime where winner >= 99% and learn time <= 3% hold (race)", "(report)",
             f"noise sigma sqrt(d)/beta <= {n_ok if n_ok is not None else '-'}, distractor "
             f"load gamma sqrt(k)/beta <= {d_ok if d_ok is not None else '-'}", None],
            ["the same for the run's theory (noise-aware / reduced)", "(report)",
             f"noise sigma sqrt(d)/beta <= {tn if tn is not None else '-'}, distractor "
             f"load gamma sqrt(k)/beta <= {td if td is not None else '-'}", None]]


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    timer = C.Timer()
    rows, configs = measure_limits(args.quick, args.workers)
    stats = analyse_limits(rows)
    pop = population_check(args.quick)
    paths = C.output_paths(args.quick, NAME)
    C.write_csv(NAME, rows, path=paths["csv"])
    C.write_csv(NAME + "_population", pop,
                path=paths["csv"].with_name(NAME + "_population.csv"))
    figure(stats, pop, paths["fig_dir"] / f"{NAME}.png",
           paths["fig_dir"] / f"{NAME}_population.png")
    C.update_section(NAME, section(stats, pop, rows, configs, timer.seconds, args.quick),
                     paths["doc"])
    for s in stats:
        print(f"{NAME}: {s['kind']} {s['level']:g}: winner agreement {C.pct(s['agree_far'])} "
              f"(|x| >= {BAND}), learned-step median err {C.pct(s['time_median'], 2)}"
              f"{'' if s['holds'] else '  <- targets missed'}; run's theory ({s['theory']}): "
              f"{C.pct(s['theory_agree_far'])}, {C.pct(s['theory_median'], 2)}")
    for p in pop:
        print(f"{NAME}: population {p['config']}: max rel error {p['max_rel_error']:.2e}")
    print(f"{NAME}: wrote {paths['csv']} ({timer.seconds:.0f} s)")
    return {"stats": stats, "population": pop, "rows": rows}


if __name__ == "__main__":
    main()
