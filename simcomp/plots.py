"""Figures from traces and predictions (matplotlib, no display needed).

Figures are built as plain :class:`matplotlib.figure.Figure` objects on an Agg
canvas, not through pyplot: no backend is chosen for the user, no figure is
registered anywhere, and pyplot's machinery is not imported.  Their margins
are fixed in inches (:func:`_fixed_layout`) rather than measured from the
drawn text (``tight_layout``, ``bbox_inches="tight"``), which would lay out
every tick label once more per pass; the labels the figures draw (symlog
powers of ten, steps, errors in [0, 1]) have bounded sizes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation

from .registry import has_rule

__all__ = ["alignment_figure", "reduced_dynamics_figure", "new_figure", "save_figure",
           "save_figure_atomic"]

_BANK_COLOURS = ("tab:blue", "tab:red")

_DPI = 130

# Titles sit at a fixed height above their panel (no ticks are drawn on top): an automatic
# title position would measure the x axis's tick labels on every draw.
_TITLE = {"fontsize": 10, "y": 1.0}


def new_figure(width: float, height: float) -> Figure:
    """A Figure of ``width`` x ``height`` inches with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


_SUPERSCRIPT = str.maketrans("0123456789-", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077"
                                            "\u2078\u2079\u207b")
# matplotlib's mathtext tick labels: sign, optional coefficient, base, optional exponent
_MATH_LABEL = re.compile(r"\$\\mathdefault\{(-?)(?:([0-9.]+)\\times)?([0-9]+)"
                         r"(?:\^\{(-?[0-9]+)\})?\}\$")


class _PowerFormatter(LogFormatterSciNotation):
    """matplotlib's symlog tick labels (10^-3, -10^-2, 2x10^-1, 0) as plain Unicode text.

    The same labels at the same ticks; written with superscript characters
    instead of mathtext, whose parser costs more than the rest of a figure's
    drawing.  A label of another form is passed on unchanged.
    """

    def __call__(self, x, pos=None):
        label = super().__call__(x, pos)
        match = _MATH_LABEL.fullmatch(label)
        if match is None:
            return label
        sign, coeff, base, power = match.groups()
        text = ("\u2212" if sign else "") + (f"{coeff}\u00d7" if coeff else "") + base
        return text + (power.translate(_SUPERSCRIPT) if power is not None else "")


def _symlog_y(ax) -> None:
    """A symmetric log y axis, linear within 1e-3 of zero, with plain-text power labels."""
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.yaxis.set_major_formatter(_PowerFormatter(10))
    ax.yaxis.set_minor_formatter(_PowerFormatter(10, labelOnlyBase=False))


def _fixed_layout(fig, *, left: float, right: float, top: float, bottom: float,
                  wgap: float, hgap: float, rows: int, cols: int) -> dict:
    """GridSpec keywords placing ``rows`` x ``cols`` panels with margins and gaps in inches."""
    width, height = fig.get_size_inches()
    panel_w = max(width - left - right - (cols - 1) * wgap, 0.5) / cols
    panel_h = max(height - top - bottom - (rows - 1) * hgap, 0.5) / rows
    return {"left": left / width, "right": 1 - right / width,
            "top": 1 - top / height, "bottom": bottom / height,
            "wspace": wgap / panel_w, "hspace": hgap / panel_h}


def _close(fig) -> None:
    """Release ``fig`` from pyplot if the caller made it there (simcomp's figures are not)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def save_figure(fig, path: str | Path) -> None:
    """Save and close ``fig`` (PNG, 130 dpi); the figure's own margins are kept."""
    from .interrupts import deferred

    try:
        with deferred():  # the renderer calls back into Python: a signal waits until it is done
            fig.savefig(path, dpi=_DPI, format="png")
    finally:
        _close(fig)


def save_figure_atomic(fig, path: str | Path) -> None:
    """Save and close ``fig`` through a temporary file in the same directory and a rename."""
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial.png", dir=path.parent)
    os.close(fd)
    try:
        save_figure(fig, tmp)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        try:
            os.replace(tmp, path)
        except OSError as exc:  # name the target, not the hidden temporary
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        _close(fig)
        Path(tmp).unlink(missing_ok=True)


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
    ax.set_title(title, **_TITLE)
    ax.set_xlabel("GD step")


def _panel(ax, steps, alignment, beta, threshold, learned, reduced, title,
           theory_label="theory: reduced dynamics", noisy=None):
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
                label=f"{theory_label}, leading neuron")
    if noisy is not None:  # where the run has noise or distractors (docs/theory.md section 12)
        n_steps, n_lead = noisy
        with np.errstate(over="ignore", invalid="ignore"):
            n_line = _finite(beta * np.asarray(n_lead))
        ax.plot(n_steps, n_line, color="tab:purple", lw=1.2, ls="-.", zorder=6,
                label="theory: noise-aware dynamics, leading neuron")
    ax.axhline(threshold, color="grey", lw=0.8, ls=":", label="learned threshold")
    if learned is not None and learned >= 0:
        ax.axvline(learned, color="tab:green", lw=1.2, label=f"learned at step {learned}")
    _symlog_y(ax)
    ax.set_title(title, **_TITLE)
    ax.set_xlabel("GD step")
    ax.grid(alpha=0.3)


def _error_panel(ax, runs, traces, names) -> None:
    """Test error against the step: the joint network, each modality alone, each encoder inside
    the joint network (its error alone as a classifier; it can exceed 0.5, see the README)."""
    drawn = False
    colours = [f"C{i}" for i in range(10)]
    for run in runs:
        tr = traces.get(run.name, {})
        steps = np.asarray(tr.get("steps", np.zeros(0)))
        if len(steps) == 0 or "test_error" not in tr:
            continue
        keep = _thin(steps)
        marker = "o" if len(keep) == 1 else None
        if run.name == "joint":
            ax.plot(steps[keep], _finite(np.asarray(tr["test_error"])[keep]), color="black", lw=2,
                    marker=marker, ms=4, label="joint network")
            per = np.asarray(tr.get("modality_test_error", np.zeros((len(steps), 0))))
            for k, r in enumerate(run.trained):
                if per.ndim == 2 and per.shape[1] > k:
                    ax.plot(steps[keep], _finite(per[keep, k]), color=colours[r % 10], lw=1.2,
                            ls="--", marker=marker, ms=3,
                            label=f"{names[r]}'s encoder inside the joint network")
        else:
            r = run.trained[0]
            ax.plot(steps[keep], _finite(np.asarray(tr["test_error"])[keep]), color=colours[r % 10],
                    lw=1.6, marker=marker, ms=3, label=f"{names[r]} trained alone")
        drawn = True
    ax.set_title("test error against the step", **_TITLE)
    ax.set_xlabel("GD step")
    ax.set_ylabel("test error")
    ax.grid(alpha=0.3)
    if drawn:
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=8, loc="upper right", ncol=2)
    else:
        ax.text(0.5, 0.5, "no test error recorded", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)


def alignment_figure(cfg, runs, traces, predictions=None, theory=None):
    """The run's figure: per-neuron alignment trajectories and test error against the step.

    A row per modality, joint and uni-modal side by side, and a last row with
    the test errors (joint, each modality alone, each encoder inside the joint
    network).

    Parameters
    ----------
    cfg : Config
    runs : list of RunResult-like
        Objects with ``name``, ``trained`` and ``learned_step``.
    traces : dict
        Run name -> trace arrays (``load_trace`` layout).
    predictions : dict, optional
        Run name -> theory.Prediction: its reduced dynamics is drawn where
        ``theory`` has no curve for the run.
    theory : dict, optional
        Run name -> ``(label, steps, leading_alignment (R, K_run))``: the
        theory curve closest to the run (``simcomp.api.theory_curves``), drawn
        with its label.
    """
    names = cfg.names
    columns = []
    if any(run.name == "joint" for run in runs):
        columns.append("joint")
    if any(run.name.startswith("unimodal-") for run in runs):
        columns.append("alone")
    columns = columns or ["joint"]
    rows, cols = len(names) + 1, len(columns)
    width, height = 5.2 * max(2, cols), 2.9 * len(names) + 3.2
    fig = new_figure(width, height)
    grid = fig.add_gridspec(rows, cols, height_ratios=[1.0] * len(names) + [1.15])
    axes = np.empty((len(names), cols), dtype=object)
    for r in range(len(names)):
        for col in range(cols):
            axes[r, col] = fig.add_subplot(grid[r, col],
                                           sharex=axes[0, 0] if r or col else None)
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
            title = (f"{mod.name} in the joint network{_method_note(cfg)}" if kind == "joint"
                     else f"{mod.name} trained alone")
            if len(tr["steps"]) == 0:
                # The loss was not finite at step 0: the trace has no record to draw.
                _empty_panel(ax, title, "no record: the loss at step 0 is not finite")
                continue
            alignment = stack_alignment(tr["alignment"])
            reduced = noisy = None
            label = "theory: reduced dynamics"
            if theory is not None and run.name in theory:
                label, t_steps, t_lead = theory[run.name]
                reduced = (t_steps, np.asarray(t_lead)[:, k])
            elif predictions is not None and run.name in predictions:
                red = predictions[run.name].reduced
                reduced = (red.steps, red.leading_alignment[:, k])
                aware = getattr(predictions[run.name], "noise_aware", None)
                if aware is not None:
                    noisy = (aware.dynamics.steps, aware.dynamics.leading_alignment[:, k])
            _panel(ax, tr["steps"], alignment[:, k], mod.beta, cfg.model.threshold,
                   int(run.learned_step[k]), reduced, title, label, noisy)
            if col == 0:
                ax.set_ylabel(f"{mod.name}: beta * <w, v>")
    handles, labels = [], []
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels and not label.startswith("learned at"):
                handles.append(handle)
                labels.append(label)
    _error_panel(fig.add_subplot(grid[len(names), :]), runs, traces, names)
    # The shared legend gets its own strip below the panels, a line per four entries.
    legend_rows = -(-len(labels) // 4)
    legend_height = 0.12 + 0.2 * legend_rows if labels else 0.0
    height += legend_height
    fig.set_size_inches(width, height)
    if labels:  # none when no run has a record to draw
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
                   bbox_to_anchor=(0.5, 0.06 / height))
    fig.suptitle("Alignment of every neuron with its modality's signal (green: learned step), "
                 f"and test error{_method_note(cfg, ' -- joint network trained with ')}",
                 fontsize=11, y=1 - 0.12 / height, va="top")
    # Margins in inches: the y label and symlog tick labels (e.g. -10^-1) on the left, the
    # title above, the tick labels, x label and next title between rows.
    grid.update(**_fixed_layout(fig, left=0.95, right=0.2, top=0.75,
                                bottom=0.62 + legend_height, wgap=0.75, hgap=0.82,
                                rows=rows, cols=cols))
    for ax in fig.axes:  # GridSpec.update moves only pyplot's axes: place these anew
        ax.set_subplotspec(ax.get_subplotspec())
    return fig


def _method_note(cfg, prefix: str = ", method ") -> str:
    """``prefix`` + the training method's name when the joint run uses one, else ""."""
    name = cfg.method.name
    return "" if name == "none" else f"{prefix}{name}"


def reduced_dynamics_figure(cfg, predictions: dict):
    """The theory's reduced dynamics of each run: leading pre-activation beta * Lambda over time."""
    count = max(1, len(predictions))
    fig = new_figure(5 * count, 3.4)
    grid = fig.add_gridspec(1, count, **_fixed_layout(
        fig, left=0.85, right=0.2, top=0.4, bottom=0.55, wgap=0.9, hgap=0.0, rows=1,
        cols=count))
    for col, (name, pred) in enumerate(predictions.items()):
        ax = fig.add_subplot(grid[0, col])
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
            method = getattr(pred, "method", None)
            if method is not None and has_rule(method.method):
                dyn = method.dynamics  # the run is trained with the method
                with np.errstate(over="ignore", invalid="ignore"):
                    values = _finite(mod.beta * np.asarray(dyn.leading_alignment)[:, k])
                ax.plot(dyn.steps, values, ls=":", lw=1.4, color=line.get_color(),
                        label=f"{mod.name}, {method.method}")
        ax.axhline(cfg.model.threshold, color="grey", ls="--", lw=0.8)
        _symlog_y(ax)
        method = getattr(pred, "method", None)
        ax.set_title(f"{name}: reduced" + (" and noise-aware" if getattr(
            pred, "noise_aware", None) is not None else "") + " dynamics"
            + (f", method {method.method}" if method is not None
               and has_rule(method.method) else ""), **_TITLE)
        ax.set_xlabel("GD step")
        ax.set_ylabel("beta * leading alignment")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def stack_alignment(alignment: np.ndarray) -> np.ndarray:
    """(R, K, m) or (R, K, B, m) -> (R, K, B, m)."""
    return alignment[:, :, None, :] if alignment.ndim == 3 else alignment
