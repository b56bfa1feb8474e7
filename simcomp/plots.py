"""Figures from traces and predictions (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["alignment_figure", "reduced_dynamics_figure", "save_figure"]

_BANK_COLOURS = ("tab:blue", "tab:red")


def save_figure(fig, path: str | Path) -> None:
    """Save and close ``fig`` (PNG, 130 dpi)."""
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


# A figure needs no more points per line than it has pixels; long traces are thinned.
_MAX_POINTS = 2000


def _thin(steps: np.ndarray) -> np.ndarray:
    """Indices of at most _MAX_POINTS records, evenly spread, first and last included."""
    count = len(steps)
    if count <= _MAX_POINTS:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, _MAX_POINTS).round().astype(np.int64))


# Beyond this magnitude matplotlib's axis transforms lose their inverse (a singular
# matrix); such values only occur in overflowing runs and are not drawn.
_PLOT_MAX = 1e100


def _finite(values: np.ndarray) -> np.ndarray:
    """Values as float64; NaN, infinities and |values| > 1e100 (overflowing runs) left out."""
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(values, dtype=np.float64)
        return np.where(np.isfinite(values) & (np.abs(values) <= _PLOT_MAX), values, np.nan)


def _empty_panel(ax, title: str, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("GD step")


def _panel(ax, steps, alignment, beta, threshold, learned, reduced, title, noisy=None):
    """One modality of one run: every neuron's signal pre-activation beta * a over time."""
    # alignment: (R, B, m)
    keep = _thin(steps)
    steps, alignment = np.asarray(steps)[keep], alignment[keep]
    marker = "o" if len(steps) == 1 else None  # a single record is a point, not a line
    B = alignment.shape[1]
    for b in range(B):
        with np.errstate(over="ignore", invalid="ignore"):
            lines = _finite(beta * alignment[:, b, :])
        label = "neurons" if B == 1 else f"neurons, bank c={'+1' if b == 0 else '-1'}"
        for i in range(lines.shape[1]):
            ax.plot(steps, lines[:, i], color=_BANK_COLOURS[b], lw=0.8, alpha=0.6, marker=marker,
                    ms=3, label=label if i == 0 else None)
    if reduced is not None and len(reduced[0]):
        r_steps, r_lead = reduced
        keep = _thin(r_steps)
        with np.errstate(over="ignore", invalid="ignore"):
            r_line = _finite(beta * np.asarray(r_lead)[keep])
        # Drawn on top but thin, so the simulated leading neuron stays visible beneath it.
        ax.plot(np.asarray(r_steps)[keep], r_line, color="black", lw=1.0, ls=(0, (4, 3)), zorder=5,
                label="theory: reduced dynamics, leading neuron")
    if noisy is not None:  # where the run has noise or distractors (docs/theory.md section 12)
        n_steps, n_lead = noisy
        with np.errstate(over="ignore", invalid="ignore"):
            n_line = _finite(beta * np.asarray(n_lead))
        ax.plot(n_steps, n_line, color="tab:purple", lw=1.2, ls="-.", zorder=6,
                label="theory: noise-aware dynamics, leading neuron")
    ax.axhline(threshold, color="grey", lw=0.8, ls=":", label="learned threshold")
    if learned is not None and learned >= 0:
        ax.axvline(learned, color="tab:green", lw=1.2, label=f"learned at step {learned}")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("GD step")
    ax.grid(alpha=0.3)


def alignment_figure(cfg, runs, traces, predictions=None):
    """Per-neuron alignment trajectories: a row per modality, joint and uni-modal side by side.

    Parameters
    ----------
    cfg : Config
    runs : list of RunResult-like
        Objects with ``name``, ``trained`` and ``learned_step``.
    traces : dict
        Run name -> trace arrays (``load_trace`` layout).
    predictions : dict, optional
        Run name -> theory.Prediction, to draw the reduced dynamics.
    """
    names = cfg.names
    columns = []
    if any(run.name == "joint" for run in runs):
        columns.append("joint")
    if any(run.name.startswith("unimodal-") for run in runs):
        columns.append("alone")
    fig, axes = plt.subplots(len(names), len(columns), figsize=(5.2 * len(columns), 2.9 * len(names)),
                             squeeze=False, sharex=True)
    by_name = {run.name: run for run in runs}
    for r, mod in enumerate(cfg.data.modality):
        for col, kind in enumerate(columns):
            ax = axes[r, col]
            run = by_name.get("joint" if kind == "joint" else f"unimodal-{mod.name}")
            if run is None or r not in run.trained:
                ax.set_visible(False)
                continue
            k = run.trained.index(r)
            tr = traces[run.name]
            title = f"{mod.name} in the joint network" if kind == "joint" else f"{mod.name} trained alone"
            if len(tr["steps"]) == 0:
                # The loss was not finite at step 0: the trace has no record to draw.
                _empty_panel(ax, title, "no record: the loss at step 0 is not finite")
                continue
            alignment = stack_alignment(tr["alignment"])
            reduced = noisy = None
            if predictions is not None and run.name in predictions:
                red = predictions[run.name].reduced
                reduced = (red.steps, red.leading_alignment[:, k])
                aware = getattr(predictions[run.name], "noise_aware", None)
                if aware is not None:
                    noisy = (aware.dynamics.steps, aware.dynamics.leading_alignment[:, k])
            _panel(ax, tr["steps"], alignment[:, k], mod.beta, cfg.model.threshold,
                   int(run.learned_step[k]), reduced, title, noisy)
            if col == 0:
                ax.set_ylabel(f"{mod.name}: beta * <w, v>")
    handles, labels = [], []
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels and not label.startswith("learned at"):
                handles.append(handle)
                labels.append(label)
    if labels:  # none when no run has a record to draw
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
                   bbox_to_anchor=(0.5, -0.02 - 0.02 * (len(labels) > 4)))
    fig.suptitle("Alignment of every neuron with its modality's signal (green: learned step)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def reduced_dynamics_figure(cfg, predictions: dict):
    """The theory's reduced dynamics of each run: leading pre-activation beta * Lambda over time."""
    fig, axes = plt.subplots(1, len(predictions), figsize=(5 * len(predictions), 3.4), squeeze=False)
    for ax, (name, pred) in zip(axes[0], predictions.items()):
        red = pred.reduced
        trained = pred.trained
        keep = _thin(red.steps)
        for k, r in enumerate(trained):
            mod = cfg.data.modality[r]
            with np.errstate(over="ignore", invalid="ignore"):
                values = _finite(mod.beta * np.asarray(red.leading_alignment)[keep, k])
            line, = ax.plot(np.asarray(red.steps)[keep], values, label=mod.name,
                            marker="o" if len(keep) == 1 else None, ms=3)
            step = int(red.learned_step[k])
            if step >= 0:
                ax.axvline(step, color=line.get_color(), ls=":", lw=1)
            aware = getattr(pred, "noise_aware", None)
            if aware is not None:  # the run's theory where it has noise or distractors
                dyn = aware.dynamics
                ax.plot(dyn.steps, mod.beta * dyn.leading_alignment[:, k], ls="-.", lw=1.0,
                        color=line.get_color(), label=f"{mod.name}, noise-aware")
        ax.axhline(cfg.model.threshold, color="grey", ls="--", lw=0.8)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(f"{name}: reduced" + (" and noise-aware" if getattr(
            pred, "noise_aware", None) is not None else "") + " dynamics", fontsize=10)
        ax.set_xlabel("GD step")
        ax.set_ylabel("beta * leading alignment")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def stack_alignment(alignment: np.ndarray) -> np.ndarray:
    """(R, K, m) or (R, K, B, m) -> (R, K, B, m)."""
    return alignment[:, :, None, :] if alignment.ndim == 3 else alignment
