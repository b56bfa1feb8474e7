"""What a fusion-engine run reports: its summary entry, the theory beside it, its text and figure.

The quantities keep their names from the trace to summary.json: ``total_weight``
(per record and modality), ``half_step``, ``misattribution`` and the theory's
``predicted_half_step`` (docs/architectures.md, docs/theory.md section 14).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import Config

__all__ = ["fusion_prediction", "fusion_run_summary", "fusion_summary", "fusion_report",
           "total_weight_figure"]


def fusion_prediction(cfg: Config, run) -> dict:
    """The linear theory's numbers for a prepared run (simcomp.theory.fusion).

    Only two-modality Gaussian data have a formula; otherwise every entry is
    None and ``formula`` says why.
    """
    from .theory.fusion import predicted_half_steps

    if cfg.method.name == "mmcosine":
        return cosine_prediction(cfg, run)
    empty = {"first": None, "ratio": None, "misattribution": None,
             "predicted_half_step": {n: None for n in cfg.names}}
    if cfg.data.kind != "gaussian" or cfg.K != 2 or cfg.data.covariance is not None or any(
            mod.dim != 1 for mod in cfg.data.modality):
        return {**empty, "formula": "none: the formulas cover two one-dimensional Gaussian "
                "modalities given by std and data.correlation"}
    if cfg.method.name != "none":
        return {**empty, "formula": f"none: the formulas are for plain GD (method.name = "
                f"{cfg.method.name!r})"}
    m = cfg.model
    pred = predicted_half_steps(cfg.names, [mod.std for mod in cfg.data.modality],
                                cfg.data.correlation, cfg.train.lr, m.architecture, m.depth,
                                run.net.fusion_layer, run.extra["u0"], m.init_scale, m.head,
                                m.activation, chain0=run.extra.get("chain0"),
                                steps=cfg.train.steps)
    out = dict(pred)
    if out["formula"] is None:
        out["formula"] = "none: the formulas are for linear networks with a trainable head"
    return out


def cosine_prediction(cfg: Config, run) -> dict:
    """Method mmcosine's prediction: its (a, u) recursion (docs/theory.md 15.10) from the
    run's initial weights on the training set's (label, presence) patterns, read out as
    the engine reads its total weights; exact on noise-free sparse-coding data."""
    from .fusion_train import half_steps, misattribution_of
    from .theory.fusion_cosine import cosine_dynamics, cosine_total_weights

    names = cfg.names
    if cfg.data.kind != "sparse_coding":
        return {"first": None, "ratio": None, "misattribution": None,
                "predicted_half_step": {n: None for n in names},
                "formula": "none: mmcosine's (a, u) recursion needs data.kind = "
                           "'sparse_coding' (each modality's input along its signal)"}
    theta, net, m = run.theta0, run.net, cfg.model
    a0, u0 = [], []
    head = theta[net.head]
    for r, v in enumerate(run.extra["signals"]):
        off, rows, cols = (int(x) for x in net.layout[r, :3])
        a0.append(theta[off:off + rows * cols].reshape(rows, cols) @ v)
        u0.append(head[r * rows:(r + 1) * rows])
    y, s, w = run.extra["patterns"]
    beta = [mod.beta for mod in cfg.data.modality]
    dyn = cosine_dynamics(np.array(a0), np.array(u0), beta, y, s, w, cfg.method.scaling,
                          cfg.train.lr, cfg.train.steps, cfg.train.trace_every, m.activation,
                          m.q, m.rho)
    tw = cosine_total_weights(dyn["outputs"], beta, y, s, w)
    halves = ([None] * cfg.K if dyn["failed"] is not None
              else half_steps(dyn["steps"], tw))
    first, mis = misattribution_of(dyn["steps"], tw, halves)
    known = [h for h in halves if h is not None]
    exact = all(mod.noise == 0.0 and mod.distractors == 0 for mod in cfg.data.modality)
    return {"first": None if first is None else names[first],
            "ratio": max(known) / min(known) if len(known) == 2 and min(known) > 0 else None,
            "misattribution": mis, "predicted_half_step": dict(zip(names, halves)),
            "predicted_total_weight": tw, "record_steps": dyn["steps"],
            "formula": "mmcosine: the (a, u) recursion on the training set's patterns ("
                       + ("exact: noise-free data)" if exact else
                          "approximate: it leaves out the noise and distractors)")}


def fusion_run_summary(cfg: Config, res: dict, pred: dict) -> dict[str, Any]:
    """One run's entry of summary.json: the quantities of :data:`simcomp.results.QUANTITIES`
    that the fusion engine reports, in table order (the same getters as results.csv's)."""
    from . import results

    exp = results.fusion_experiment(cfg, res, pred)
    view = results.run_views(exp)["joint"]
    out: dict[str, Any] = {}
    for q in results.QUANTITIES:
        if q.level == "comparison" or not results.applies(q, view):
            continue
        value = q.get(view)
        out[q.name] = dict(zip(view.names, value)) if q.level == "modality" else value
    return out


def fusion_summary(cfg: Config, res: dict, pred: dict) -> dict[str, Any]:
    """The whole summary.json object of a fusion-engine simulate."""
    from .outputs import provenance

    out = provenance()
    out.update({"seed": cfg.seed, "config": cfg.to_dict(), "engine": "fusion",
                "runs": {"joint": fusion_run_summary(cfg, res, pred)}, "comparison": None})
    return out


def _fmt(value, spec=".0f") -> str:
    return "-" if value is None else format(value, spec)


def fusion_report(summary: dict[str, Any], out_dir: str | None = None) -> str:
    """What ``simcomp simulate`` prints for a fusion-engine run."""
    cfg = summary["config"]
    model, train = cfg["model"], cfg["train"]
    run = summary["runs"]["joint"]
    lines = [f"simcomp {summary['simcomp_version']}  seed {summary['seed']}  "
             f"{model.get('architecture', 'late_fusion')} (head {model.get('head', 'fixed')}, "
             f"{model['activation']}, width {model['width']}, depth {model.get('depth', 2)})  "
             f"loss {train.get('loss', 'logistic')}, lr {train['lr']:g}, {train['steps']} steps",
             "", f"{'modality':<10}{'total weight':>14}{'half step':>11}{'predicted':>11}"]
    for name, tw in run["total_weight"].items():
        # a diverged run's weights can be finite yet astronomically large: keep the column
        tw_s = format(tw, ".4f") if abs(tw) < 1e6 or tw != tw else format(tw, ".4g")
        lines.append(f"{name:<10}{tw_s:>14}{_fmt(run['half_step'][name]):>11}"
                     f"{_fmt(run['predicted_half_step'][name]):>11}")
    lines += ["", f"half-step ratio {_fmt(run['half_step_ratio'], '.3f')} (theory "
              f"{_fmt(run['predicted_half_step_ratio'], '.3f')}); misattribution "
              f"{_fmt(run['misattribution'], '+.3f')} (theory "
              f"{_fmt(run['predicted_misattribution'], '+.3f')}); final loss "
              f"{run['final_loss']:.3g}; status {run['status']}"]
    if run["predicted_half_step_ratio"] is None:
        lines.append(f"theory: {run['theory_formula']}")
    if out_dir is not None:
        lines.append(f"outputs in {out_dir}")
    return "\n".join(lines)


def total_weight_figure(cfg: Config, trace: dict, pred: dict):
    """Each modality's total weight against the step, the predicted half steps marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    steps, tw = trace["steps"], trace["total_weight"]
    for k, name in enumerate(cfg.names):
        line, = ax.plot(steps, tw[:, k], label=f"{name}")
        t = pred["predicted_half_step"].get(name)
        if t is not None:
            ax.axvline(t, ls="--", c=line.get_color(), lw=0.8)
    ax.set_xlabel("GD step")
    ax.set_ylabel("total weight")
    ax.set_title("total weight per modality (dashed: predicted half step)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    return fig
