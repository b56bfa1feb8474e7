"""Who wins the race: measured winner against the theory's x (docs/model.md section 5.3).

K = 2.  Modality A (beta_1, presence 1) against modality B whose signal
strength beta_2 is swept across the predicted boundary for a few presence
values p_2.  For each (p_2, beta_2) the expected coordinate

    xbar = q ln(beta_2/beta_1) + ln(p_2/p_1)

runs over a fixed range around 0, and several seeds per point let the random
initial alignments (Gamma_1, Gamma_2) scatter the runs' own coordinate

    x = ln(kappa_2 Gamma_2^(q-2) / (kappa_1 Gamma_1^(q-2)))

over both sides of the boundary x = 0.  The measured winner is the modality
learned first in a joint run; the horizon of each run is 1.5 x the race's
predicted step of the faster modality + 10 steps (a run in which neither is
learned by then counts as a disagreement).  Repeated for q = 3, q = 4 and the
class_banks learner (q = 3).

Target (low noise sigma sqrt(d) = 0.1 beta, no distractors): agreement
>= 99% on the runs with |x| >= 0.05.

Run:  python benchmarks/winner_boundary.py [--quick] [--workers W]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from simcomp.sweep import derive_seed  # noqa: E402

NAME = "winner_boundary"
TARGET = 0.99
BAND = 0.05
NOISE_RATIO = 0.1  # sigma_r sqrt(d_r) / beta_r

# learner label -> (learner, q, beta_1, init_scale): beta_1 and sigma_0 give races of ~50-400 steps.
LEARNERS = {
    "symmetric, q = 3": ("symmetric", 3.0, 1.0, 0.01),
    "symmetric, q = 4": ("symmetric", 4.0, 1.0, 0.05),
    "class_banks, q = 3": ("class_banks", 3.0, 1.26, 0.01),
}


def grid(quick: bool):
    if quick:
        return {"presence": (0.5, 1.0), "xbar": np.linspace(-0.6, 0.6, 3), "seeds": 1,
                "dim": 16, "n_train": 64, "learners": list(LEARNERS)[:1] + list(LEARNERS)[2:]}
    return {"presence": (0.5, 0.75, 1.0), "xbar": np.round(np.linspace(-0.8, 0.8, 9), 6) + 0.0,
            "seeds": 12,
            "dim": 32, "n_train": 256, "learners": list(LEARNERS)}


def build(quick: bool):
    g = grid(quick)
    metas, configs = [], []
    for label in g["learners"]:
        learner, q, beta1, init = LEARNERS[label]
        for p2 in g["presence"]:
            for xbar in g["xbar"]:
                xbar = round(float(xbar), 6)
                beta2 = beta1 * math.exp((xbar - math.log(p2)) / q)
                point = {"learner": learner, "q": q, "p2": p2, "xbar": xbar}
                for rep in range(g["seeds"]):
                    sets = {
                        "seed": derive_seed(0, point, rep),
                        # the race and the reduced dynamics are measured here: skip the costlier
                        # noise-aware predictions and expected errors (docs/theory.md section 12)
                        "train.noise_theory": False,
                        "model.learner": learner, "model.q": q, "model.init_scale": init,
                        "data.modality.0.beta": beta1, "data.modality.0.presence": 1.0,
                        "data.modality.1.beta": beta2, "data.modality.1.presence": p2,
                        "data.modality.0.noise": NOISE_RATIO * beta1 / math.sqrt(g["dim"]),
                        "data.modality.1.noise": NOISE_RATIO * beta2 / math.sqrt(g["dim"]),
                    }
                    cfg = C.small_config(dim=g["dim"], n_train=g["n_train"], n_test=64,
                                         trace_every=100, mode="joint", sets=sets)
                    cfg = cfg.replace(**{"train.steps": C.horizon_for(cfg, "min", 1.5, 10, 4000)})
                    metas.append({"learner_label": label, "learner": learner, "q": q, "p_B": p2,
                                  "xbar": xbar, "beta_ratio": beta2 / beta1, "repeat": rep,
                                  "T": cfg.train.steps})
                    configs.append(cfg)
    return metas, configs


def analyse(rows):
    """Agreement and the logistic boundary, per learner."""
    out = {}
    for label in dict.fromkeys(r["learner_label"] for r in rows):
        sub = [r for r in rows if r["learner_label"] == label]
        x = np.array([r["x_theory"] for r in sub])
        win = np.array([r["winner"] for r in sub], dtype=object)
        pred = np.where(x > 0, "B", "A")
        agree = pred == win
        far = np.abs(x) >= BAND
        race_agree = np.array([r["winner"] == r["predicted_winner"] for r in sub])
        red = np.array([r["winner"] == r["reduced_winner"] for r in sub])
        fin = np.isfinite(x) & np.array([w in ("A", "B") for w in win])
        loc, width, b0, b1, conv = C.logistic_fit(x[fin], (win[fin] == "B").astype(float))
        mis_far = int(np.sum(~agree & far))
        out[label] = {
            "runs": len(sub), "agree": float(agree.mean()), "far_runs": int(far.sum()),
            "agree_far": float(agree[far].mean()) if far.any() else float("nan"),
            "mis_far": mis_far, "near_runs": int((~far).sum()),
            "agree_near": float(agree[~far].mean()) if (~far).any() else float("nan"),
            "race_agree": float(race_agree.mean()), "reduced_agree": float(red.mean()),
            "no_winner": int(np.sum([w is None for w in win])),
            "loc": loc, "width": width, "b0": b0, "b1": b1, "converged": conv,
            "wins_B": int(np.sum(win == "B")), "wins_A": int(np.sum(win == "A")),
        }
    return out


# This benchmark's CSV columns (kept stable) from the result columns of simcomp.results.
_ROW_COLUMNS = {
    "seed": "seed",
    "gamma_A": "initial_leading_alignment_A", "gamma_B": "initial_leading_alignment_B",
    "pi_A": "presence_fraction_A", "pi_B": "presence_fraction_B",
    "learned_step_joint_A": "learned_step_joint_A", "learned_step_joint_B": "learned_step_joint_B",
    "race_step_joint_A": "race_learned_step_joint_A",
    "race_step_joint_B": "race_learned_step_joint_B",
    "predicted_step_joint_A": "reduced_learned_step_joint_A",
    "predicted_step_joint_B": "reduced_learned_step_joint_B",
    "winner": "winner_joint", "predicted_winner": "race_winner_joint",
    "x": "winner_coordinate_joint", "status": "status",
}


def reduced_winner(row):
    steps = {m: row.get(f"reduced_learned_step_joint_{m}") for m in ("A", "B")}
    done = [(s, m) for m, s in steps.items() if s is not None]
    return min(done)[1] if done else None


def measure(quick: bool, workers: int | None):
    metas, configs = build(quick)
    sim = C.run_configs(configs, workers, label=NAME)
    rows = []
    for meta, cfg, row in zip(metas, configs, sim):
        out = dict(meta)
        out.update({k: row[column] for k, column in _ROW_COLUMNS.items()})
        out["x_theory"] = C.winner_x(row)
        out["reduced_winner"] = reduced_winner(row)
        out["agree"] = out["winner"] == ("B" if out["x_theory"] > 0 else "A")
        rows.append(out)
    return rows, configs


def figure(rows, stats, path: Path):
    plt = C.plt()
    labels = list(stats)
    fig, axes = plt.subplots(2, len(labels), figsize=(4.6 * len(labels), 8.2), squeeze=False)
    rng = np.random.default_rng(0)
    for j, label in enumerate(labels):
        sub = [r for r in rows if r["learner_label"] == label]
        st = stats[label]
        q = sub[0]["q"]
        x = np.array([r["x_theory"] for r in sub])
        win_b = np.array([r["winner"] == "B" for r in sub])
        none = np.array([r["winner"] is None for r in sub])
        # Top: the plane (kappa term, Gamma term); x = 0 is the anti-diagonal.
        kap = np.array([math.log(r["pi_B"] * (r["beta_ratio"]) ** q / r["pi_A"]) for r in sub])
        gam = x - kap
        ax = axes[0, j]
        fin = np.isfinite(x)
        ax.scatter(kap[fin & ~win_b & ~none], gam[fin & ~win_b & ~none], s=14, c="tab:blue",
                   label="A learned first", alpha=0.75, edgecolors="none")
        ax.scatter(kap[fin & win_b], gam[fin & win_b], s=14, c="tab:orange", marker="s",
                   label="B learned first", alpha=0.75, edgecolors="none")
        if (fin & none).any():
            ax.scatter(kap[fin & none], gam[fin & none], s=30, c="k", marker="x",
                       label="none learned by T")
        bad = fin & ~np.array([r["agree"] for r in sub])
        if bad.any():
            ax.scatter(kap[bad], gam[bad], s=70, facecolors="none", edgecolors="red", lw=1.2,
                       label="disagrees with sign(x)")
        both = np.abs(np.concatenate([kap[fin], gam[fin]]))
        lim = max(1.0, float(np.quantile(both, 0.995)) * 1.1)
        t = np.linspace(-lim, lim, 2)
        ax.plot(t, -t, color="k", lw=1.2, label="theory boundary x = 0")
        ax.fill_between(t, -t - BAND, -t + BAND, color="grey", alpha=0.25, lw=0,
                        label=f"|x| < {BAND}")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel(r"rate term  $\ln(\kappa_B/\kappa_A)$")
        ax.set_ylabel(r"initialisation term  $x - \ln(\kappa_B/\kappa_A)$" if q != 2 else "")
        ax.set_title(f"{label}: winner in the plane\n({st['runs']} joint runs)")
        ax.legend(loc="best", framealpha=0.9, fontsize=7.5)
        # Bottom: winner against x with the fitted logistic boundary.
        ax = axes[1, j]
        xf = np.clip(x, -30, 30)
        jitter = rng.uniform(-0.04, 0.04, size=x.size)
        ax.scatter(xf, win_b + jitter, s=10, c=np.where(win_b, "tab:orange", "tab:blue"),
                   alpha=0.6, edgecolors="none", label="runs (jittered)")
        xs = np.concatenate([-np.geomspace(30, 1e-4, 400), np.geomspace(1e-4, 30, 400)])
        if np.isfinite(st["b1"]):
            logit = np.clip(st["b0"] + st["b1"] * xs, -50, 50)
            ax.plot(xs, 1 / (1 + np.exp(-logit)), color="k", lw=1.3,
                    label=f"logistic fit, boundary x = {st['loc']:+.3f}")
        ax.axvline(0, color="red", ls="--", lw=1.0, label="theory boundary x = 0")
        ax.axvspan(-BAND, BAND, color="grey", alpha=0.25, lw=0)
        finite = x[np.isfinite(x)]
        span = max(0.3, float(np.max(np.abs(finite))) * 1.2) if finite.size else 1.0
        ax.set_xscale("symlog", linthresh=0.1, linscale=1.5)
        ax.set_xlim(-min(span, 30), min(span, 30))
        ax.set_ylim(-0.12, 1.12)
        ax.set_yticks([0, 1], ["A", "B"])
        ax.set_xlabel(r"theory coordinate "
                      r"$x=\ln\frac{\kappa_B\Gamma_B^{q-2}}{\kappa_A\Gamma_A^{q-2}}$"
                      " (symlog, linear for |x| < 0.1)")
        ax.set_ylabel("measured winner")
        ax.set_title(f"agreement {C.pct(st['agree'])} (all), {C.pct(st['agree_far'])} "
                     f"(|x| >= {BAND})")
        ax.legend(loc="center right", framealpha=0.9)
    fig.suptitle("Which modality is learned first: simulation (points) vs. theory (x = 0)",
                  fontsize=12)
    fig.tight_layout()
    C.save(fig, path)


def section(stats, rows, configs, seconds, quick):
    lines = ["## Winner of the race (`benchmarks/winner_boundary.py`)", ""]
    g = grid(quick)
    total = len(rows)
    all_far = [r for r in rows if abs(r["x_theory"]) >= BAND]
    agree_far = np.mean([r["agree"] for r in all_far]) if all_far else float("nan")
    ok = all(s["agree_far"] >= TARGET for s in stats.values())
    Ts = [c.train.steps for c in configs]
    lines += [
        f"**Swept:** K = 2, joint mode. Modality A: beta_1, presence 1; modality B: presence "
        f"p_B in {{{', '.join(f'{p:g}' for p in g['presence'])}}}, and beta_2 chosen so that "
        f"xbar = q ln(beta_2/beta_1) + ln(p_B) takes {len(g['xbar'])} values from "
        f"{g['xbar'][0]:g} to {g['xbar'][-1]:g}; {g['seeds']} seeds per point (seeds from "
        f"`simcomp.sweep.derive_seed`), whose random initial alignments scatter each run's own "
        f"x around xbar. Noise sigma sqrt(d) = {NOISE_RATIO:g} beta in each modality, no "
        f"distractors. Learners: "
        + "; ".join(f"{lab} (beta_1 = {LEARNERS[lab][2]:g}, sigma_0 = {LEARNERS[lab][3]:g})"
                    for lab in stats) + ".",
        f"**Sizes:** {C.sizes_text(configs[0], init=False)}; horizon T = "
        f"1.5 x the race's predicted step of the faster modality + 10 (T from {min(Ts)} to "
        f"{max(Ts)} steps, capped at 4000).",
        f"**Runs:** {total} joint runs, {seconds:.0f} s.",
        "",
        "Measured winner = the modality learned first (beta Lambda >= rho). Predicted: B if "
        "x > 0. Also shown: the winner predicted by the full race formula (5.2, with the "
        "Euler lag) and by the reduced dynamics (5.4) run on each run's training patterns.",
        "",
    ]
    table = []
    for label, s in stats.items():
        table.append([
            label, s["runs"], f"{s['wins_A']} / {s['wins_B']}" + (f" / {s['no_winner']} none"
                                                                  if s["no_winner"] else ""),
            C.pct(s["agree"]), f"{C.pct(s['agree_far'])} ({s['far_runs'] - s['mis_far']}/"
                               f"{s['far_runs']})",
            f"{C.pct(s['agree_near'])} ({s['near_runs']} runs)", C.pct(s["race_agree"]),
            C.pct(s["reduced_agree"]), f"{s['loc']:+.4f}", f"{abs(s['width']):.4f}",
            C.verdict(s["agree_far"] >= TARGET),
        ])
    lines.append(C.md_table(
        ["learner", "runs", "A / B first", "agree (sign x), all", f"agree, |x| >= {BAND}",
         f"agree, |x| < {BAND}", "agree (race)", "agree (reduced dynamics)",
         "logistic boundary x0", "logistic width", f"target >= {TARGET:.0%}"], table))
    lines += [
        "",
        f"Overall, outside |x| < {BAND}: {C.pct(agree_far, 2)} of {len(all_far)} runs agree "
        f"(target >= {TARGET:.0%}: {C.verdict(ok)}). The logistic fit P(B first) = "
        f"1/(1 + exp(-(x - x0)/w)) is a plain-numpy Newton (IRLS) fit with a tiny ridge on the "
        f"slope; a width near 0 means the two outcomes are separated by a sharp boundary, and "
        f"then x0 is only located within the gap between the closest A-won and B-won runs.",
        "",
        C.fig_link(NAME, "winner vs x"),
        "",
        "Top: each run in the plane (rate term ln(kappa_B/kappa_A), initialisation term "
        "(q-2) ln(Gamma_B/Gamma_A)); the theory's boundary x = 0 is the anti-diagonal. Bottom: "
        "measured winner against x, with the logistic fit.",
    ]
    return "\n".join(lines)


def summary_rows(result):
    """Rows [measure, target, measured, met] for the run_all summary."""
    out = []
    for label, s in result["stats"].items():
        out.append([f"winner agreement outside |x| < {BAND}, {label}", f">= {TARGET:.0%}",
                    f"{C.pct(s['agree_far'], 1)} of {s['far_runs']} runs (logistic boundary "
                    f"x0 = {s['loc']:+.3f})", s["agree_far"] >= TARGET])
    return out


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    timer = C.Timer()
    rows, configs = measure(args.quick, args.workers)
    stats = analyse(rows)
    paths = C.output_paths(args.quick, NAME)
    C.write_csv(NAME, rows, path=paths["csv"])
    figure(rows, stats, paths["fig_dir"] / f"{NAME}.png")
    C.update_section(NAME, section(stats, rows, configs, timer.seconds, args.quick), paths["doc"])
    for label, s in stats.items():
        print(f"{NAME}: {label}: {s['runs']} runs, agreement {C.pct(s['agree'])} overall, "
              f"{C.pct(s['agree_far'])} with |x| >= {BAND} ({s['far_runs']} runs), logistic "
              f"boundary x0 = {s['loc']:+.4f} (width {abs(s['width']):.4f})")
    print(f"{NAME}: wrote {paths['csv']}, {paths['fig_dir'] / (NAME + '.png')}, {paths['doc']} "
          f"({timer.seconds:.0f} s)")
    return {"stats": stats, "rows": rows}


if __name__ == "__main__":
    main()
