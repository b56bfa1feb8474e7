"""One function owns a run's prediction: ``simcomp.predict`` equals ``simcomp theory --json``
for every training method, and the figures draw the method's predicted dynamics."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import simcomp
from simcomp.cli import main
from simcomp.method_config import METHODS, MethodNoOpWarning
from simcomp.registry import REGISTRY

SMALL = ["data.n_train=96", "data.n_test=200", "data.modality.0.dim=8", "data.modality.1.dim=8",
         "model.width=3", "train.steps=80", "train.trace_every=20", "train.threads=1"]


@pytest.mark.parametrize("method", [m for m in METHODS if not REGISTRY[m].needs_trainable_head])
def test_predict_equals_theory_json(method, capsys):
    sets = SMALL + [f"method.name={method}"]
    assert main(["theory", "--json"] + [f"--set={s}" for s in sets]) == 0
    printed = json.loads(capsys.readouterr().out)
    with warnings.catch_warnings():  # dropout's and lr_scale's defaults do nothing (warned)
        warnings.simplefilter("ignore", MethodNoOpWarning)
        pred = simcomp.predict(simcomp.build_config(overrides=sets))
    assert pred.to_json() == printed
    joint = pred["joint"]
    assert joint["method_prediction"]["method"] == method
    assert printed["comparison"]["method_predicted_gap"] is not None
    if method == "none":  # plain training's prediction, shared
        assert joint["method_prediction"]["predicted_learned_step"] == \
            joint["reduced_learned_step"]
    assert len(repr(pred)) < 600


def test_method_none_shares_plain_trainings_prediction():
    from simcomp.theory.mitigation import method_dynamics

    cfg = simcomp.build_config(overrides=SMALL)
    prediction = simcomp.predict(cfg)["joint"]["prediction"]
    # the method's dynamics is plain training's reduced dynamics, the same object
    assert prediction.method.dynamics.alignment is prediction.reduced.alignment
    # and it is what the method recursion gives for ``none``
    from simcomp.data import empirical_patterns, make_experiment_data

    data = make_experiment_data(cfg)
    a0 = np.stack([np.einsum("bmd,d->bm", data.init[r], data.signals[r]) for r in (0, 1)])
    shared = prediction.method
    m = cfg.model
    fresh = method_dynamics(a0, [mod.beta for mod in cfg.data.modality],
                            *empirical_patterns(data.train, [0, 1]), m.q, m.rho, cfg.train.lr,
                            cfg.train.steps, "none", learner=m.learner, activation=m.activation,
                            threshold=m.threshold, record_every=cfg.train.trace_every)
    np.testing.assert_array_equal(shared.predicted_learned_step, fresh.learned_step)
    np.testing.assert_allclose(shared.dynamics.alignment, fresh.alignment, rtol=1e-9, atol=1e-14)


@pytest.mark.slow
def test_figure_draws_the_methods_dynamics_for_aux_on_the_default():
    """The default experiment under aux: the joint panel's theory curve is aux's dynamics
    (B is learned under aux, not under plain training), and the title names the method."""
    cfg = simcomp.build_config(overrides={"method.name": "aux", "train.mode": "joint"})
    result = simcomp.simulate(cfg)
    pred = result.predictions["joint"]
    aux = pred.method.dynamics
    plain = pred.reduced
    assert aux.learned_step[1] >= 0 > plain.learned_step[1]  # the curves must differ
    fig = result.figure()
    assert "aux" in fig._suptitle.get_text()
    panels = {ax.get_title(): ax for ax in fig.axes}
    ax = panels["B in the joint network, method aux"]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("theory:")]
    assert "aux" in line.get_label()
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    beta = cfg.data.modality[1].beta
    expect = dict(zip(aux.steps.tolist(), beta * aux.leading_alignment[:, 1]))
    np.testing.assert_allclose(y, [expect[int(s)] for s in x], rtol=1e-12)
    assert y[-1] >= cfg.model.threshold  # it follows aux's dynamics to B's learning


def test_umt_at_its_published_default_diverges_with_exit_1(tmp_path, capsys):
    out = tmp_path / "umt"
    sets = SMALL + ["method.name=umt", "train.mode=joint"]  # distill_weight 10, the default
    assert main(["simulate", "--quiet", "--out", str(out)] + [f"--set={s}" for s in sets]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "umt" in err[0] and "distill_weight 10" in err[0] and "diverged" in err[0]
    summary = json.loads((out / "summary.json").read_text())
    joint = summary["runs"]["joint"]
    assert joint["status"] == "diverged" and joint["failed_step"] is not None
    assert joint["method_predicted_diverged"] is True
    with np.load(out / "joint" / "trace.npz") as trace:
        assert len(trace["steps"]) > 0
    # a milder weight trains without blowing up
    tame = simcomp.simulate(simcomp.build_config(overrides=sets + ["method.distill_weight=0.1"]))
    assert tame.summary["runs"]["joint"]["status"] == "ok"


@pytest.mark.parametrize("sets, word", [
    (["method.name=dropout"], "method.drop 0"),  # dropout's default drops nothing
    (["method.name=lr_scale", "method.lr_scale=[1, 1]"], "method.lr_scale 1"),
    (["method.name=umt", "method.distill_weight=0"], "distill_weight 0"),
])
def test_a_method_set_to_do_nothing_is_warned_about(sets, word, capsys):
    from simcomp.method_config import MethodNoOpWarning

    cfg = simcomp.build_config(overrides=SMALL + sets)
    with pytest.warns(MethodNoOpWarning, match=word):
        simcomp.predict(cfg)
    assert main(["theory"] + [f"--set={s}" for s in SMALL + sets]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and word in err and "Warning:" not in err


def test_an_active_method_is_not_warned_about():
    import warnings

    cfg = simcomp.build_config(overrides=SMALL + ["method.name=dropout", "method.drop=[0.3, 0]"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cfg.method.noop_reason() is None


def test_phase_diagram_colearning_boundary_is_the_methods_on_method_rows():
    from simcomp.phase import _cells

    base = {"winner_joint": "A", "learned_by_horizon_joint_A": True,
            "learned_by_horizon_joint_B": True, "gap": 0.0, "winner_coordinate_joint": -1.0,
            "predicted_winner_joint": "A", "predicted_learned_by_horizon_joint_A": True,
            "predicted_learned_by_horizon_joint_B": False}
    rows = [dict(base, x=1.0, method_joint="none", method_predicted_co_learned_joint=False),
            dict(base, x=2.0, method_joint="aux", method_predicted_co_learned_joint=True),
            dict(base, x=3.0, method_joint="ume", method_predicted_co_learned_joint=True)]
    cells = _cells(rows, {"key": "x", "values": [1.0, 2.0, 3.0]}, None, ["A", "B"])
    # plain training's prediction (B not learned) on the none and ume rows, aux's on its row
    assert cells["predicted_colearned"][:, 0].tolist() == [0.0, 1.0, 0.0]


def test_ume_ensemble_prediction_is_shared_with_the_joint_runs_method_prediction():
    from simcomp.experiment import run_experiment

    for method in ("ume", "none"):
        cfg = simcomp.build_config(overrides=SMALL + [f"method.name={method}",
                                                      "train.mode=compare"])
        exp = run_experiment(cfg)
        ume_cfg = simcomp.build_config(overrides=SMALL + ["method.name=ume"])
        fresh = simcomp.predict(ume_cfg)["joint"]["prediction"].method.test_error_noiseless
        assert exp.ensemble.predicted_test_error == pytest.approx(fresh, abs=1e-12)
        if method == "ume":
            assert exp.ensemble.predicted_test_error == \
                exp.predictions["joint"].method.test_error_noiseless


def test_theory_plot_draws_the_methods_dynamics():
    from simcomp.plots import reduced_dynamics_figure

    cfg = simcomp.build_config(overrides=SMALL + ["method.name=aux"])
    pred = simcomp.predict(cfg)
    fig = reduced_dynamics_figure(cfg, {name: e["prediction"] for name, e in pred.items()})
    joint = next(ax for ax in fig.axes if ax.get_title().startswith("joint"))
    assert "method aux" in joint.get_title()
    (line,) = [ln for ln in joint.get_lines() if ln.get_label() == "B, aux"]
    dyn = pred["joint"]["prediction"].method.dynamics
    np.testing.assert_allclose(line.get_ydata(),
                               cfg.data.modality[1].beta * dyn.leading_alignment[:, 1])
    plain = simcomp.predict(simcomp.build_config(overrides=SMALL))
    fig = reduced_dynamics_figure(cfg, {name: e["prediction"] for name, e in plain.items()})
    assert not any("aux" in ln.get_label() for ax in fig.axes for ln in ax.get_lines())
