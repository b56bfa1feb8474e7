"""The mitigation lab: every training method on the same problems, measured and predicted.

    python benchmarks/mitigations.py [--quick] [--workers W]

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

from simcomp.config import Config  # noqa: E402
from simcomp.config_file import build_config  # noqa: E402

NAME = "mitigations"
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "mitigations.md"

# The regimes: name -> (description, overrides). A is the strong modality everywhere.
def _mod(r, beta, presence, noise):
    return [f"data.modality.{r}.beta={beta}", f"data.modality.{r}.presence={presence}",
            f"data.modality.{r}.noise={noise}"]


REGIMES = {
    "competition": ("A beta 3, presence 0.85; B beta 1, presence 1; noise 0.05",
                    _mod(0, 3.0, 0.85, 0.05) + _mod(1, 1.0, 1.0, 0.05)),
    "weak_better": ("A beta 3, presence 0.6 (absent from 40 % of samples); B beta 1, presence 1; "
                    "noise 0.05: B alone is by far the better network",
                    _mod(0, 3.0, 0.6, 0.05) + _mod(1, 1.0, 1.0, 0.05)),
    "three": ("K = 3: A beta 3, presence 0.85; B beta 1, presence 1; C beta 1.5, presence 0.7; "
              "noise 0.05",
              _mod(0, 3.0, 0.85, 0.05) + _mod(1, 1.0, 1.0, 0.05) + _mod(2, 1.5, 0.7, 0.05)),
    "high_noise": ("as competition with noise 0.15 on both (sigma sqrt(d) = 1.7)",
                   _mod(0, 3.0, 0.85, 0.15) + _mod(1, 1.0, 1.0, 0.15)),
}
LOW_NOISE = ("low_noise", "as competition without input noise (the theory's exact setting)",
             _mod(0, 3.0, 0.85, 0.0) + _mod(1, 1.0, 1.0, 0.0))

# (method, label, overrides(K), published default?)
def _others(K, value):
    return "[" + ", ".join(["1.0"] + [str(value)] * (K - 1)) + "]"


def _first(K, value):
    return "[" + ", ".join([str(value)] + ["0.0"] * (K - 1)) + "]"


SETTINGS = [
    ("none", "", lambda K: [], True),
    ("lr_scale", "c = 2 (B, C)", lambda K: [f"method.lr_scale={_others(K, 2.0)}"], False),
    ("lr_scale", "c = 4 (B, C)", lambda K: [f"method.lr_scale={_others(K, 4.0)}"], False),
    ("lr_scale", "c = 8 (B, C)", lambda K: [f"method.lr_scale={_others(K, 8.0)}"], False),
    ("ogm", "alpha 0.1", lambda K: ["method.alpha=0.1"], True),
    ("ogm", "alpha 0.3", lambda K: ["method.alpha=0.3"], False),
    ("ogm", "alpha 0.8", lambda K: ["method.alpha=0.8"], False),
    ("ogm_ge", "alpha 0.1", lambda K: ["method.alpha=0.1"], True),
    ("ogm_ge", "alpha 0.3", lambda K: ["method.alpha=0.3"], False),
    ("ogm_ge", "alpha 0.8", lambda K: ["method.alpha=0.8"], False),
    ("agm", "alpha 1", lambda K: ["method.alpha=1.0"], True),
    ("agm", "alpha 0.3", lambda K: ["method.alpha=0.3"], False),
    ("agm", "alpha 3", lambda K: ["method.alpha=3.0"], False),
    ("dropout", "d_A 0.3", lambda K: [f"method.drop={_first(K, 0.3)}"], False),
    ("dropout", "d_A 0.5", lambda K: [f"method.drop={_first(K, 0.5)}"], False),
    ("dropout", "d_A 0.7", lambda K: [f"method.drop={_first(K, 0.7)}"], False),
    ("aux", "lambda 1", lambda K: ["method.aux_weight=1.0"], True),
    ("aux", "lambda 0.3", lambda K: ["method.aux_weight=0.3"], False),
    ("aux", "lambda 3", lambda K: ["method.aux_weight=3.0"], False),
    ("alternating", "mix 1", lambda K: [], True),
    ("mmpareto", "", lambda K: [], True),
    ("umt", "lambda 10", lambda K: ["method.distill_weight=10.0"], True),
    ("umt", "lambda 0.3", lambda K: ["method.distill_weight=0.3"], False),
    ("umt", "lambda 1", lambda K: ["method.distill_weight=1.0"], False),
    ("ume", "", lambda K: [], True),
]
DETERMINISTIC = ("none", "lr_scale", "ogm", "agm", "aux", "alternating", "mmpareto", "umt", "ume")
COST_TARGET = {"mmpareto": 2.2, "umt": 1.6}  # others 1.3
HORIZONS = (60, 120, 180, 240, 300)
# A learned alignment keeps growing slowly after it passes the threshold (O(10) by T here);
# beyond this the run is counted as blown up (umt's published weight does this).
UNSTABLE_ALIGNMENT = 1e3
PLANE_P, PLANE_B = (0.2, 1.0), (1.0, 4.0)  # the co-learning plane: presence_A, beta_A


def grid(quick: bool) -> dict:
    if quick:
        return dict(dim=16, n_train=128, n_test=256, width=8, steps=120, seeds=2,
                    settings=[s for s in SETTINGS if s[3]], regimes=["competition", "three"],
                    plane=3, boundary=4, cost_repeats=1)
    return dict(dim=128, n_train=512, n_test=1024, width=16, steps=300, seeds=10,
                settings=SETTINGS, regimes=list(REGIMES), plane=6, boundary=12, cost_repeats=7)


def make_config(g: dict, regime_sets: list, method: str, sets: list, seed: int,
                mode: str = "compare", extra: tuple = ()) -> Config:
    K = 1 + max(int(s.split(".")[2]) for s in regime_sets if s.startswith("data.modality."))
    base = [f"data.modality.{r}.dim={g['dim']}" for r in range(K)]
    if K == 3:
        base.append("data.modality.2.name=C")
    return build_config(None, base + regime_sets + [
        f"data.n_train={g['n_train']}", f"data.n_test={g['n_test']}", f"model.width={g['width']}",
        f"train.steps={g['steps']}", f"train.trace_every={g['steps']}", "train.threads=1",
        f"train.mode={mode}", f"seed={seed}", f"method.name={method}"] + sets + list(extra))


def _k(regime_sets):
    return 3 if any(s.startswith("data.modality.2.") for s in regime_sets) else 2


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

    pop = ["data.population=true"] + _mod(0, 3.0, 0.85, 0.0) + _mod(1, 1.0, 1.0, 0.0)
    worst, alt, ume_exact = 0.0, 0.0, True
    for method in DETERMINISTIC:
        for learner in ("symmetric", "class_banks"):
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
    return dict(population=worst, alternating=alt, ume=ume_exact)


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
                regime = _mod(0, round(b, 4), round(p, 4), 0.05) + _mod(1, 1.0, 1.0, 0.05)
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
                regime = _mod(0, round(b, 4), round(p, 4), 0.05) + _mod(1, 1.0, 1.0, 0.05)
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


# --------------------------------------------------------------------------- the page


def _load() -> float:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def _pc(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def _f(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def _step(x):
    return "never" if x is None else f"{x:.0f}"


def write_page(g, table, low, cost, exact, best, agree, seconds, quick, doc_path, fig_dir):
    lines = [
        "# The mitigation lab: which fix works, when, and why",
        "",
        "Generated by `python benchmarks/mitigations.py` "
        f"({'--quick: tiny problems, not a measurement; ' if quick else ''}"
        f"{seconds / 60:.1f} minutes). Every number on this page comes from that run; "
        "docs/methods.md defines the methods and derives their reduced dynamics.",
        "",
        f"Sizes: d = {g['dim']} per modality, n_train = {g['n_train']}, n_test = {g['n_test']}, "
        f"width m = {g['width']}, T = {g['steps']} steps at lr 1, symmetric learner, q = 3; "
        f"{g['seeds']} seeds per cell, compare mode (the joint run trained with the method, the "
        "uni-modal runs plainly, and the ensemble of the uni-modal networks).",
        "",
        "Columns: *co-learned*: fraction of seeds in which every modality is learned by T in "
        "the joint network (ume: in the uni-modal networks it sums); *B learned*: median "
        "learned step of B, measured / predicted by the method's reduced dynamics (never: "
        "not by T, median over seeds); *step err*: median |predicted / measured - 1| of all "
        "learned steps; *joint err*: mean test error of the method's predictor; *gap best*: "
        "mean of joint err minus the best uni-modal network's; *gap ens*: mean of joint err "
        "minus the uni-modal ensemble's; *cost*: seconds per step of the joint run relative to "
        "`none` (competition regime, one thread, best of repeats); *unstable*: seeds whose "
        f"joint run did not end ok or whose leading alignment exceeded {UNSTABLE_ALIGNMENT:g} "
        "(never counted as co-learned). (*) marks a published default.",
        "",
    ]
    for regime in g["regimes"]:
        desc = REGIMES[regime][0]
        lines += [f"## Regime `{regime}`: {desc}", ""]
        rows = []
        for (method, label, _, default), st in table[regime]:
            rows.append([f"`{method}`", label + (" (*)" if default else ""),
                         f"{st['co_learned']:.0%}",
                         f"{_step(st['loser_measured'])} / {_step(st['loser_predicted'])}",
                         _f(st["step_error"] * 100 if st["step_error"] is not None else None, ".1f")
                         + ("%" if st["step_error"] is not None else ""),
                         _f(st["joint_error"]), _f(st["gap_best"], "+.3f"),
                         _f(st["gap_ensemble"], "+.3f"),
                         _f(cost.get(method, 0.0 if method == "ume" else None), ".2f")
                         + (" (+ teachers)" if method == "umt" else "")
                         + (" (no joint run)" if method == "ume" else ""),
                         f"{st['not_ok']}" if st["not_ok"] else ""])
        lines.append(C.md_table(["method", "setting", "co-learned", "B learned (meas / pred)",
                                 "step err", "joint err", "gap best", "gap ens", "cost",
                                 "unstable"], rows))
        lines.append("")
    # targets
    det = [(s, st) for s, st in low if s[0] in DETERMINISTIC]
    errs = [e for _, st in det for e in st["errors"]]
    right = sum(st["right"] for _, st in det)
    cells = sum(st["cells"] for _, st in det)
    none_err = [e for s, st in det if s[0] == "none" for e in st["errors"]]
    per_method = {}
    for s, st in det:
        per_method.setdefault(s[0], []).extend(st["errors"])
    med_none = float(np.median(none_err)) if none_err else None
    med_all = float(np.median(errs)) if errs else None
    worst_method = max(per_method, key=lambda m: np.median(per_method[m]) if per_method[m] else 0)
    worst_med = float(np.median(per_method[worst_method])) if per_method[worst_method] else None
    target_rows = [
        ["population mode = each deterministic method's reduced dynamics",
         f"max relative error {exact['population']:.1e} (9 methods x 2 learners)", "<= 1e-10",
         C.verdict(exact["population"] <= 1e-10)],
        ["alternating = the compare-mode uni-modal runs",
         f"max relative difference {exact['alternating']:.1e}", "<= 1e-12",
         C.verdict(exact["alternating"] <= 1e-12)],
        ["ume = the sum of the uni-modal networks", "equal" if exact["ume"] else "NOT equal",
         "exact", C.verdict(exact["ume"])],
        ["learned steps under each deterministic method, low-noise regime",
         f"median error {_pc(med_all)} over "
         f"{len(errs)} learned steps (none alone: {_pc(med_none)}; "
         f"worst method {worst_method}: {_pc(worst_med)})",
         "<= 3%", C.verdict(worst_med is not None and worst_med <= 0.03)],
        ["co-learning prediction, low-noise regime, (run, T) cells",
         f"{right}/{cells} = {right / max(cells, 1):.1%} (T in {', '.join(map(str, HORIZONS))})",
         ">= 95%", C.verdict(cells > 0 and right / cells >= 0.95)],
        ["co-learning region: measured vs theory's boundary",
         f"{agree:.0%} of the plane's points agree", "(report)", ""],
    ]
    for method, ratio in sorted(cost.items(), key=lambda kv: kv[1]):
        if method == "none":
            continue
        limit = COST_TARGET.get(method, 1.3)
        target_rows.append([f"cost per step, `{method}`", f"{ratio:.2f}x none"
                            + (" (teachers extra)" if method == "umt" else ""),
                            f"<= {limit}x", C.verdict(ratio <= limit)])
    lines += ["## Targets", "", C.md_table(["target", "measured", "goal", "verdict"], target_rows),
              "", "Low-noise regime: " + LOW_NOISE[1] + f", the same {g['seeds']} seeds and the "
              "deterministic methods' settings above; learned steps compared where both the "
              "simulation and the method's reduced dynamics learn the modality by T. "
              "The per-step speed of `none` is measured by benchmarks/speed.py "
              "(docs/performance.md); kernels are not changed here. Costs are the best of "
              f"{g['cost_repeats']} timed runs per method, in interleaved rounds; the "
              f"1-minute load average when the page was written was {_load():.1f} on "
              f"{_cores()} cores (above the core count the machine was shared and the "
              "ratios are noisy).", "",
              "Checked by the test suite rather than here: every method's hand-written "
              "gradients against central finite differences (tests/test_rules.py, "
              "tests/test_methods_reference.py), the compiled rules against the plain-NumPy "
              "reference trainer for both learners and K = 2, 3, and dropout / ogm_ge "
              "averaged over fixed random streams against their expected-update dynamics "
              "(tests/test_methods_join.py). GD against mini-batch SGD "
              "(`train.batch_size`) on the competition regime: docs/sgd.md "
              "(`benchmarks/sgd_vs_gd.py`).", ""]
    lines += verdict_text(table, g, best)
    lines += ["## Figures", "",
              "![trajectories](figures/mitigations_trajectories.png)", "",
              "Every method on seed 0 of the competition regime: beta_r times the leading "
              "alignment of A (red) and B (blue) in the joint run, measured (solid) and by the "
              "method's reduced dynamics (dashed); the grey line is the learn threshold.", "",
              "![co-learning region](figures/mitigations_region.png)", "",
              f"The (presence_A, beta_A) plane (B: beta 1, presence 1; noise 0.05; seed 0) for "
              f"`none` and the two methods that co-learned most often in the competition "
              f"regime ({', '.join(b[0] for b in best)}): o both modalities learned by T in the "
              f"joint run, x B not; the black line is where the method's reduced dynamics "
              f"starts to learn B by T. Measured and predicted agree on {agree:.0%} of the "
              "points.", ""]
    text = "\n".join(lines) + "\n"
    from simcomp.outputs import write_text_atomic

    write_text_atomic(doc_path, text)


def verdict_text(table, g, best):
    """Which methods help and why, from the competition regime's numbers."""
    comp = table.get("competition") or next(iter(table.values()))
    by_method = {}
    for (method, label, _, default), st in comp:
        by_method.setdefault(method, []).append((label, default, st))
    none = by_method["none"][0][2]

    def best_of(method):
        return max(by_method[method], key=lambda x: (x[2]["co_learned"],
                                                      -(x[2]["joint_error"] or 1), x[1]))

    def default_of(method):
        return next((x for x in by_method[method] if x[1]), by_method[method][0])

    lines = ["## Which fixes help, and why (in terms of the race)", "",
             f"Plain training co-learns in {none['co_learned']:.0%} of the seeds of the "
             f"competition regime: A's leading neuron wins the race, the fused loss is then "
             f"nearly fitted and B's drive (its share of sigmoid(-y f)) collapses before B's "
             f"alignment takes off (trained alone, B is learned at step "
             f"{_step(none['loser_alone'])}, median over seeds). A fix helps when it keeps a "
             "drive on B after A has won, or slows A down enough that B takes off first.", ""]
    for method in by_method:
        if method == "none":
            continue
        lab, default, st = default_of(method)
        blab, _, bst = best_of(method)
        why = {
            "lr_scale": "It multiplies B's rate kappa_B by c: the race is shifted, but after A is "
                        "learned B's drive still collapses, so only a large enough c gets B over "
                        "the threshold by T.",
            "ogm": "It scales the leader's gradient by 1 - tanh(alpha rho) once A's score exceeds "
                   "B's: this slows A but leaves B's drive, which is what vanishes, untouched.",
            "ogm_ge": "It is ogm plus gradient noise; its expected update is ogm's, so it "
                      "inherits ogm's verdict.",
            "agm": "It rescales each modality's gradient by how far its loss share is from the "
                   "running mean; after A fits, B's scale rises only by exp(alpha x the ratio "
                   "gap), which does not restore B's drive.",
            "dropout": "Where A is dropped the fused loss is B's alone, so B keeps a drive of "
                       "about d_A times its uni-modal drive after A has won.",
            "aux": "B's own loss keeps B's drive at about lambda p_B / 2 whatever A does, so B "
                   "is learned near its uni-modal time, sped up by the fused drive it shares "
                   "before A wins.",
            "alternating": "With a fixed head every encoder follows its uni-modal trajectory: "
                           "it is the uni-modal ensemble trained in one run and co-learns "
                           "exactly when every modality is learned alone by T.",
            "mmpareto": "For the symmetric learner in population mode it reduces to aux with "
                        "weights 1.5 (the two gradients agree in direction): B keeps its own "
                        "drive, and the 1.5 x 2 scale speeds everything up.",
            "umt": "The distillation pulls B's features towards its uni-modal teacher's, which "
                   "has learned B: the pull is the drive B lacks. The published weight 10 is "
                   "unstable here (stable only for lambda < B m / (eta pi beta^2)).",
            "ume": "It trains no joint network: the sum of the uni-modal networks holds every "
                   "modality that is learned alone.",
        }[method]
        lines.append(
            f"- `{method}`: at {lab or 'its default'}{' (published default)' if default else ''} "
            f"co-learned {st['co_learned']:.0%}, joint err {_f(st['joint_error'])}; best of its "
            f"grid ({blab or 'default'}) {bst['co_learned']:.0%}, {_f(bst['joint_error'])}. "
            f"**{'Helps' if bst['co_learned'] > none['co_learned'] + 0.2 else 'Does not help'}.** "
            f"{why}")
    lines.append("")
    return lines


# --------------------------------------------------------------------------- main


def main(argv=None):
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
        K = _k(sets_r)
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
        ("population mode vs the methods' reduced dynamics", "<= 1e-10",
         f"{exact['population']:.1e}", exact["population"] <= 1e-10),
        ("alternating vs uni-modal runs", "<= 1e-12", f"{exact['alternating']:.1e}",
         exact["alternating"] <= 1e-12),
        ("cost per step, worst of the 1.3x methods", "<= 1.3x none", f"{worst:.2f}x",
         worst <= 1.3),
    ]


if __name__ == "__main__":
    C.script_main(main)
