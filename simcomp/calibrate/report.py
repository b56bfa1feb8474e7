"""A calibration's outputs: the JSON object, the text report, the figure and the directory."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..outputs import OutputError, refuse_cwd_or_parent
from ..registry import label

__all__ = ["CALIBRATE_FORMAT", "text_report", "calibration_figure", "write_directory",
           "check_calibration_dir", "ENTRIES"]

CALIBRATE_FORMAT = "simcomp.calibrate/1"
ENTRIES = ("calibration.json", "report.txt", "calibration.png")


def _fmt(x, signed=False):
    if x is None:
        return "n/a"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def text_report(obj: dict) -> str:
    """The human-readable report of a calibration's JSON object."""
    meas = obj["measurements"]
    cs = obj["consistent_set"]
    lines = [f"simcomp {obj['simcomp_version']} calibrate: "
             f"{', '.join(m['name'] for m in meas['modalities'])}; chance {meas['chance']:.2f} "
             f"(accuracies in points, read as {meas['input_scale']}s), tolerance +-{meas['tolerance']:.2f}",
             ""]
    lines.append("measured    " + "  ".join(f"{m['name']} {m['accuracy']:.2f}" for m in meas["modalities"])
                 + f"  joint {meas['joint']:.2f}"
                 + ("" if meas["all_wrong"] is None else f"  all wrong {meas['all_wrong']:.2f}"))
    lines.append(f"consistent  {cs['count']} toy configurations of {cs['searched']} searched "
                 f"(theory); {cs['simulated']} simulated, {cs['simulation_agreed']} agreed with the "
                 f"theory within +-{cs['simulation_tolerance']:.1f}")
    if cs["count"] == 0:
        lines += ["", f"NO TOY CONFIGURATION IS CONSISTENT: {cs['reason']}",
                  "simcomp gives no answers for these measurements (it does not invent a fit)."]
        lines += [f"note: {n}" for n in obj.get("notes", [])]
        return "\n".join(lines)
    rng = cs["ranges"]
    corr = rng["correlation"]
    lines.append("            presence " + ", ".join(f"{k} {v[0]:.3f}-{v[1]:.3f}" for k, v in rng["presence"].items())
                 + "; beta ratio " + ", ".join(f"{k} {v[0]:.2f}-{v[1]:.2f}" for k, v in rng["beta_ratio"].items())
                 + "; correlation " + (corr if isinstance(corr, str) else f"{corr[0]:+.2f} to {corr[1]:+.2f}")
                 + f"; horizon {rng['horizon'][0]:.2f}-{rng['horizon'][1]:.2f} x the slowest uni-modal learn time")
    lines.append("            race winner: " + ", ".join(f"{k} in {v}" for k, v in rng["winner"].items()))
    p, c = obj["potential"], obj["competition_cost"]
    lines += ["", f"potential         {_fmt(p['low'])} to {_fmt(p['high'])}   (every modality learned)",
              f"competition cost  {_fmt(c['low'], True)} to {_fmt(c['high'], True)}   "
              "(potential minus the joint accuracy)", ""]
    lines.append(f"methods (gain in points over the plain joint network, over {cs['methods_sampled']} "
                 "sampled consistent configurations)")
    # an analogue says so (greedy); the column widens for it
    names = {m["method"]: label(m["method"]) for m in obj["methods"]}
    wd = max([12] + [len(v) for v in names.values()])
    lines.append(f"  {'method':<{wd}} {'which':<6} {'setting':<28} {'median':>7} {'low':>7} {'high':>7}  "
                 f"{'sensitivity':>11}  verdict")
    for m in obj["methods"]:
        setting = ", ".join(f"{k}={v:g}" for k, v in m["setting"].items()) or "-"
        sens = "-" if m["sensitivity"] is None else f"{m['sensitivity']:.1f}"
        lines.append(f"  {names[m['method']]:<{wd}} {m['which']:<6} {setting:<28} {_fmt(m['gain_median'], True):>7} "
                     f"{_fmt(m['gain_low'], True):>7} {_fmt(m['gain_high'], True):>7}  {sens:>11}  "
                     f"{m['verdict']}")
    for nm, why in obj.get("methods_refused", {}).items():
        lines.append(f"  {label(nm):<{wd}} not predicted: {why}")
    lines += ["", f"verdict rule: {obj['verdict_rule']}",
              "sensitivity: the spread of the median gain over the main parameter's grid (what a "
              "grid search could change)"]
    lines += [f"note: {n}" for n in obj.get("notes", [])]
    return "\n".join(lines)


def calibration_figure(obj: dict):
    """Left: the measurements against the consistent set's predictions; right: the gains."""
    from ..plots import new_figure

    fig = new_figure(11.0, 4.8)
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    meas = obj["measurements"]
    pred = obj["consistent_set"].get("predicted", {})
    labels, measured = [], []
    for m in meas["modalities"]:
        labels.append(m["name"])
        measured.append(m["accuracy"])
    labels.append("joint")
    measured.append(meas["joint"])
    x = np.arange(len(labels))
    ax1.scatter(x, measured, color="black", zorder=3, label="measured")
    tol = meas["tolerance"]
    ax1.errorbar(x, measured, yerr=tol, fmt="none", color="black", capsize=4)
    if pred:
        ranges = pred["uni"] + [pred["joint"]]
        for i, (lo, hi) in enumerate(ranges):
            ax1.plot([i + 0.15, i + 0.15], [lo, hi], color="tab:blue", lw=6, alpha=0.6, marker="_",
                     ms=12,
                     label="consistent set (theory)" if i == 0 else None)
    pot = obj["potential"]
    if pot["low"] is not None:
        i = len(labels)
        ax1.plot([i, i], [pot["low"], pot["high"]], color="tab:green", lw=6, alpha=0.7,
                 marker="_", ms=12, label="potential")
        labels.append("potential")
    ax1.axhline(meas["chance"], color="grey", ls=":", label="chance")
    ax1.set_xticks(range(len(labels)), labels)
    ax1.set_ylabel("accuracy (points)")
    ax1.set_title("measurements and the toy configurations that reproduce them", fontsize=9)
    ax1.legend(fontsize=7, loc="lower right")
    methods = [m for m in obj["methods"]]
    if methods:
        names = []
        for j, m in enumerate(methods):
            y = len(methods) - 1 - j
            names.append(f"{m['method']} ({m['which']})")
            color = "tab:orange" if m["which"] == "given" else "tab:purple"
            if m["gain_low"] is not None:
                ax2.plot([m["gain_low"], m["gain_high"]], [y, y], color=color, lw=3)
                ax2.plot([m["gain_median"]], [y], "o", color=color)
            else:
                ax2.text(0, y, "cannot tell (diverged)", fontsize=7, va="center")
        ax2.set_yticks(range(len(methods)), names[::-1], fontsize=7)
        ax2.set_ylim(-0.8, len(methods) - 0.2)
        ax2.axvspan(-tol, tol, color="grey", alpha=0.15, label="within the tolerance")
        ax2.axvline(0, color="black", lw=0.8)
        ax2.set_xlabel("predicted gain over the plain joint network (points)")
        ax2.set_title("methods: median and range over the consistent set", fontsize=9)
        ax2.legend(fontsize=7, loc="lower right")
    else:
        ax2.text(0.5, 0.5, "no consistent toy configuration:\nno method predictions",
                 ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
    fig.tight_layout()
    return fig


def _foreign(path: Path) -> str | None:
    try:
        content = json.loads((path / "calibration.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "it has no calibration.json written by simcomp"
    if not isinstance(content, dict) or content.get("format") != CALIBRATE_FORMAT:
        return "its calibration.json has no simcomp calibrate format key"
    for name in os.listdir(path):
        if name not in ENTRIES:
            return f"it holds {name!r}, which simcomp calibrate does not write"
    return None


def check_calibration_dir(path: str | Path, force: bool) -> Path:
    """Refuse an output directory before any work: non-empty (unless --force and ours), a link,
    a file, the working directory or above, a missing parent."""
    path = Path(path)
    refuse_cwd_or_parent(path)
    if path.is_symlink():
        raise OutputError(f"--out {str(path)!r} is a symbolic link; give a directory")
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        reason = _foreign(path)
        if reason is not None:
            raise OutputError(f"--out {str(path)!r} is not empty and is not a simcomp calibrate "
                              f"output ({reason}); choose another --out")
        if not force:
            raise OutputError(f"--out {str(path)!r} exists and is not empty; choose another --out "
                              "or pass --force to replace it")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"--out {str(path)!r}: parent directory {str(parent)!r} does not exist")
    # The output is staged beside it: find out now, not after a minute of calibration, whether
    # that is possible (a read-only or pseudo file system).
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.probe-", dir=parent))
    except OSError as exc:
        raise OutputError(f"--out {str(path)!r}: cannot write in {str(parent)!r} "
                          f"({exc.strerror or exc.__class__.__name__})") from None
    return path


def write_directory(obj: dict, path: str | Path, force: bool = False, figure: bool = True) -> Path:
    """Write calibration.json, report.txt and calibration.png into ``path`` atomically."""
    from ..outputs import dumps_json
    from ..plots import save_figure

    target = check_calibration_dir(path, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.absolute().parent))
    try:
        (tmp / "calibration.json").write_text(dumps_json(obj), encoding="utf-8")
        (tmp / "report.txt").write_text(text_report(obj) + "\n", encoding="utf-8")
        if figure:
            save_figure(calibration_figure(obj), tmp / "calibration.png")
        check_calibration_dir(target, force)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=tmp.parent))
            os.rmdir(old)
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
