"""Co-learning or competition: is the losing modality learned by the horizon T?

K = 2, joint mode.  Modality A is strong (beta_A = 2) and present on a
fraction p_A of the samples; modality B is weak (beta_B = 1) and always
present.  A wins the race; once it fits the samples where it is present, B
learns only from the samples A leaves unfitted, roughly 1/(1 - p_A) times
slower.  In the plane (p_A, T) a run is

* "none"          if no modality is learned by T,
* "competition"   if exactly one is (the loser is not learned by T),
* "co-learning"   if both are,

and the reduced dynamics of docs/model.md section 5.4 (run on each run's own training
patterns from its own initial alignments) predicts the same.  Gradient
descent is deterministic and a run with horizon T is the first T steps of a
run with a longer horizon, so each (p_A, seed) is trained once to T_max and
read at every T of the grid (both for the simulation and for the theory).

Target: the loser's learned-by-T (equivalently: co-learning or not) is
predicted right on >= 95% of the (run, T) cells.

Run:  python benchmarks/colearning.py [--quick] [--workers W]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from simcomp.sweep import derive_seed  # noqa: E402

NAME = "colearning"
TARGET = 0.95
NOISE_RATIO = 0.1
BETA_A, BETA_B = 2.0, 1.0
STATES = ("none", "competition", "co-learning")


def grid(quick: bool):
    if quick:
        return {"presence": (0.3, 0.8), "seeds": 1, "t_max": 150, "n_T": 6, "dim": 16,
                "n_train": 64}
    return {"presence": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0),
            "seeds": 12, "t_max": 2000, "n_T": 36, "dim": 32, "n_train": 256}


def horizons(g):
    return np.unique(np.round(np.geomspace(10, g["t_max"], g["n_T"])).astype(int))


def build(quick: bool):
    g = grid(quick)
    metas, configs = [], []
    for p_a in g["presence"]:
        for rep in range(g["seeds"]):
            sets = {
                "seed": derive_seed(2, {"p_A": p_a}, rep),
                # the race and the reduced dynamics are measured here: skip the costlier
                # noise-aware predictions and expected errors (docs/theory.md section 12)
                "train.noise_theory": False,
                "data.modality.0.beta": BETA_A, "data.modality.0.presence": p_a,
                "data.modality.1.beta": BETA_B, "data.modality.1.presence": 1.0,
                "data.modality.0.noise": NOISE_RATIO * BETA_A / math.sqrt(g["dim"]),
                "data.modality.1.noise": NOISE_RATIO * BETA_B / math.sqrt(g["dim"]),
            }
            cfg = C.small_config(dim=g["dim"], n_train=g["n_train"], n_test=64,
                                 steps=g["t_max"], trace_every=g["t_max"], mode="joint", sets=sets)
            metas.append({"p_A": p_a, "repeat": rep})
            configs.append(cfg)
    return metas, configs


def state(step_a, step_b, T):
    learned = sum(1 for s in (step_a, step_b) if s is not None and s <= T)
    return STATES[learned]


def measure(quick: bool, workers):
    g = grid(quick)
    metas, configs = build(quick)
    sim = C.run_configs(configs, workers, label=NAME)
    runs, cells = [], []
    for meta, row in zip(metas, sim):
        run = {**meta, "seed": row["seed"], "T_max": g["t_max"], "pi_A": row["presence_fraction_A"],
               "gamma_A": row["initial_leading_alignment_A"],
               "gamma_B": row["initial_leading_alignment_B"], "winner": row["winner_joint"],
               "predicted_winner": row["race_winner_joint"],
               "learned_step_A": row["learned_step_joint_A"],
               "learned_step_B": row["learned_step_joint_B"],
               # this benchmark measures the (noise-free) reduced dynamics
               "predicted_step_A": row["reduced_learned_step_joint_A"],
               "predicted_step_B": row["reduced_learned_step_joint_B"]}
        steps = [s for s in (run["learned_step_A"], run["learned_step_B"])]
        pred = [s for s in (run["predicted_step_A"], run["predicted_step_B"])]
        run["colearn_step"] = None if None in steps else max(steps)
        run["predicted_colearn_step"] = None if None in pred else max(pred)
        runs.append(run)
        for T in horizons(g):
            sim_state = state(*steps, T)
            pred_state = state(*pred, T)
            cells.append({"p_A": meta["p_A"], "repeat": meta["repeat"], "seed": row["seed"],
                          "T": int(T), "simulated": sim_state, "predicted": pred_state,
                          "loser_learned": sim_state == "co-learning",
                          "predicted_loser_learned": pred_state == "co-learning"})
    return runs, cells, configs


def analyse(runs, cells):
    loser = np.array([c["loser_learned"] == c["predicted_loser_learned"] for c in cells])
    full = np.array([c["simulated"] == c["predicted"] for c in cells])
    out = {"cells": len(cells), "runs": len(runs), "agree": float(loser.mean()),
           "agree_states": float(full.mean()), "wrong": int((~loser).sum())}
    # Errors of the predicted co-learning step where both are finite.
    rel = [r["colearn_step"] / r["predicted_colearn_step"] - 1 for r in runs
           if r["colearn_step"] is not None and r["predicted_colearn_step"]]
    out["colearn_rel_median"] = float(np.median(np.abs(rel))) if rel else float("nan")
    out["colearn_rel_p90"] = float(np.quantile(np.abs(rel), 0.9)) if rel else float("nan")
    out["colearn_pairs"] = len(rel)
    out["disagree_runs_censor"] = sum(
        1 for r in runs if (r["colearn_step"] is None) != (r["predicted_colearn_step"] is None))
    per_p = {}
    for p in dict.fromkeys(c["p_A"] for c in cells):
        sub = [c for c in cells if c["p_A"] == p]
        per_p[p] = float(np.mean([c["loser_learned"] == c["predicted_loser_learned"] for c in sub]))
    out["per_p"] = per_p
    out["winner_A"] = sum(1 for r in runs if r["winner"] == "A")
    return out


def figure(runs, cells, stats, g, path: Path):
    plt = C.plt()
    ps = sorted(dict.fromkeys(c["p_A"] for c in cells))
    Ts = horizons(g)
    frac = np.zeros((len(Ts), len(ps)))
    for j, p in enumerate(ps):
        for i, T in enumerate(Ts):
            sub = [c for c in cells if c["p_A"] == p and c["T"] == T]
            frac[i, j] = np.mean([STATES.index(c["simulated"]) for c in sub])
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.35, 1]})
    ax = axes[0]
    # Cell edges: midpoints in p, geometric midpoints in T.
    pe = np.concatenate([[ps[0] - (ps[1] - ps[0]) / 2],
                         (np.array(ps[1:]) + np.array(ps[:-1])) / 2,
                         [ps[-1] + (ps[-1] - ps[-2]) / 2]])
    lt = np.log(Ts.astype(float))
    te = np.exp(np.concatenate([[lt[0] - (lt[1] - lt[0]) / 2], (lt[1:] + lt[:-1]) / 2,
                                [lt[-1] + (lt[-1] - lt[-2]) / 2]]))
    from matplotlib.colors import LinearSegmentedColormap

    cmap = LinearSegmentedColormap.from_list("states", ["#ffffff", "#9ecae1", "#238b45"])
    mesh = ax.pcolormesh(pe, te, frac, cmap=cmap, vmin=0, vmax=2, shading="flat")
    cb = fig.colorbar(mesh, ax=ax, pad=0.02, ticks=[0, 1, 2])
    cb.ax.set_yticklabels(["0: none", "1: competition", "2: co-learning"])
    cb.set_label("simulated: modalities learned by T (mean over seeds)")
    # Predicted boundaries: median over seeds (and 10-90% band) of the reduced dynamics' steps.
    med, lo, hi, wmed = [], [], [], []
    for p in ps:
        sub = [r for r in runs if r["p_A"] == p]
        co = np.array([r["predicted_colearn_step"] if r["predicted_colearn_step"] is not None
                       else np.inf for r in sub], dtype=float)
        first = np.array([min(s for s in (r["predicted_step_A"], r["predicted_step_B"])
                              if s is not None) if (r["predicted_step_A"] is not None
                                                    or r["predicted_step_B"] is not None)
                          else np.inf for r in sub], dtype=float)
        co, first = np.minimum(co, 1e12), np.minimum(first, 1e12)  # never -> off the top
        med.append(np.median(co))
        lo.append(np.quantile(co, 0.1))
        hi.append(np.quantile(co, 0.9))
        wmed.append(np.median(first))
    med, lo, hi = (np.array(v, dtype=float) for v in (med, lo, hi))
    top = te[-1]
    ax.fill_between(ps, np.minimum(lo, top), np.minimum(hi, top), color="tab:purple", alpha=0.18,
                    lw=0, label="theory: 10-90% of seeds")
    ax.plot(ps, np.minimum(med, top), color="tab:purple", lw=2.0, marker="o", ms=4,
            label="theory (5.4): loser learned, median seed")
    ax.plot(ps, np.minimum(wmed, top), color="tab:blue", lw=1.5, ls="--", marker="s", ms=3,
            label="theory (5.4): winner learned, median seed")
    # Simulated disagreement cells.
    bad = [c for c in cells if c["loser_learned"] != c["predicted_loser_learned"]]
    if bad:
        rng = np.random.default_rng(0)
        dx = (ps[1] - ps[0]) * 0.3
        ax.scatter([c["p_A"] + rng.uniform(-dx, dx) for c in bad], [c["T"] for c in bad],
                   marker="x", s=16, c="red", lw=0.9,
                   label=f"a seed the theory gets wrong ({len(bad)} cells)")
    ax.set_yscale("log")
    ax.set_ylim(te[0], te[-1])
    ax.set_xlim(pe[0], pe[-1])
    ax.set_xlabel(r"presence of the (usual) winner A, $p_A$")
    ax.set_ylabel("horizon T (GD steps)")
    ax.set_title(f"Co-learning vs. competition: {stats['runs']} runs x {len(Ts)} horizons\n"
                 f"loser learned by T predicted right on {C.pct(stats['agree'])} of cells")
    ax.text(0.03, 0.04, "nothing learned yet", transform=ax.transAxes, fontsize=9)
    ax.text(0.97, 0.40, "competition:\nonly the winner learned", transform=ax.transAxes,
            fontsize=9, ha="right")
    ax.text(0.03, 0.93, "co-learning: both learned", transform=ax.transAxes, fontsize=9,
            color="white", weight="bold")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8.5)
    # Right: measured vs predicted co-learning step.
    ax = axes[1]
    pairs = [r for r in runs if r["colearn_step"] is not None and r["predicted_colearn_step"]]
    sc = ax.scatter([r["predicted_colearn_step"] for r in pairs],
                    [r["colearn_step"] for r in pairs], c=[r["p_A"] for r in pairs],
                    cmap="viridis", s=18, vmin=0.25, vmax=1, edgecolors="none")
    cb2 = fig.colorbar(sc, ax=ax, pad=0.02)
    cb2.set_label(r"$p_A$")
    if pairs:
        lo_ = min(min(r["predicted_colearn_step"], r["colearn_step"]) for r in pairs) * 0.8
        hi_ = max(max(r["predicted_colearn_step"], r["colearn_step"]) for r in pairs) * 1.25
        t = np.geomspace(lo_, hi_, 20)
        ax.plot(t, t, color="k", lw=1.0, label="measured = predicted")
        ax.fill_between(t, 0.95 * t, 1.05 * t, color="grey", alpha=0.3, lw=0, label="+-5%")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="upper left")
    ax.set_xlabel("predicted step at which the loser is learned (reduced dynamics)")
    ax.set_ylabel("measured step")
    ax.set_title(f"Loser's learned step, {len(pairs)} runs learned by {g['t_max']}\n"
                 f"median |ratio - 1| = {C.pct(stats['colearn_rel_median'])}")
    fig.tight_layout()
    C.save(fig, path)


def section(stats, runs, cells, configs, seconds, quick):
    g = grid(quick)
    ok = stats["agree"] >= TARGET
    Ts = horizons(g)
    per_p = ", ".join(f"{p:g}: {C.pct(a, 0)}" for p, a in stats["per_p"].items())
    lines = [
        "## Co-learning vs. competition (`benchmarks/colearning.py`)", "",
        f"**Swept:** K = 2, joint mode; A: beta = {BETA_A:g}, presence p_A in "
        f"{{{', '.join(f'{p:g}' for p in g['presence'])}}}; B: beta = {BETA_B:g}, presence 1; "
        f"{g['seeds']} seeds per p_A; horizon T at {len(Ts)} log-spaced values from {Ts[0]} to "
        f"{Ts[-1]}. Noise sigma sqrt(d) = {NOISE_RATIO:g} beta, no distractors, symmetric learner, "
        f"q = 3.",
        f"**Sizes:** {C.sizes_text(configs[0])}. Each (p_A, seed) is trained once for "
        f"T_max = {g['t_max']} steps and read at every T: GD is deterministic, so a run with "
        f"horizon T is exactly the first T steps of the longer run (the learned steps are checked "
        f"at every step); the reduced dynamics is read the same way.",
        f"**Runs:** {stats['runs']} joint runs x {len(Ts)} horizons = {stats['cells']} (run, T) "
        f"cells, {seconds:.0f} s. A won the race in {stats['winner_A']} of {stats['runs']} runs.",
        "",
        C.md_table(["measure", "value", "target"], [
            ["loser learned by T: prediction right (5.4 reduced dynamics)",
             f"{C.pct(stats['agree'], 2)} ({stats['cells'] - stats['wrong']}/{stats['cells']} "
             f"cells)", f">= {TARGET:.0%}: {C.verdict(ok)}"],
            ["all three states (none / competition / co-learning) right",
             C.pct(stats["agree_states"], 2), ""],
            [f"loser's learned step, measured / predicted - 1 ({stats['colearn_pairs']} runs "
             f"learned by T_max)", f"median {C.pct(stats['colearn_rel_median'], 2)}, 90th pct "
                                   f"{C.pct(stats['colearn_rel_p90'], 2)}", ""],
            ["runs where one side says 'learned by T_max' and the other not",
             str(stats["disagree_runs_censor"]), ""],
        ]),
        "",
        f"Agreement per p_A: {per_p}. The disagreements sit on the boundary: a cell is wrong "
        f"only when T falls between the measured and the predicted step of the loser.",
        "",
        C.fig_link(NAME, "co-learning plane"),
        "",
        "Left: the (p_A, T) plane coloured by the simulated fraction of seeds that learned both "
        "modalities by T; the purple line is the reduced dynamics' prediction of the loser's "
        "learned step (median seed, band 10-90%), the dashed blue line the winner's; red crosses "
        "mark the (seed, T) cells the theory gets wrong. Right: measured against predicted step "
        "at which the loser is learned.",
    ]
    return "\n".join(lines)


def summary_rows(result):
    s = result["stats"]
    return [["loser learned by T (co-learning vs competition), reduced dynamics",
             f">= {TARGET:.0%}", f"{C.pct(s['agree'], 2)} of {s['cells']} (run, T) cells",
             s["agree"] >= TARGET]]


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    timer = C.Timer()
    runs, cells, configs = measure(args.quick, args.workers)
    stats = analyse(runs, cells)
    paths = C.output_paths(args.quick, NAME)
    C.write_csv(NAME, cells, path=paths["csv"])
    C.write_csv(NAME + "_runs", runs, path=paths["csv"].with_name(NAME + "_runs.csv"))
    figure(runs, cells, stats, grid(args.quick), paths["fig_dir"] / f"{NAME}.png")
    C.update_section(NAME, section(stats, runs, cells, configs, timer.seconds, args.quick),
                     paths["doc"])
    print(f"{NAME}: {stats['runs']} runs x T grid = {stats['cells']} cells; loser learned by T "
          f"predicted right on {C.pct(stats['agree'], 2)} (all 3 states: "
          f"{C.pct(stats['agree_states'], 2)}); loser step median err "
          f"{C.pct(stats['colearn_rel_median'], 2)}")
    print(f"{NAME}: wrote {paths['csv']} ({timer.seconds:.0f} s)")
    return {"stats": stats, "runs": runs, "cells": cells}


if __name__ == "__main__":
    main()
