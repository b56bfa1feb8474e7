"""Phase diagrams of a sweep: measured against predicted over two grid axes.

From a complete sweep directory (``sweep.json`` and ``results.csv``) this
draws, over two numeric grid axes ``x`` and ``y`` (default: the first two),
three panels per value of the remaining axes:

* the measured winner of the joint network (the modality most seeds learn
  first), with the theory's winner boundary on top: the zero line of the
  mean winner coordinate ln(kappa_2 Gamma_2^(q-2) / (kappa_1 Gamma_1^(q-2)))
  for two modalities (docs/model.md section 5.3), else the edges of the
  predicted winner;
* the fraction of seeds in which the joint network learns every modality by
  the horizon, with the theory's co-learning boundary on top (where half the
  seeds are predicted to learn every modality by the horizon: by the run's
  theory, or, on a row trained with a method, by the method's dynamics);
* the mean performance gap (joint minus best uni-modal test error), with
  both boundaries on top (where every modality is learned, the gap closes).

Everything is read from results.csv, which holds every modality's settings
and predictions, so the directory alone suffices.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .registry import has_rule

__all__ = ["PlotError", "NoAxes", "read_sweep", "numeric_axes", "phase_figure",
           "phase_figures", "typed_cell", "winner_colours"]


class PlotError(ValueError):
    """A directory or axis that cannot be drawn; the message says why."""


class NoAxes(PlotError):
    """The sweep has no numeric grid axis to draw over."""


def typed_cell(text: str) -> Any:
    """A results.csv cell as a Python value: '' None, integers int, numbers float, else str."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_sweep(path: str | Path, columns=None) -> tuple[dict, list[dict]]:
    """``(sweep.json, rows of results.csv with typed values)`` of a complete sweep directory.

    ``columns``: keep only these columns, or a function of sweep.json giving
    them (a results.csv has about 50 columns per modality; typing every cell
    of a large sweep takes most of the time).

    Both files are checked against what simcomp writes (:class:`PlotError`
    naming the damaged file), so that drawing never fails deeper down.
    """
    import csv

    from .sweep import FORMAT_VERSION, read_results

    root = Path(path)
    sweep_json, results = root / "sweep.json", root / "results.csv"
    try:
        meta = json.loads(sweep_json.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise PlotError(f"{str(root)!r} is not a sweep directory (no readable sweep.json)") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise PlotError(f"{str(root)!r} is not a sweep directory of this simcomp "
                        f"(sweep.json format is not {FORMAT_VERSION!r})")
    _check_definition(meta, sweep_json)
    if not results.is_file():
        raise PlotError(f"the sweep in {str(root)!r} is not complete ({str(results)!r} is not a "
                        f"file); rerun the same simcomp sweep command to finish it")
    try:
        raw = read_results(results)
    except (OSError, ValueError, csv.Error) as exc:
        raise PlotError(f"{str(results)!r} is damaged: it cannot be read as UTF-8 CSV "
                        f"({exc.__class__.__name__}); rerun the same simcomp sweep command to "
                        f"write it again from the run records") from None
    for number, row in enumerate(raw, start=2):
        if None in row or None in row.values():  # csv.DictReader's marks of a ragged line
            raise _damaged(results, f"line {number} does not have a cell per column")
    if callable(columns):
        columns = columns(meta)
    if columns is None:
        rows = [{key: typed_cell(value) for key, value in row.items()} for row in raw]
    else:
        wanted = list(columns)
        rows = [{key: typed_cell(row[key]) for key in wanted if key in row} for row in raw]
    _check_rows(rows, meta, results)
    return meta, rows


def _damaged(path: Path, why: str) -> PlotError:
    return PlotError(f"{str(path)!r} is damaged or was not written by simcomp: {why}")


def _check_definition(meta: dict, path: Path) -> None:
    """The parts of sweep.json that the figures read: the grid axes, the seeds, the modalities."""
    definition = meta.get("definition")
    if not isinstance(definition, dict):
        raise _damaged(path, "it has no 'definition' object")
    grids = definition.get("grids")
    if not isinstance(grids, list) or not all(
            isinstance(axis, dict) and isinstance(axis.get("key"), str)
            and isinstance(axis.get("values"), list) and axis["values"] for axis in grids):
        raise _damaged(path, "its 'definition.grids' is not a list of axes, each with a 'key' "
                       "(text) and non-empty 'values'")
    keys = [axis["key"] for axis in grids]
    if len(set(keys)) != len(keys):
        raise _damaged(path, "a grid axis appears twice")
    seeds = definition.get("seeds")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise _damaged(path, "its 'definition.seeds' is not a positive integer")
    try:
        modalities = definition["base_config"]["data"]["modality"]
        names = [m["name"] for m in modalities]
    except (KeyError, TypeError, IndexError):
        names = None
    if not names or not all(isinstance(n, str) for n in names):
        raise _damaged(path, "its 'definition.base_config.data.modality' does not name the "
                       "modalities")


def _check_rows(rows: list[dict], meta: dict, path: Path) -> None:
    """results.csv: a row per run, every grid axis a column, numbers where numbers are read."""
    if not rows:
        raise _damaged(path, "it has no rows")
    columns = set(rows[0])
    missing = [axis["key"] for axis in meta["definition"]["grids"] if axis["key"] not in columns]
    if missing:
        raise _damaged(path, f"it has no column {missing[0]!r} (a grid axis of sweep.json)")
    for number, row in enumerate(rows, start=2):
        for key in ("gap", "winner_coordinate_joint"):
            if row.get(key) is not None and not _is_number(row[key]):
                raise _damaged(path, f"line {number}: {key} is {row[key]!r}, not a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numeric_axes(meta: dict) -> list[dict]:
    """The grid axes of sweep.json whose values are all numbers (in axis order)."""
    return [axis for axis in meta["definition"]["grids"]
            if all(_is_number(v) for v in axis["values"])]


def _choose(meta: dict, x: str | None, y: str | None) -> tuple[dict, dict | None, list[dict]]:
    grids = meta["definition"]["grids"]
    keys = [axis["key"] for axis in grids]
    numeric = numeric_axes(meta)
    for option, key in (("--x", x), ("--y", y)):
        if key is None:
            continue
        if key not in keys:
            raise PlotError(f"{option} {key}: not a grid axis of this sweep; its axes are "
                            + (", ".join(keys) if keys else "none"))
        if key not in [a["key"] for a in numeric]:
            raise PlotError(f"{option} {key}: the axis has values that are not numbers; "
                            f"numeric axes: {', '.join(a['key'] for a in numeric) or 'none'}")
    if x is not None and x == y:
        raise PlotError(f"--x and --y are both {x}; choose two different grid axes")
    free = [a for a in numeric if a["key"] not in (x, y)]
    if x is None:
        if not free:
            raise NoAxes("phase diagrams need a numeric grid axis; this sweep has "
                         + ("none" if not keys else "only " + ", ".join(keys)))
        x = free.pop(0)["key"]
    if y is None and free:
        y = free.pop(0)["key"]
    by_key = {a["key"]: a for a in grids}
    rest = [a for a in grids if a["key"] not in (x, y)]
    return by_key[x], (by_key[y] if y is not None else None), rest


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0) or a == b
    return a == b


def _mean(values: list) -> float:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(values) / len(values) if values else math.nan


def _predicted_colearned(row: dict, names: Sequence[str]) -> bool | None:
    """Whether the theory learns every modality by T in this row's joint run: the method's
    prediction on a row trained with a method (ume trains no joint network), else plain
    training's; None where the row has neither."""
    method = row.get("method_joint")
    if method is not None and has_rule(method) and row.get("method_predicted_co_learned_joint") \
            is not None:
        return bool(row["method_predicted_co_learned_joint"])
    if row.get(f"predicted_learned_by_horizon_joint_{names[0]}") is None:
        return None
    return all(row.get(f"predicted_learned_by_horizon_joint_{m}") for m in names)


def _axis_index(values: Sequence) -> Any:
    """A function: a cell value -> the index of the equal axis value (None: not on the axis).

    Exact values are found in a dict; a number off by rounding (a value read
    back from results.csv) falls back to :func:`_same` over the axis values.
    """
    exact: dict = {}
    for i, v in enumerate(values):
        exact.setdefault((type(v) is bool, v), i)

    def index(value: Any) -> int | None:
        try:
            hit = exact.get((type(value) is bool, value))
        except TypeError:  # an unhashable cell: compared one by one
            hit = None
        if hit is not None:
            return hit
        return next((i for i, v in enumerate(values) if _same(value, v)), None)

    return index


def _cells(rows: list[dict], xa: dict, ya: dict | None, names: Sequence[str]) -> dict:
    """Per (x, y) cell: the measured and predicted quantities, as (nx, ny) arrays."""
    xs, ys = xa["values"], (ya["values"] if ya is not None else [None])
    shape = (len(xs), len(ys))
    out = {key: np.full(shape, np.nan) for key in
           ("winner", "colearned", "gap", "coordinate", "predicted_winner", "predicted_colearned")}
    index = {name: i for i, name in enumerate(names)}
    x_of = _axis_index(xs)
    y_of = _axis_index(ys) if ya is not None else (lambda value: 0)
    groups: dict = {}
    for r in rows:  # one pass: each row is looked up on each axis once
        i = x_of(r.get(xa["key"]))
        j = y_of(r.get(ya["key"])) if ya is not None else 0
        if i is not None and j is not None:
            groups.setdefault((i, j), []).append(r)
    for (i, j), cell in groups.items():
        winners = [r.get("winner_joint") for r in cell if r.get("winner_joint") is not None]
        if winners:
            top = max(sorted(set(winners), key=lambda w: index.get(w, 99)),
                      key=winners.count)
            out["winner"][i, j] = index.get(top, math.nan)
        else:
            out["winner"][i, j] = -1  # no modality learned on most seeds
        learned = [all(r.get(f"learned_by_horizon_joint_{m}") for m in names) for r in cell
                   if r.get(f"learned_by_horizon_joint_{names[0]}") is not None]
        out["colearned"][i, j] = _mean(learned)
        predicted = [_predicted_colearned(r, names) for r in cell]
        out["predicted_colearned"][i, j] = _mean([p for p in predicted if p is not None])
        out["gap"][i, j] = _mean([r.get("gap") for r in cell])
        out["coordinate"][i, j] = _mean([r.get("winner_coordinate_joint") for r in cell])
        pw = [index[r["predicted_winner_joint"]] for r in cell
              if r.get("predicted_winner_joint") in index]
        out["predicted_winner"][i, j] = _mean(pw)
    return out


def _ticks(ax, axis: dict | None, which: str) -> None:
    if axis is None:
        getattr(ax, f"set_{which}ticks")([])
        return
    values = axis["values"]
    step = max(1, len(values) // 8)
    positions = list(range(0, len(values), step))
    getattr(ax, f"set_{which}ticks")(positions)
    getattr(ax, f"set_{which}ticklabels")([f"{values[p]:g}" for p in positions], fontsize=8)
    getattr(ax, f"set_{which}label")(axis["key"], fontsize=9)


def _boundary(ax, values: np.ndarray, level: float, style: dict, label: str, handles: list) -> None:
    """Draw the contour of ``values`` at ``level`` (needs at least 2 x 2 finite cells)."""
    from matplotlib.lines import Line2D

    z = np.ma.masked_invalid(values.T)
    if z.shape[0] < 2 or z.shape[1] < 2 or z.count() < 4 or not (z.min() < level < z.max()):
        return
    ax.contour(np.arange(values.shape[0]), np.arange(values.shape[1]), z, levels=[level],
               colors=style["color"], linestyles=style["ls"], linewidths=1.6)
    if label not in [h.get_label() for h in handles]:
        handles.append(Line2D([], [], color=style["color"], ls=style["ls"], lw=1.6, label=label))


def winner_colours(count: int) -> list:
    """``count`` distinct colours of the winner panel, one per modality (up to 18).

    tab10 first (its colours clip at the tenth), then Dark2's eight, which
    differ from every tab10 colour.
    """
    from matplotlib import colormaps

    palette = [colormaps["tab10"](i) for i in range(10)] + \
        [colormaps["Dark2"](i) for i in range(8)]
    if count > len(palette):  # beyond the 16 modalities a config may have: evenly spaced hues
        palette += [colormaps["hsv"](i / (count - len(palette)))
                    for i in range(count - len(palette))]
    return palette[:count]


_WINNER_LINE = {"color": "black", "ls": "--"}
_COLEARN_LINE = {"color": "magenta", "ls": ":"}


def phase_figure(meta: dict, rows: list[dict], x: str | None = None, y: str | None = None):
    """The phase-diagram figure of a sweep (see the module docstring); returns the Figure."""
    from matplotlib import colors

    from .plots import new_figure

    xa, ya, rest = _choose(meta, x, y)
    names = [m["name"] for m in meta["definition"]["base_config"]["data"]["modality"]]
    # one row of panels per combination of the other axes' values (at most 6 drawn)
    facets: list[tuple] = [()]
    for axis in rest:
        facets = [f + ((axis["key"], v),) for f in facets for v in axis["values"]]
    shown = facets[:6]
    fig = new_figure(14, 3.9 * len(shown) + 0.6)
    axes = fig.subplots(len(shown), 3, squeeze=False)
    winner_cmap = colors.ListedColormap(["lightgrey"] + winner_colours(len(names)))
    handles: list = []
    for f, facet in enumerate(shown):
        sub = [r for r in rows if all(_same(r.get(k), v) for k, v in facet)]
        cells = _cells(sub, xa, ya, names)
        where = ", ".join(f"{k}={v:g}" if _is_number(v) else f"{k}={v}" for k, v in facet)
        suffix = f"\n({where})" if where else ""
        ax = axes[f, 0]
        img = ax.imshow(np.ma.masked_invalid(cells["winner"].T), origin="lower", aspect="auto",
                        cmap=winner_cmap, vmin=-1.5, vmax=len(names) - 0.5,
                        interpolation="nearest")
        cbar = fig.colorbar(img, ax=ax, ticks=range(-1, len(names)))
        cbar.ax.set_yticklabels(["none"] + names, fontsize=8)
        ax.set_title("measured winner (joint, most seeds)" + suffix, fontsize=10)
        if len(names) == 2:
            _boundary(ax, cells["coordinate"], 0.0, _WINNER_LINE,
                      "theory: winner boundary (winner coordinate 0)", handles)
        else:
            for level in np.arange(len(names) - 1) + 0.5:
                _boundary(ax, cells["predicted_winner"], level, _WINNER_LINE,
                          "theory: winner boundary (predicted winner changes)", handles)
        ax = axes[f, 1]
        img = ax.imshow(np.ma.masked_invalid(cells["colearned"].T), origin="lower", aspect="auto",
                        cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(img, ax=ax)
        ax.set_title("fraction of seeds: every modality learned by T" + suffix, fontsize=10)
        _boundary(ax, cells["predicted_colearned"], 0.5, _COLEARN_LINE,
                  "theory: co-learning boundary (half the seeds learn all by T)", handles)
        ax = axes[f, 2]
        gap = cells["gap"]
        span = np.nanmax(np.abs(gap)) if np.isfinite(gap).any() else 1.0
        span = span if span > 0 else 1.0
        img = ax.imshow(np.ma.masked_invalid(gap.T), origin="lower", aspect="auto",
                        cmap="coolwarm", vmin=-span, vmax=span, interpolation="nearest")
        fig.colorbar(img, ax=ax)
        ax.set_title("mean gap: joint minus best uni-modal test error" + suffix, fontsize=10)
        if len(names) == 2:
            _boundary(ax, cells["coordinate"], 0.0, _WINNER_LINE,
                      "theory: winner boundary (winner coordinate 0)", handles)
        _boundary(ax, cells["predicted_colearned"], 0.5, _COLEARN_LINE,
                  "theory: co-learning boundary (half the seeds learn all by T)", handles)
        for ax in axes[f]:
            _ticks(ax, xa, "x")
            _ticks(ax, ya, "y")
    title = f"{len(rows)} runs, {meta['definition']['seeds']} seed(s) per point"
    if len(facets) > len(shown):
        title += f"; the first {len(shown)} of {len(facets)} values of the other axes shown"
    fig.suptitle(title, fontsize=11)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if handles else 0, 1, 0.96))
    return fig


def _figure_columns(meta: dict) -> list[str] | None:
    """The results.csv columns :func:`phase_figure` reads (None: all of them)."""
    try:
        names = [m["name"] for m in meta["definition"]["base_config"]["data"]["modality"]]
        keys = [axis["key"] for axis in meta["definition"]["grids"]]
    except (KeyError, TypeError):
        return None  # a damaged sweep.json: read everything, the checks say what is wrong
    per_mod = [f"{prefix}learned_by_horizon_joint_{m}" for m in names
               for prefix in ("", "predicted_")]
    return keys + ["winner_joint", "predicted_winner_joint", "gap", "winner_coordinate_joint",
                   "method_joint", "method_predicted_co_learned_joint"] + per_mod


def phase_figures(path: str | Path, x: str | None = None, y: str | None = None,
                  out: str | Path | None = None) -> list[Path]:
    """Draw a sweep's phase diagrams into ``out`` (default ``path/figures/phase.png``).

    Written to a temporary file and renamed.  Returns the files written.
    """
    from .plots import save_figure_atomic

    meta, rows = read_sweep(path, columns=_figure_columns)
    fig = phase_figure(meta, rows, x, y)
    target = Path(out) if out is not None else Path(path) / "figures" / "phase.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_figure_atomic(fig, target)
    return [target]
