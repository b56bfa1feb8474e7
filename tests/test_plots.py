"""The figures: drawn without pyplot, every label inside the image and clear of the others,
symlog tick labels that say what matplotlib's own would say, imports kept off other paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import simcomp

ROOT = Path(simcomp.__file__).parent.parent
SMALL = {"data.n_train": 64, "data.n_test": 64, "data.modality.0.dim": 8,
         "data.modality.1.dim": 6, "model.width": 3, "train.steps": 40, "train.trace_every": 10}


def _run(code: str, **env) -> str:
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True, env={**os.environ, **env})
    return out.stdout.strip()


def test_the_cli_imports_neither_matplotlib_nor_numba():
    """`simcomp --help`, `config`, a refused input: no figure library, no compiler loaded."""
    code = ("import sys, simcomp.cli; simcomp.cli.get_parser(); "
            "print([m for m in ('matplotlib', 'numba', 'simcomp.plots', "
            "'simcomp.train', 'simcomp.calibrate') if m in sys.modules])")
    assert _run(code) == "[]"


def test_calibrates_method_choices_are_the_methods_calibrate_knows():
    from simcomp.calibrate import METHOD_PARAMS
    from simcomp.cli import get_parser

    sub = next(a for a in get_parser()._actions if a.dest == "runner" or a.choices
               and "calibrate" in a.choices).choices["calibrate"]
    method = next(a for a in sub._actions if a.dest == "methods")
    assert list(method.choices) == list(METHOD_PARAMS)


def test_figures_leave_pyplot_and_the_backend_alone():
    """A user's backend stays theirs, and no figure is left registered in pyplot."""
    code = ("import sys, os, tempfile, matplotlib; "
            "from simcomp.plots import new_figure, save_figure; "
            "fig = new_figure(2, 2); fig.add_subplot().plot([0, 1]); "
            "d = tempfile.mkdtemp(); save_figure(fig, os.path.join(d, 'f.png')); "
            "print('matplotlib.pyplot' in sys.modules, "
            "os.path.getsize(os.path.join(d, 'f.png')) > 1000, matplotlib.get_backend())")
    assert _run(code, MPLBACKEND="svg") == "False True svg"


@pytest.mark.parametrize("value, label", [
    (0.0, "0"), (1e-3, "10\u207b\u00b3"), (-1e-2, "\u221210\u207b\u00b2"), (1.0, "10\u2070"),
    (10.0, "10\u00b9"), (1e100, "10\u00b9\u2070\u2070"), (-1e-1, "\u221210\u207b\u00b9"),
])
def test_power_labels_are_matplotlibs_labels_in_plain_text(value, label):
    from matplotlib.ticker import LogFormatterSciNotation

    from simcomp.plots import _PowerFormatter

    assert _PowerFormatter(10)(value) == label
    # the same number as matplotlib's mathtext label, only written differently
    math = LogFormatterSciNotation(10)(value)
    plain = math.replace("$\\mathdefault{", "").replace("}$", "").replace("^{", "").replace("-", "")
    assert label.replace("\u2212", "").translate(
        str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b",
                      "0123456789-")).replace("-", "") == plain.replace("}", "")


def test_a_non_decade_label_keeps_its_coefficient():
    from matplotlib.ticker import LogFormatterSciNotation

    from simcomp.plots import _PowerFormatter

    fmt, ref = _PowerFormatter(10, labelOnlyBase=False), LogFormatterSciNotation(
        10, labelOnlyBase=False)
    assert ref(2e-3) == "$\\mathdefault{2\\times10^{-3}}$"
    assert fmt(2e-3) == "2\u00d710\u207b\u00b3"
    assert fmt(1e-3) == "10\u207b\u00b3"


def _boxes(fig):
    """Every visible panel's full extent (ticks, labels, title, legend), the suptitle and the
    figure legend, in pixels, after a draw."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(ax.get_title() or "panel", ax.get_tightbbox(renderer))
             for ax in fig.axes if ax.get_visible()]
    if fig._suptitle is not None:
        boxes.append(("suptitle", fig._suptitle.get_window_extent(renderer)))
    boxes += [("legend", legend.get_window_extent(renderer)) for legend in fig.legends]
    return boxes


def _check_layout(fig):
    width, height = fig.canvas.get_width_height()
    boxes = _boxes(fig)
    for name, box in boxes:
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, \
            f"{name!r} is cut off: {box} in a {width} x {height} image"
    for i, (name_a, a) in enumerate(boxes):
        for name_b, b in boxes[i + 1:]:
            assert not a.overlaps(b), f"{name_a!r} overlaps {name_b!r}"


@pytest.mark.parametrize("overrides", [
    {},                                                     # two modalities, joint and alone
    {"data.modality.2.dim": 5},                             # a third modality: a third row
    {"train.mode": "joint"},                                # one column
    {"model.learner": "symmetric", "train.mode": "unimodal"},
], ids=["default", "three-modalities", "joint-only", "unimodal-only"])
def test_the_run_figure_keeps_every_label_inside_and_apart(overrides):
    result = simcomp.simulate(simcomp.build_config(overrides={**SMALL, **overrides}))
    fig = result.figure()
    _check_layout(fig)
    titles = {ax.get_title() for ax in fig.axes if ax.get_visible()}
    assert "test error against the step" in titles
    names = result.config.names
    runs = {run.name for run in result.runs}
    for name in names:
        if "joint" in runs:
            assert f"{name} in the joint network" in titles
        if f"unimodal-{name}" in runs:
            assert f"{name} trained alone" in titles
    # the symlog panels carry plain-text powers of ten, no mathtext
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert any("10" in label for label in labels)
    assert not any("$" in label for label in labels)


def test_the_reduced_dynamics_figure_keeps_every_label_inside_and_apart():
    from simcomp.plots import reduced_dynamics_figure

    result = simcomp.simulate(simcomp.build_config(overrides=SMALL))
    fig = reduced_dynamics_figure(result.config, result.predictions)
    _check_layout(fig)
    assert len(fig.axes) == len(result.predictions)


def test_the_legend_strip_grows_with_its_entries():
    """Up to four entries a line: more theory curves make the figure taller, not the panels
    smaller or the legend cut off."""
    from types import SimpleNamespace

    from simcomp.plots import alignment_figure

    cfg = simcomp.build_config(overrides=SMALL)
    runs = [SimpleNamespace(name="joint", trained=[0, 1], learned_step=np.array([2, -1]))]
    steps = np.arange(5) * 10
    traces = {"joint": {"steps": steps, "alignment": np.full((5, 2, 2, 3), 0.01),
                        "test_error": np.linspace(0.5, 0.1, 5)}}
    red = SimpleNamespace(steps=steps, learned_step=np.array([2, -1]),
                          leading_alignment=np.full((5, 2), 0.02))
    aware = SimpleNamespace(dynamics=SimpleNamespace(steps=steps,
                                                     leading_alignment=np.full((5, 2), 0.03)))
    plain = alignment_figure(cfg, runs, traces,
                             {"joint": SimpleNamespace(trained=[0, 1], reduced=red)})
    more = alignment_figure(cfg, runs, traces, {"joint": SimpleNamespace(
        trained=[0, 1], reduced=red, noise_aware=aware)})
    assert len(plain.legends[0].get_texts()) == 4 and len(more.legends[0].get_texts()) == 5
    assert more.get_size_inches()[1] > plain.get_size_inches()[1]
    for fig in (plain, more):
        _check_layout(fig)


def test_the_widest_labels_still_fit():
    """Alignments up to 1e99 of either sign (the largest drawn) and a million steps: the
    longest tick labels the figure can get stay inside and apart."""
    from types import SimpleNamespace

    from simcomp.plots import alignment_figure

    cfg = simcomp.build_config(overrides={**SMALL, "data.modality.2.dim": 5})
    runs = [SimpleNamespace(name="joint", trained=[0, 1, 2], learned_step=np.array([2, -1, 7])),
            SimpleNamespace(name="unimodal-A", trained=[0], learned_step=np.array([-1]))]
    steps = np.arange(5) * 250_000
    wide = np.array([-1e99, -1e-5, 0.0, 1e-5, 1e99])
    traces = {name: {"steps": steps,
                     "alignment": np.broadcast_to(wide[:, None, None, None], (5, K, 2, 3)).copy(),
                     "test_error": np.linspace(0.5, 0.1, 5)}
              for name, K in (("joint", 3), ("unimodal-A", 1))}
    fig = alignment_figure(cfg, runs, traces)
    _check_layout(fig)
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert any(label.startswith("\u221210") and len(label) == 5 for label in labels), labels
