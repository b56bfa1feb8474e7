"""The mitigation lab: every training method on the same problems, measured and predicted.

    python benchmarks/mitigations.py [--quick] [--workers W] [--summary-only]

Writes docs/mitigations.md (every number generated here), the CSV
benchmarks/results/mitigations.csv and two figures in docs/figures/:
``mitigations_trajectories.png`` (leading alignments of every method on one
seed, with the method's reduced dynamics) and ``mitigations_region.png``
(the co-learning region in the (presence_A, beta_A) plane for plain training
and the two best methods, with the theory's boundary).

Regimes are explicit configs (not the embedded default): A strong and
sometimes absent, B weak and always present; K = 3 adds C.  Each method runs
at its published default and across a small grid of its main
hyper-parameter, with SEEDS seeds per cell, in compare mode (the uni-modal
runs and their ensemble beside the joint run).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from mitigations_page import exactness_count, write_page  # noqa: E402
from mitigations_setup import (  # noqa: E402
    COST_TARGET,
    DETERMINISTIC,
    HORIZONS,
    LOW_NOISE,
    PLANE_B,
    PLANE_P,
    REGIMES,
    SETTINGS,
    UNSTABLE_ALIGNMENT,
    grid,
    make_config,
    modality_count,
    modality_sets,
)

NAME = "mitigations"
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "mitigations.md"

# The regimes: name -> (description, overrides). A is the strong modality everywhere.
# --------------------------------------------------------------------------- measures


def _names(K):
    return ["A", "B", "C"][:K]


def _measured_steps(row, method, K):
    cols = [f"learned_step_alone_{m}" if method == "ume" else f"learned_step_joint_{m}"
            for m in _names(K)]
    return [row[c] for c in cols]


def _predicted_steps(row, K):
    return [row[f"method_predicted_learned_step_joint_{m}"] for m in _names(K)]


def _by(step, T):
    return step is not None and step <= T


def unstable(row, K) -> bool:
    """A joint run that did not end ok or whose alignments blew up (learned ones stay O(10))."""
    if row["status"] != "ok":
        return True
    finals = [row[f"final_leading_alignment_joint_{m}"] for m in _names(K)]
    return any(a is None or abs(a) > UNSTABLE_ALIGNMENT for a in finals)


def cell_stats(rows, method, K, steps):
    bad = [unstable(r, K) for r in rows]
    co = [all(s is not None for s in _measured_steps(r, method, K)) and not b
          for r, b in zip(rows, bad)]
    errors, right, cells, loser_m, loser_p, loser_a = [], 0, 0, [], [], []
    for r in rows:
        meas, pred = _measured_steps(r, method, K), _predicted_steps(r, K)
        for m, p in zip(meas, pred):
            if m is not None and p is not None and m > 0:
                errors.append(abs(p - m) / m)
        for T in HORIZONS if steps >= max(HORIZONS) else (steps,):
            cells += 1
            right += all(_by(m, T) == _by(p, T) for m, p in zip(meas, pred))
        loser_m.append(meas[1])
        loser_p.append(pred[1])
        loser_a.append(r["learned_step_alone_B"])
    err = [r["method_test_error_joint"] for r in rows]
    err = [e for e in err if e is not None]
    gap_best = [r["method_test_error_joint"] - r["best_unimodal_test_error"] for r in rows
                if r["method_test_error_joint"] is not None
                and r["best_unimodal_test_error"] is not None]
    gap_ens = [r["gap_to_ensemble"] for r in rows if r["gap_to_ensemble"] is not None]
    diverged = sum(bad)

    def med(values):
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else None

    return dict(seeds=len(rows), co_learned=float(np.mean(co)), step_error=med(errors),
                co_right=right / cells if cells else None, cells=cells, n_errors=len(errors),
                errors=errors, right=right,
                loser_measured=med(loser_m), loser_predicted=med(loser_p),
                loser_never=sum(s is None for s in loser_m), loser_alone=med(loser_a),
                joint_error=float(np.mean(err)) if err else None,
                gap_best=float(np.mean(gap_best)) if gap_best else None,
                gap_ensemble=float(np.mean(gap_ens)) if gap_ens else None, not_ok=diverged)


def measure_cost(g: dict, repeats: int) -> dict:
    """Seconds per GD step of each method's joint run relative to none (one thread, warm).

    The methods are timed in interleaved rounds (every method once per round, the
    best of the rounds kept), so that a change in the machine's load between two
    methods does not show as a cost.
    """
    from simcomp.data import make_experiment_data
    from simcomp.experiment import _teacher_units, run_rule
    from simcomp.train import train_run

    regime = REGIMES["competition"][1]
    jobs = {}
    for method in dict.fromkeys(s[0] for s in SETTINGS):
        if method == "ume":
            continue
        cfg = make_config(g, regime, method, [], 0, mode="joint",
                          extra=("method.distill_weight=1.0",) if method == "umt" else ())
        data = make_experiment_data(cfg)
        units = None
        if method == "umt":
            teachers = {f"unimodal-{m}": train_run(cfg, data, f"unimodal-{m}", [r], record=False)
                        for r, m in enumerate(cfg.names)}
            units = _teacher_units(cfg, data, [0, 1], teachers)
        jobs[method] = (cfg, data, units)
    best = {method: np.inf for method in jobs}
    for round_ in range(repeats + 1):  # round 0 compiles (or loads the cache): not kept
        for method, (cfg, data, units) in jobs.items():
            rule = run_rule(cfg, "joint", [0, 1], units)
            t0 = time.perf_counter()
            train_run(cfg, data, "joint", [0, 1], record=False, rule=rule)
            if round_:
                best[method] = min(best[method], (time.perf_counter() - t0) / cfg.train.steps)
    return {m: s / best["none"] for m, s in best.items()}


def exactness(g: dict) -> dict:
    """Population mode against the methods' reduced dynamics; alternating vs uni-modal; ume."""
    from simcomp.experiment import run_experiment

    pop = ["data.population=true"] + modality_sets(0, 3.0, 0.85, 0.0) + modality_sets(1, 1.0, 1.0, 0.0)
    worst, alt, ume_exact = 0.0, 0.0, True
    learners = ("symmetric", "class_banks")
    for method in DETERMINISTIC:
        for learner in learners:
            extra = {"umt": ("method.distill_weight=1.0",)}.get(method, ())
            cfg = make_config(dict(g, steps=min(g["steps"], 150)), pop, method, [], 0,
                              extra=extra + (f"model.learner={learner}", "train.trace_every=10"))
            exp = run_experiment(cfg)
            dyn = exp.outcomes["joint"].prediction.dynamics
            runs = exp.runs[1:] if method == "ume" else exp.runs[:1]
            got = np.concatenate([r.trace.arrays()["alignment"] for r in runs], axis=1)
            got = got if learner == "class_banks" else got[:, :, None, :]
            scale = np.abs(dyn.alignment).max()
            worst = max(worst, float(np.max(np.abs(got - dyn.alignment)) / scale))
            if method == "alternating":
                j = exp.runs[0].trace.arrays()["alignment"]
                for k in range(cfg.K):
                    a = exp.runs[1 + k].trace.arrays()["alignment"][:, 0]
                    alt = max(alt, float(np.max(np.abs(j[:, k] - a)) / np.abs(a).max()))
            if method == "ume":
                ume_exact &= exp.outcomes["joint"].test_error == exp.ensemble.test_error
    return dict(population=worst, alternating=alt, ume=ume_exact, methods=list(DETERMINISTIC),
                learners=list(learners))


# --------------------------------------------------------------------------- figures


def trajectories_figure(g, path):
    from simcomp.experiment import run_experiment

    plt = C.plt()
    methods = [s for s in SETTINGS if s[3]]
    methods.insert(1, next(s for s in SETTINGS if s[0] == "lr_scale"))
    cols = 4
    rows_n = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.4 * cols, 2.6 * rows_n), sharex=True)
    regime = REGIMES["competition"][1]
    for ax, (method, label, sets, _) in zip(axes.ravel(), methods):
        extra = ("train.trace_every=5",)
        cfg = make_config(g, regime, method, sets(2), 0, extra=extra)
        exp = run_experiment(cfg)
        pred = exp.outcomes["joint"].prediction
        runs = exp.runs[1:] if method == "ume" else exp.runs[:1]
        for k, (name, color) in enumerate(zip("AB", ("tab:red", "tab:blue"))):
            run = runs[k] if method == "ume" else runs[0]
            col = 0 if method == "ume" else k
            tr = run.trace.arrays()
            ax.plot(tr["steps"], cfg.data.modality[k].beta * tr["leading_alignment"][:, col],
                    color=color, label=f"{name} measured")
            ax.plot(pred.dynamics.steps, cfg.data.modality[k].beta
                    * pred.dynamics.leading_alignment[:, k], color=color, ls="--", lw=1,
                    label=f"{name} reduced dynamics")
        ax.axhline(cfg.model.threshold, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 30)
        ax.set_title(f"{method} {label}".strip())
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    axes.ravel()[0].legend(loc="lower right")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    fig.suptitle("beta_r x leading alignment of the joint run (ume: the uni-modal runs), "
                 "competition regime, seed 0; grey: the learn threshold")
    fig.tight_layout()
    C.save(fig, path)


def region(g, methods, workers):
    """Measured co-learning (joint runs, one seed) and the theory's boundary in the plane."""
    from simcomp.data import make_experiment_data
    from simcomp.experiment import predict_run_method

    ps = np.linspace(PLANE_P[0], PLANE_P[1], g["plane"])
    bs = np.linspace(PLANE_B[0], PLANE_B[1], g["plane"])
    configs, keys = [], []
    for label, method, sets in methods:
        for p in ps:
            for b in bs:
                regime = modality_sets(0, round(b, 4), round(p, 4), 0.05) + modality_sets(1, 1.0, 1.0, 0.05)
                configs.append(make_config(g, regime, method, sets, 0, mode="joint"))
                keys.append((label, p, b))
    rows = C.run_configs(configs, workers, label="co-learning plane")
    measured = {key: bool(r["co_learned_joint"]) for key, r in zip(keys, rows)}
    pf = np.linspace(PLANE_P[0], PLANE_P[1], g["boundary"])
    bf = np.linspace(PLANE_B[0], PLANE_B[1], g["boundary"])
    predicted = {}
    for label, method, sets in methods:
        Z = np.zeros((len(bf), len(pf)))
        for i, b in enumerate(bf):
            for j, p in enumerate(pf):
                regime = modality_sets(0, round(b, 4), round(p, 4), 0.05) + modality_sets(1, 1.0, 1.0, 0.05)
                cfg = make_config(g, regime, method, sets, 0, mode="joint")
                data = make_experiment_data(cfg)
                from simcomp.trace import geometry

                a0 = geometry(data.init, data.dictionaries)[0]
                Z[i, j] = predict_run_method(cfg, data, [0, 1], a0).co_learned
        predicted[label] = Z
    agree = np.mean([measured[k] == _predicted_at(predicted[k[0]], pf, bf, k[1], k[2])
                     for k in measured])
    return ps, bs, pf, bf, measured, predicted, float(agree)


def _predicted_at(Z, pf, bf, p, b):
    return bool(Z[np.argmin(np.abs(bf - b)), np.argmin(np.abs(pf - p))])


def region_figure(methods, ps, bs, pf, bf, measured, predicted, path):
    plt = C.plt()
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.8), sharey=True)
    for ax, (label, _, _) in zip(np.atleast_1d(axes), methods):
        for p in ps:
            for b in bs:
                co = measured[(label, p, b)]
                ax.scatter(p, b, marker="o" if co else "x", color="tab:green" if co else "tab:red",
                           s=40)
        if 0 < predicted[label].mean() < 1:
            ax.contour(pf, bf, predicted[label], levels=[0.5], colors="k")
        ax.set_title(f"{label}\n(o: both learned by T, x: B not; line: theory)")
        ax.set_xlabel("presence_A")
    np.atleast_1d(axes)[0].set_ylabel("beta_A")
    fig.tight_layout()
    C.save(fig, path)


# --------------------------------------------------------------------------- main


def summary_only(argv) -> dict:
    """``--summary-only``: just what the mitigation rows of docs/results.md's summary need (the
    population check and the costs, minutes instead of the lab's grid), written into those
    rows (benchmarks/run_all.py's ``patch_summary``); docs/mitigations.md, the CSV and the
    figures are left as their last full run wrote them."""
    import run_all

    args = C.parse_args(__doc__, argv)
    g = grid(args.quick)
    timer = C.Timer()
    result = {"cost": measure_cost(g, g["cost_repeats"]), "exact": exactness(g)}
    result["seconds"] = timer.seconds
    doc = C.output_paths(args.quick, "summary")["doc"]
    old = run_all.read_section(doc, "summary")
    new = None if old is None else run_all.patch_summary(
        old, [NAME], {NAME: result}, {NAME: timer.seconds}, {}, args.quick,
        command="python benchmarks/mitigations.py --summary-only",
        scope="the population check and the costs only; docs/mitigations.md is its last full "
              "run's")
    if new is None:
        print(f"no summary table in {doc}: run benchmarks/run_all.py to write one")
    else:
        C.update_section("summary", new, doc)
        print(f"{NAME}: summary rows replaced in {doc} ({timer.seconds:.0f} s)")
    for what, target, measured, met in summary_rows(result):
        print(f"  {what}: {measured} (target {target}){'' if met else '  [MISSED]'}")
    return result


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--summary-only" in argv:
        argv.remove("--summary-only")
        return summary_only(argv)
    args = C.parse_args(__doc__, argv)
    g = grid(args.quick)
    paths = C.output_paths(args.quick, NAME)
    fig_dir = paths["fig_dir"]
    doc_path = DOC if not args.quick else paths["doc"].with_name("mitigations.md")
    workers = args.workers or C.workers_default()
    timer = C.Timer()
    table, csv_rows, low = {}, [], []
    for regime in g["regimes"] + ["low_noise"]:
        sets_r = LOW_NOISE[2] if regime == "low_noise" else REGIMES[regime][1]
        K = modality_count(sets_r)
        settings = [s for s in g["settings"] if regime != "low_noise" or s[0] in DETERMINISTIC]
        configs, where = [], []
        for i, (method, label, sets, default) in enumerate(settings):
            for seed in range(g["seeds"]):
                configs.append(make_config(g, sets_r, method, sets(K), seed))
                where.append(i)
        rows = C.run_configs(configs, workers, label=f"{regime}")
        cells = []
        for i, setting in enumerate(settings):
            mine = [r for r, w in zip(rows, where) if w == i]
            st = cell_stats(mine, setting[0], K, g["steps"])
            cells.append((setting, st))
            csv_rows.append({"regime": regime, "method": setting[0], "setting": setting[1],
                             "published_default": setting[3],
                             **{k: v for k, v in st.items() if k != "errors"}})
        if regime == "low_noise":
            low = cells
        else:
            table[regime] = cells
    cost = measure_cost(g, g["cost_repeats"])
    exact = exactness(g)
    # the two methods that co-learn most often in the competition regime (then lowest error)
    comp = table["competition"]
    ranked = sorted((c for c in comp if c[0][0] != "none"),
                    key=lambda c: (-c[1]["co_learned"], c[1]["joint_error"] or 1.0,
                                   not c[0][3], cost.get(c[0][0], 9.0)))
    best, seen = [], set()
    for (method, label, sets, _), _st in ranked:
        if method not in seen and method not in ("ume", "alternating"):
            best.append((f"{method} {label}".strip(), method, sets(2)))
            seen.add(method)
        if len(best) == 2:
            break
    methods = [("none", "none", [])] + best
    ps, bs, pf, bf, measured, predicted, agree = region(g, methods, workers)
    region_figure(methods, ps, bs, pf, bf, measured, predicted, fig_dir / "mitigations_region.png")
    trajectories_figure(g, fig_dir / "mitigations_trajectories.png")
    C.write_csv(NAME, csv_rows, path=paths["csv"])
    write_page(g, table, low, cost, exact, best, agree, timer.seconds, args.quick, doc_path,
               fig_dir)
    print(f"{NAME}: {timer.seconds:.0f} s; page {doc_path}")
    return {"table": {k: [(s[0], s[1], st["co_learned"]) for s, st in v] for k, v in table.items()},
            "cost": cost, "exact": exact, "agree": agree, "seconds": timer.seconds,
            "low": [(s[0], s[1], st["step_error"], st["co_right"]) for s, st in low]}


def summary_rows(result):
    exact, cost = result["exact"], result["cost"]
    worst = max((r for m, r in cost.items() if m not in COST_TARGET and m != "none"), default=1.0)
    return [
        (f"population mode vs the methods' reduced dynamics ({exactness_count(exact)})",
         "<= 1e-10", f"{exact['population']:.1e}", exact["population"] <= 1e-10),
        ("alternating vs uni-modal runs", "<= 1e-12", f"{exact['alternating']:.1e}",
         exact["alternating"] <= 1e-12),
        ("cost per step, worst of the 1.3x methods", "<= 1.3x none", f"{worst:.2f}x",
         worst <= 1.3),
    ]


if __name__ == "__main__":
    C.script_main(main)
