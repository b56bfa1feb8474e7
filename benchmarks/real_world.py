"""The toy calibrated on seven real data sets: predicted gains of the balancing methods.

For every row of ``benchmarks/data/real_baselines.csv`` (BalanceBenchmark's
uni-modal and joint baselines; CMU-MOSEI with 2 and with 7 classes) this
runs ``simcomp.calibrate`` with the benchmark's published method settings
where simcomp has the method or an equivalent (:data:`BENCHMARK`), and
writes

* ``benchmarks/results/real_world.json``: every calibration's JSON object;
* ``benchmarks/results/real_world.csv``: one row per data set, method and setting;
* ``docs/figures/real_world.png``: the potential against the measured
  accuracies, and the predicted gains per data set and method;
* ``docs/real-world.md``: the whole page, generated (no number is typed);
* the worked example of ``docs/calibration.md`` (CREMA-D), between its markers.

Run:  python benchmarks/real_world.py [--simulate N] [--quick]

``--quick`` (the smoke test) calibrates two data sets with two methods into a
scratch directory (``$SIMCOMP_BENCH_SCRATCH`` or a new temporary one): the
repository's docs are not touched.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import simcomp  # noqa: E402
from simcomp.calibrate.methods import METHOD_PARAMS  # noqa: E402
from simcomp.outputs import write_text_atomic  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "real_baselines.csv"
RESULTS = ROOT / "benchmarks" / "results"
FIG = ROOT / "docs" / "figures" / "real_world.png"
PAGE = ROOT / "docs" / "real-world.md"

# simcomp method -> (the benchmark's method it stands for, setting, the equivalence assumed).
# A toy step stands for one epoch of the real training wherever a method counts epochs
# (docs/methods.md); a start is a fraction of the toy's training.
BENCHMARK = {
    "ogm": ("OGM", {"alpha": 0.3, "start": 10 / 30},
            "OGM itself: alpha 0.3; modulation from epoch 10 read as the first third of the "
            "baseline's 30 epochs (its stop, epoch 80, lies beyond the run)"),
    "ogm_ge": ("OGM", {"alpha": 0.3, "start": 10 / 30},
               "OGM with its generalisation noise; the toy predicts the mean path, OGM's"),
    "agm": ("AGM", {"alpha": 0.1}, "AGM itself: alpha 0.1"),
    "mmpareto": ("MMPareto", {}, "MMPareto itself: the 1.5 scale of the update is built in"),
    "umt": ("UMT", {"distill_weight": 10.0},
            "UMT itself: the toolkit adds scaling x the mean squared difference of each "
            "modality's features to its uni-modal teacher's (its alpha 1 is not used by that "
            "term), and distill_weight weighs the mean squared difference of every unit to the "
            "teacher's: scaling 10 -> 10. Where 10 is past the stability limit of the toy's step, "
            "calibrate runs that configuration at a finer step (see the last section)"),
    "greedy": ("Greedy", {"epsilon": 0.001},
               "an analogue, not the method (late fusion has no MMTM layers): the toolkit's "
               "alpha 0.001, its threshold on the difference of the modalities' conditional "
               "learning speeds, read as the threshold epsilon on the spread of the "
               "utilisation rates that speed stands in for; its window of 5 steps as 5 toy "
               "steps (simcomp's default), the controller from step 2 (simcomp's default)"),
    "opm": ("OPM", {"q_base": 0.4, "start": 0.0},
            "OPM itself: q_base 0.4; its alpha 0.5 (growth of the drop with the lead) and "
            "p_exe 0.7 are simcomp's opm defaults (alpha, execute_prob); dropping from epoch 0 "
            "(assumed: the toolkit's trainer computes no loss at all outside its modulation "
            "window, so a later start would not train the model early on)"),
    "reconboost": ("ReconBoost", {"boost_weight": 5.0},
                   "ReconBoost itself: weight1 5 -> boost_weight, weight2 1 -> ensemble_weight "
                   "(simcomp's default); its alpha 0.5 weighs a term between two detached "
                   "softmaxes, which has no gradient and does not change training; stages of 4 "
                   "boosting and 4 correcting epochs as 4 + 4 toy steps (the published stage "
                   "length, assumed for the toolkit's T_epochs)"),
    "aux": ("G-Blending ~", {"aux_weight": 1.0},
            "a stand-in: G-Blending weighs a uni-modal loss per modality against the fused one, "
            "with weights estimated online from each head's overfitting; calibrate cannot run "
            "`gblending` itself (see below), and `aux` is the same losses with fixed weights "
            "(1 each), the uniform blend G-Blending starts from"),
    "alternating": ("MLA ~", {},
                    "MLA (alternating uni-modal updates through a shared head); the toy's head is "
                    "fixed, so MLA reduces to alternating"),
    "dropout": ("-", {"winner_drop": 0.7 * 0.4},
                "not a benchmark method now that `opm` predicts OPM: kept as OPM without its "
                "lead-dependent growth, the race winner dropped with probability p_exe x q_base "
                "= 0.7 x 0.4, to show how much of `opm`'s prediction is plain dropping"),
    "lr_scale": ("-", {}, "not in the benchmark (simcomp's baseline of balancing)"),
    "ume": ("-", {}, "not in the benchmark (the sum of the uni-modal networks)"),
}
# Benchmark methods simcomp has, which calibrate refuses: the page gives calibrate's reason.
REFUSED = {"pmr": "PMR", "relearning": "Diagnosing & Re-learning", "gblending": "G-Blending",
           "mmcosine": "MMCosine"}


def _rows():
    with open(DATA, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        mods = row["modalities"].split(";")
        accs = [float(row[f"uni_{i + 1}"]) for i in range(len(mods))]
        classes = [2, 7] if row["dataset"] == "CMU-MOSEI" else [int(row["classes"])]
        for k in classes:
            label = row["dataset"] + (f" ({k} classes)" if len(classes) > 1 else "")
            out.append((label, {"classes": k,
                                "modality": [{"name": m, "accuracy": a} for m, a in zip(mods, accs)],
                                "joint": {"accuracy": float(row["joint"])}}))
    return out


def _settings():
    out = {}
    for name, (_, setting, _) in BENCHMARK.items():
        spec = METHOD_PARAMS[name]
        if spec.param is not None and setting:
            out[name] = dict(setting)
    return out


def run(simulate: int, quick: bool = False):
    results = []
    rows = _rows()
    options = {}
    if quick:
        rows = [r for r in rows if r[0] in (EXAMPLE, "CMU-MOSEI (2 classes)")]
        options = {"methods": ["ogm", "ume"], "sample": 2}
    else:
        options = {"methods": list(BENCHMARK) + list(REFUSED)}
    for label, raw in rows:
        t0, c0 = time.perf_counter(), time.process_time()
        settings = {k: v for k, v in _settings().items() if "methods" not in options
                    or k in options["methods"]}
        here = dict(options)
        if label == EXAMPLE and not quick:
            # the worked example of docs/calibration.md shows `simcomp calibrate` on its file,
            # which runs every method
            here.pop("methods")
        cal = simcomp.calibrate(raw, simulate=simulate, settings=settings, **here)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{label}: {cal.json['consistent_set']['count']} consistent, {wall:.1f} s "
              f"({cpu:.1f} s CPU)", file=sys.stderr)
        # the share of the consistent set in which joint training loses nothing (cost within
        # the tolerance): the pictures that pull every median to zero
        tol = cal.measurements.tolerance
        cands = cal.search.candidates
        share = picture_share = None
        if cands:
            lossless = [c.potential - c.joint <= tol + 1e-12 for c in cands]
            share = round(float(np.mean(lossless)), 3)
            # the same share with each picture counted once, whatever its number of horizons
            pictures = {}
            for c, ok in zip(cands, lossless):
                key = (tuple(c.presence), tuple(c.beta), c.c, c.seed, c.decision_scale)
                pictures.setdefault(key, []).append(ok)
            picture_share = round(float(np.mean([np.mean(v) for v in pictures.values()])), 3)
        results.append({"dataset": label, "input": raw, "wall_seconds": round(wall, 2),
                        "no_loss_share": share, "no_loss_picture_share": picture_share,
                        "cpu_seconds": round(cpu, 2),
                        "load_average": round(os.getloadavg()[0], 2), "calibration": cal.json})
    return results


# --------------------------------------------------------------------------- outputs


def _share(res) -> str:
    share, pic = res.get("no_loss_share"), res.get("no_loss_picture_share")
    return "-" if share is None else f"{100 * share:.0f} % / {100 * pic:.0f} %"


def _cell(m):
    if m is None or m["gain_median"] is None:
        return "cannot tell"
    return f"{m['gain_median']:+.1f} [{m['gain_low']:+.1f}, {m['gain_high']:+.1f}]"


def _method(cal, name, which="given"):
    for m in cal["methods"]:
        if m["method"] == name and m["which"] == which:
            return m
    return None


def _mid(m) -> float:
    return 0.5 * (m["gain_low"] + m["gain_high"])


def _csv(results) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "method", "benchmark_method", "which", "setting", "gain_median",
                "gain_low", "gain_high", "verdict", "sensitivity"])
    for res in results:
        for m in res["calibration"]["methods"]:
            w.writerow([res["dataset"], m["method"], BENCHMARK.get(m["method"], ("-",))[0],
                        m["which"],
                        json.dumps(m["setting"]), m["gain_median"], m["gain_low"], m["gain_high"],
                        m["verdict"], m["sensitivity"]])
    return buf.getvalue()


def _figure(results, fig_path):
    from simcomp.plots import new_figure, save_figure

    n = len(results)
    fig = new_figure(15.0, 9.0)
    ax0 = fig.add_subplot(3, 3, 1)
    for i, res in enumerate(results):
        cal = res["calibration"]
        meas = cal["measurements"]
        best = max(m["accuracy"] for m in meas["modalities"])
        ax0.plot([i], [best], "s", color="tab:blue", label="best uni-modal" if i == 0 else None)
        ax0.plot([i], [meas["joint"]], "o", color="black", label="joint" if i == 0 else None)
        pot = cal["potential"]
        if pot["low"] is not None:
            ax0.plot([i, i], [pot["low"], pot["high"]], color="tab:green", lw=5, alpha=0.7,
                     marker="_", ms=10, label="potential (toy)" if i == 0 else None)
    ax0.set_xticks(range(n), [r["dataset"].replace(" classes)", ")") for r in results],
                   rotation=60, fontsize=6, ha="right")
    ax0.set_ylabel("accuracy (%)")
    ax0.set_title("potential against the measured accuracies", fontsize=8)
    ax0.legend(fontsize=6)
    names = _names(results)
    for k, res in enumerate(results[:8]):
        ax = fig.add_subplot(3, 3, k + 2)
        cal = res["calibration"]
        for j, name in enumerate(names):
            m = _method(cal, name)
            y = len(names) - 1 - j
            if m is not None and m["gain_median"] is not None:
                ax.plot([m["gain_low"], m["gain_high"]], [y, y], color="tab:orange", lw=3)
                ax.plot([m["gain_median"]], [y], "o", color="tab:orange", ms=4)
            else:
                ax.text(0.0, y, "cannot tell", fontsize=6, va="center")
        ax.axvline(0.0, color="black", lw=0.7)
        tol = cal["measurements"]["tolerance"]
        ax.axvspan(-tol, tol, color="grey", alpha=0.15)
        ax.set_yticks(range(len(names)),
                      [f"{n} ({BENCHMARK[n][0]})" for n in names][::-1], fontsize=6)
        ax.set_ylim(-0.8, len(names) - 0.2)
        ax.set_title(res["dataset"] + ("" if cal["consistent_set"]["count"] else
                                       ": no consistent toy"), fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
        if k >= 5:
            ax.set_xlabel("predicted gain (points)", fontsize=7)
    fig.tight_layout()
    save_figure(fig, fig_path)


def _names(results) -> list:
    """The simcomp methods evaluated (all of :data:`BENCHMARK` unless a --quick run chose fewer)."""
    done = {m["method"] for r in results for m in r["calibration"]["methods"]}
    return [n for n in BENCHMARK if n in done] or list(BENCHMARK)


def _page(results, simulate: int, total: float) -> str:
    first = results[0]["calibration"]
    corr = first["consistent_set"]["correlation_modelled"]
    L = []
    L.append("# The toy against real data: seven benchmark data sets\n")
    L.append("Generated by `python benchmarks/real_world.py` (every number below comes from that "
             "run; nothing is typed by hand). It calibrates the toy on the uni-modal and joint "
             "baselines of BalanceBenchmark (`benchmarks/data/real_baselines.csv`, with its "
             "source in `benchmarks/data/README.md`) with `simcomp calibrate` "
             "([calibration.md](calibration.md)), and predicts what the balancing methods would "
             "gain there. The benchmark's measured method results are not in this repository: "
             "these predictions are made blind, to be held against them.\n")
    L.append(f"simcomp {first['simcomp_version']}, Python {platform.python_version()}, "
             f"{os.cpu_count()} cores; {sum(r['wall_seconds'] for r in results):.0f} s for all "
             f"{len(results)} calibrations ({total:.0f} s for the whole script) on a machine shared with other "
             f"jobs (1-minute load average {min(r['load_average'] for r in results):.1f} to "
             f"{max(r['load_average'] for r in results):.1f} during the run); {simulate} members of each "
             f"consistent set simulated. Presence correlation "
             + ("modelled (`data.presence_correlation`)." if corr else
                "**not modelled** in this run: the presence coins are independent (c = 0), so the "
                "ranges below are narrower than the data justify (see the last section).") + "\n")
    L.append("## Settings: which benchmark method each simcomp method stands for\n")
    L.append("| simcomp method | benchmark method | setting used | equivalence assumed |")
    L.append("|---|---|---|---|")
    for name, (bench, setting, note) in BENCHMARK.items():
        spec = METHOD_PARAMS[name]
        shown = ", ".join(f"{k} = {v:.3g}" for k, v in setting.items()) if setting else (
            "(none)" if spec.param is None else f"{spec.param} = {spec.given:g} (simcomp's)")
        L.append(f"| `{name}` | {bench} | {shown} | {note} |")
    L.append("")
    refused = {}
    for res in results:
        refused.update(res["calibration"].get("methods_refused") or {})
    L.append("`lr_scale` and `dropout` act on the modality that wins the race in each toy "
             "configuration. A `start` is a fraction of training. Methods of the benchmark "
             "that are in neither table have no counterpart in simcomp and are not predicted.\n")
    if refused:
        L.append("Benchmark methods simcomp implements but `simcomp calibrate` does not predict, "
                 "with calibrate's reason (`methods_refused` in its JSON):\n")
        for name, bench in REFUSED.items():
            if name in refused:
                L.append(f"- `{name}` ({bench}): {refused[name]}.")
        L.append("")
    L.append("## The calibrations\n")
    L.append("Accuracies in percent. *potential*: the toy's accuracy with every modality learned, "
             "over the consistent set; *cost*: the potential minus the measured joint accuracy. "
             "*consistent*: toy configurations (of those searched) that reproduce every "
             "measurement within the tolerance; *no loss*: the share of them in which joint "
             "training loses nothing (cost within the tolerance: the modalities overlap and both "
             "are learned), counting every configuration / counting each picture once (one "
             "picture: a configuration at all the horizons at which it fits); *simulated*: "
             "members confirmed by simulation "
             "(agreeing / simulated). *seconds*: the calibration's wall time, every method "
             "included, and the CPU time of this process (the rest is waiting for a core on the "
             "shared machine).\n")
    L.append("| data set | chance | uni-modal | joint | potential | cost | consistent | no loss | "
             "simulated | race winner | seconds (wall / CPU) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for res in results:
        cal = res["calibration"]
        meas, cs = cal["measurements"], cal["consistent_set"]
        uni = ", ".join(f"{m['name']} {m['accuracy']:.2f}" for m in meas["modalities"])
        pot, cost = cal["potential"], cal["competition_cost"]
        pot_s = "-" if pot["low"] is None else f"{pot['low']:.1f} to {pot['high']:.1f}"
        cost_s = "-" if cost["low"] is None else f"{cost['low']:+.1f} to {cost['high']:+.1f}"
        win = "-" if not cs["ranges"] else ", ".join(f"{k} {v}" for k, v in cs["ranges"]["winner"].items() if v)
        L.append(f"| {res['dataset']} | {meas['chance']:.2f} | {uni} | {meas['joint']:.2f} | {pot_s} | "
                 f"{cost_s} | {cs['count']} / {cs['searched']} | {_share(res)} | "
                 f"{cs['simulation_agreed']} / "
                 f"{cs['simulated']} | {win} | {res['wall_seconds']:.0f} / {res.get('cpu_seconds', float('nan')):.0f} |")
    L.append("")
    notes = [(res["dataset"], n) for res in results for n in res["calibration"]["notes"]
             if "correlation grid" in n]
    if notes:
        L.append("Where the correlation grid had no value at which the modalities' union "
                 "reproduces the joint accuracy, calibrate searched that overlap as well:\n")
        for label, n in notes:
            L.append(f"- {label}: c = {n.split('searched as well: ')[1].split(' (')[0]}.")
        L.append("")
    none = [r for r in results if not r["calibration"]["consistent_set"]["count"]]
    for res in none:
        L.append(f"- {res['dataset']}: no toy configuration is consistent: "
                 f"{res['calibration']['consistent_set']['reason']}.")
    if none:
        L.append("")
    L.append("## Predicted gains at the benchmark's settings\n")
    L.append("Gain of each method over the plain joint network, in accuracy points: median "
             "[lowest, highest] over the sampled consistent configurations; *cannot tell* where "
             "nothing is consistent or the toy's dynamics diverged even at the finest step "
             "tried. The median counts every consistent configuration once, and the *no loss* "
             "column above says why it is zero on every data set where the joint network beats "
             "the best uni-modal one: modalities that overlap just enough for their union to "
             "equal the joint accuracy, both learned, reproduce the baselines at every speed "
             "ratio and at every horizon past the slower one's learning, while a starved "
             "modality reproduces them only at the few horizons where it is caught part-way. "
             "The first picture is the more numerous, and in it no method can gain anything. "
             "That is what the toy implies (its starved modality is always learned in the end), "
             "not only a counting effect: the second share counts each picture once whatever "
             "its number of horizons ([calibration.md](calibration.md)). So a median of zero with "
             "a high upper end reads \"the baselines alone do not decide; possibly much\"; the "
             "upper end is what a method gains if the modalities are nearly independent, and "
             "measuring `all_wrong` would tell which. The ranks below therefore rest mostly on "
             "the upper ends.\n")
    names = _names(results)
    L.append("| data set | " + " | ".join(f"`{n}` ({BENCHMARK[n][0]})" for n in names) + " |")
    L.append("|---|" + "---|" * len(names))
    for res in results:
        cal = res["calibration"]
        L.append(f"| {res['dataset']} | " + " | ".join(_cell(_method(cal, n)) for n in names) + " |")
    L.append("")
    given = {}
    for name, (_, setting, _) in BENCHMARK.items():
        spec = METHOD_PARAMS[name]
        value = setting.get(spec.param, spec.given) if spec.param else None
        given[name] = name if spec.param is None else f"{name} ({spec.param} {value:g})"
    pattern = re.compile(r"^(.*?): past its stability limit or diverging .* on (\d+) of (\d+) "
                         r".*divided by (\d+) at most")
    refined = {}
    for res in results:
        for n in res["calibration"]["notes"]:
            hit = pattern.match(n)
            if hit and hit.group(1) in given.values():
                refined.setdefault(hit.group(1), []).append(
                    f"{res['dataset']} {hit.group(2)} of {hit.group(3)} (step / {hit.group(4)})")
    if refined:
        L.append("Where a method at the benchmark's setting was past its stability limit or "
                 "diverged at the toy's step size (the step is the toy's unit of time, not a "
                 "property of the real network), calibrate ran it with plain training at a finer "
                 "step and took their difference; the sampled configurations concerned:\n")
        for what, rows in refined.items():
            L.append(f"- `{what}`: " + "; ".join(rows) + ".")
        L.append("")
    L.append("![potential and predicted gains](figures/real_world.png)\n")
    L.append("## Verdicts, ranks and what a grid search would buy\n")
    rule = first["verdict_rule"]
    L.append(f"Verdict rule: {rule}. *rank*: the benchmark methods ordered by predicted median "
             "gain, ties broken by the middle of the range (methods within 0.1 points on both share "
             "a place). *best*: the toy's best setting of the "
             "main parameter and its median gain; *sensitivity*: the spread of the median gain over "
             "the parameter's grid.\n")
    L.append("| data set | verdicts (given setting) | predicted rank | best settings |")
    L.append("|---|---|---|---|")
    for res in results:
        cal = res["calibration"]
        if not cal["methods"]:
            L.append(f"| {res['dataset']} | - | - | - |")
            continue
        verd = "; ".join(f"`{n}` {_method(cal, n)['verdict']}" for n in names if BENCHMARK[n][0] != "-")
        ranked = [(n, _method(cal, n)["gain_median"]) for n in names if BENCHMARK[n][0] != "-"]
        # by median, ties broken by the middle of the range
        ranked = [(n, None if g is None else (g, _mid(_method(cal, n)))) for n, g in ranked]
        known = sorted([x for x in ranked if x[1] is not None], key=lambda x: (-x[1][0], -x[1][1]))
        groups = []
        for n, g in known:
            last = groups[-1][-1][1] if groups else None
            if last is not None and abs(last[0] - g[0]) <= 0.1 and abs(last[1] - g[1]) <= 0.1:
                groups[-1].append((n, g))
            else:
                groups.append([(n, g)])
        rank = " > ".join(" = ".join(f"`{n}`" for n, _ in grp) for grp in groups)
        unknown = [n for n, g in ranked if g is None]
        if unknown:
            rank += "; cannot tell: " + ", ".join(f"`{n}`" for n in unknown)
        best = []
        for n in names:
            m = _method(cal, n, "best")
            if m is None or not m["setting"] or m["gain_median"] is None:
                continue
            s = ", ".join(f"{k} {v:.3g}" for k, v in m["setting"].items() if k != "start")
            best.append(f"`{n}` {s}: {m['gain_median']:+.1f} (sens. {m['sensitivity']:.1f})")
        L.append(f"| {res['dataset']} | {verd} | {rank} | {'; '.join(best)} |")
    L.append("")
    L.append("## Potential against the measured accuracies\n")
    L.append("If the toy's picture is right, no balancing method should exceed the potential by "
             "more than the tolerance, and the best method should land inside the potential "
             "range; a range that excludes the best accuracy any method reaches is a failure of "
             "the calibration.\n")
    L.append("| data set | best uni-modal | joint | potential | joint - best uni-modal |")
    L.append("|---|---|---|---|---|")
    for res in results:
        cal = res["calibration"]
        meas = cal["measurements"]
        best = max(m["accuracy"] for m in meas["modalities"])
        pot = cal["potential"]
        pot_s = "-" if pot["low"] is None else f"{pot['low']:.1f} to {pot['high']:.1f}"
        L.append(f"| {res['dataset']} | {best:.2f} | {meas['joint']:.2f} | {pot_s} | "
                 f"{meas['joint'] - best:+.2f} |")
    L.append("")
    L.append(LIMITS)
    return "\n".join(L) + "\n"


LIMITS = """## What the toy cannot represent

Read every number above with these limits in mind; they are why the ranges
are ranges.

- **Knowledge is all or nothing per sample.** A toy modality either carries
  the label on a sample or says nothing; a real encoder is partly informative
  on most samples. The mapping turns a uni-modal accuracy into a share of
  samples known, which fixes the toy's presence; it cannot tell a modality
  that is sure of half the samples from one that is half-sure of all.
- **Which samples the modalities share.** Without `all_wrong` (the share of
  test samples every uni-modal network gets wrong) the overlap of the
  modalities is not measured. With overlapping modalities the joint accuracy
  is close to what they can reach together and there is little to gain; with
  independent ones the same joint accuracy means a modality is being starved.
  These baselines do not give it, so the overlap is searched over when simcomp
  models it (`data.presence_correlation`) and fixed at independence when it
  does not -- then the potential is at its highest and the gains are
  optimistic.
- **Partial learning is a moment in the toy, a steady state in real
  networks.** In the toy a starved modality is eventually learned; a joint
  accuracy between "one modality" and "all of them" is reproduced only at a
  horizon where the loser is half-way, and small changes of the timing move
  it a lot. The simulated confirmations show how fragile that is.
- **A fixed fusion head, no features, no optimiser.** The toy's encoders are
  one layer of smoothed-ReLU neurons added together; real networks have
  deep encoders, a learned fusion layer, batch normalisation, Adam or SGD
  with momentum, augmentation and a learning-rate schedule. Methods that act
  on these (MLA's head projection, AGM's head clipping, MMCosine's
  normalised head) are represented only by the nearest toy method or not at
  all, as listed above; Greedy's MMTM layers do not exist in late fusion, so
  `greedy` is an analogue.
- **No held-out data.** The toy is calibrated on the whole population, so
  there is no overfitting to measure: Re-learning and G-Blending, which
  steer training by it, are not predicted (G-Blending only through `aux`'s
  fixed weights).
- **Step size.** The toy trains with learning rate 1; UMT's published
  distillation weight is past the stability limit of that step on some
  configurations (docs/methods.md). The step is the toy's unit of time, which
  the horizon calibrates, so there calibrate runs the method and plain
  training at a finer step (the same gradient flow) and reports their
  difference; the configurations concerned are listed under the predictions.
- **Chance and class imbalance.** The chance level maps the binary toy to
  a C-class task assuming balanced classes; on CMU-MOSEI the audio and
  visual networks may be at the majority-class level, which would make them
  know nothing -- a calibration with that chance level would refuse them.
- **Over-fitting and the test set.** The toy's uni-modal networks reach
  their accuracy exactly; real ones over-fit, are early-stopped and are
  measured on a finite test set (the figure's values are also read by eye,
  +-0.05).
"""


CAL_PAGE = ROOT / "docs" / "calibration.md"
EXAMPLE = "CREMA-D"


def _worked_example(results, page) -> None:
    """Replace the worked-example section of docs/calibration.md with this run's CREMA-D."""
    import re

    from simcomp.calibrate.report import text_report

    res = next(r for r in results if r["dataset"] == EXAMPLE)
    raw = res["input"]
    toml = [f"classes = {raw['classes']}"]
    for m in raw["modality"]:
        toml += ["[[modality]]", f'name = "{m["name"]}"', f"accuracy = {m['accuracy']:.2f}"]
    toml += ["[joint]", f"accuracy = {raw['joint']['accuracy']:.2f}", "[methods]"]
    for name, setting in _settings().items():
        inner = ", ".join(f"{k} = {v:.4g}" for k, v in setting.items())
        toml.append(f"{name} = {{ {inner} }}")
    body = ("```toml\n" + "\n".join(toml) + "\n```\n\n```\n$ simcomp calibrate crema-d.toml\n"
            + text_report(res["calibration"]) + "\n```")
    text = page.read_text(encoding="utf-8")
    pattern = re.compile(r"(<!-- BEGIN worked-example -->\n).*?(\n<!-- END worked-example -->)", re.S)
    if not pattern.search(text):
        raise SystemExit("docs/calibration.md has no worked-example markers")
    write_text_atomic(page, pattern.sub(lambda m: m.group(1) + body + m.group(2), text))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", type=int, default=2,
                        help="members of each consistent set to simulate (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="two data sets, two methods, into a scratch directory (smoke test)")
    parser.add_argument("--render", action="store_true",
                        help="redraw the page, figure and worked example from the saved "
                        "benchmarks/results/real_world.json (no calibration)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.render:
        saved = json.loads((RESULTS / "real_world.json").read_text(encoding="utf-8"))
        results, total = saved["results"], saved["total_seconds"]
        args.simulate = saved["simulate"]
        _figure(results, FIG)
        write_text_atomic(PAGE, _page(results, args.simulate, total))
        _worked_example(results, CAL_PAGE)
        print(f"redrew {PAGE}, {FIG} and {CAL_PAGE}", file=sys.stderr)
        return 0
    results = run(args.simulate, quick=args.quick)
    results_dir, fig, page, cal_page = RESULTS, FIG, PAGE, CAL_PAGE
    if args.quick:
        import shutil
        import tempfile

        scratch = Path(os.environ.get("SIMCOMP_BENCH_SCRATCH")
                       or tempfile.mkdtemp(prefix="simcomp-bench-"))
        scratch.mkdir(parents=True, exist_ok=True)
        results_dir, fig, page = scratch, scratch / FIG.name, scratch / PAGE.name
        cal_page = scratch / CAL_PAGE.name
        shutil.copyfile(CAL_PAGE, cal_page)
    results_dir.mkdir(exist_ok=True)
    from simcomp.outputs import dumps_json

    total = time.perf_counter() - t0
    write_text_atomic(results_dir / "real_world.json", dumps_json(
        {"simulate": args.simulate, "total_seconds": round(total, 1), "results": results}))
    write_text_atomic(results_dir / "real_world.csv", _csv(results))
    _figure(results, fig)
    write_text_atomic(page, _page(results, args.simulate, total))
    _worked_example(results, cal_page)
    print(f"wrote {page}, {fig}, {cal_page} and {results_dir}/real_world.{{json,csv}}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
