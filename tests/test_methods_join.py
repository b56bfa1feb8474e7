"""The methods joined end to end: kernels against the NumPy reference, the trainer in
population mode against the methods' reduced dynamics, the compare-mode runs, the
ensemble, the stochastic methods against their expected update, and the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import reference_methods as ref
import test_methods_more_b as more_b
from simcomp import kernels as kern
from simcomp.cli import main
from simcomp.config_file import build_config
from simcomp.data import empirical_patterns, make_experiment_data
from simcomp.experiment import run_experiment, run_experiments
from simcomp.kernels import make_rule
from simcomp.kernels.rng import _normal, _stream, _uniform
from simcomp.kernels.rules import _keep
from simcomp.columns import result_row
from simcomp.summary import summarize
from simcomp.shapley import predictor_error
from simcomp.theory.mitigation import method_dynamics, predict_method
from simcomp.trace import METHOD_KEYS
from test_kernels import signal_problem

FORM = {0: "symmetric", 1: "class_banks"}
SETTINGS = {  # every method with non-default settings, per-modality lists cut to K
    "none": {}, "lr_scale": {"lr_scale": [1.6, 0.5, 0.9]}, "ogm": {"alpha": 0.4},
    "ogm_ge": {"alpha": 0.3, "start": 1, "stop": 5}, "agm": {"alpha": 0.7},
    "dropout": {"drop": [0.3, 0.1, 0.5]},
    "aux": {"fused_weight": 0.7, "aux_weight": [1.5, 0.5, 2.0]},
    "alternating": {"mix": [0.55, 0.45, 1.0]}, "mmpareto": {}, "umt": {"distill_weight": 2.0},
    "ogm_boost": {"boost": 3.0, "start": 1},
    "pmr": {"alpha": 0.8, "momentum": 0.3, "proto_every": 2},
    "inforeg": {"prox_weight": 0.3, "every": 2, "trace_window": 2, "threshold": -1.0,
                "aux_weight": [1.0, 0.5, 2.0]},
    "opm": {"q_base": 0.6, "alpha": 0.8, "execute_prob": 0.7, "start": 1},
    # checked against tests/reference_methods_more_b.py (test_methods_more_b.check_kernel)
    "reconboost": {"boost_steps": 2, "correct_steps": 1, "boost_weight": 4.0,
                   "ensemble_weight": 1.5},
    "greedy": {"epsilon": 0.0005, "window": 2, "start": 1},
    "relearning": {}, "gblending": {},
}
KEY = 987_654_321


def _cut(params, K):
    return {k: (v[:K] if isinstance(v, list) else v) for k, v in params.items()}


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_kernel_rule_equals_the_numpy_reference(name, kind, K):
    """Six float64 GD steps of the compiled rule against the reference trainer, which is fed
    the kernel's own random numbers (dropout masks, ogm_ge noise)."""
    if name in more_b.rb.METHODS:  # their own reference, on every path
        more_b.check_kernel(name, kind, K, SETTINGS[name])
        return
    dims = (5, 9, 7)[:K]
    P = signal_problem(1, kind, dims=dims, m=3, n=40, w0=0.3)
    params = _cut(SETTINGS[name], K)
    X = [P["X"][r, :, :d] for r, d in enumerate(dims)]
    W0 = [P["W"][r, :, :, :d] for r, d in enumerate(dims)]
    form, eta, steps = FORM[kind], 0.8, 6
    teacher = None
    if name == "umt":
        rng = np.random.default_rng(5)
        teacher = [ref.encoder(Xr, Wr + 0.2 * rng.standard_normal(Wr.shape), form, 3.0, 1.0)[1]
                   for Xr, Wr in zip(X, W0)]
    drop = np.asarray(params.get("drop", [0.0] * K))
    masks = lambda t: np.array([[_keep(KEY, t, j, r, drop[r]) for r in range(K)]  # noqa: E731
                                for j in range(P["y"].size)])

    def noise(t, r, shape):
        # the kernel's ogm_ge noise: one counter-based stream per weight row (b, i)
        B, m, d = shape
        return np.array([[[_normal(np.uint64(_stream(KEY, t, r, b * m + i)), k) for k in range(d)]
                          for i in range(m)] for b in range(B)])

    executed = []

    def draws(t, q):
        # opm: the kernel's coin (position (0, 0) of step t) and masks (dropout's hash)
        executed.append(_uniform(KEY, t, 0, 0) < params["execute_prob"])
        return executed[-1], np.array([[_keep(KEY, t, j, r, q[r]) for r in range(K)]
                                       for j in range(P["y"].size)])

    res = ref.train(X, P["y"], P["omega"], W0, form=form, eta=eta, steps=steps, method=name,
                    params=params, teacher_units=teacher, masks=masks, noise=noise, draws=draws)
    if name == "opm":  # some steps drop, some do not
        assert (res["scale"][res["executed"]] > 0).any() and not all(executed)
    rule = make_rule(name, K, key=KEY, teacher_units=None if teacher is None else np.stack(teacher),
                     shape=P["W"].shape[1:3] + (P["y"].size, P["W"].shape[3]), **params)
    W = P["W"].copy()
    learned = -np.ones(W.shape[:2], np.int64)
    status, _, _ = kern.gd_segment(P["X"], P["dims"], P["y"], P["omega"], W, kind, 3.0, 1.0, eta,
                                   P["signal"], P["beta"], 100.0, learned, 0, steps, 0.0, False,
                                   np.zeros_like(W), rule=rule)
    assert status == kern.STATUS_OK
    for r, d in enumerate(dims):
        scale = np.abs(res["W"][r]).max()
        np.testing.assert_allclose(W[r, :, :, :d], res["W"][r], rtol=1e-10, atol=1e-10 * scale)
        assert np.all(W[r, :, :, d:] == 0)
        assert np.abs(W[r, :, :, :d] - W0[r]).max() > 1e-6 * scale  # the run moved
    if name != "none":
        stats = rule.method_stats()
        for key in ("score", "ratio", "scale", "cosine"):
            np.testing.assert_allclose(stats[f"method_{key}"], res[key][-1], rtol=1e-10,
                                       atol=1e-14, equal_nan=True)


POP = ["data.population=true", "data.modality.0.noise=0", "data.modality.1.noise=0",
       "data.modality.0.dim=6", "data.modality.1.dim=6", "model.width=4", "train.steps=120",
       "train.trace_every=10", "train.threads=1"]
DETERMINISTIC = [
    ("none", []), ("lr_scale", ["method.lr_scale=[0.5, 2.0]"]), ("ogm", ["method.alpha=0.8"]),
    ("agm", []), ("aux", ["method.aux_weight=[1.0, 2.0]"]), ("alternating", []),
    ("mmpareto", []), ("umt", ["method.distill_weight=0.5", "method.teacher_steps=60"]),
    ("ume", []), ("ogm_boost", ["method.boost=3", "method.start=2"]),
    ("pmr", ["method.alpha=1", "method.momentum=0.3"]),
    ("inforeg", ["method.prox_weight=0.2", "method.every=5", "method.trace_window=3",
                 "method.aux_weight=[1.0, 0.5]"]),
    ("reconboost", ["method.boost_steps=3", "method.correct_steps=3"]),
    ("greedy", ["method.epsilon=0.002", "method.window=4"]),
    ("relearning", ["method.every=15"]), ("gblending", ["method.every=25"]),
]


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
@pytest.mark.parametrize("name, extra", DETERMINISTIC)
def test_population_simulation_equals_the_methods_reduced_dynamics(name, extra, learner):
    """The compiled trainer in population mode (compare mode, through run_experiment) against
    predict_method's reduced dynamics: every traced alignment to 1e-10 relative."""
    cfg = build_config(None, POP + [f"method.name={name}", f"model.learner={learner}"] + extra)
    exp = run_experiment(cfg)
    joint = exp.runs[0]
    pred = exp.outcomes["joint"].prediction
    assert pred is not None and pred.method == name
    dyn = pred.dynamics
    # ume trains no joint network: its dynamics are the uni-modal runs'
    runs = exp.runs[1:] if name == "ume" else [joint]
    got = np.concatenate([run.trace.arrays()["alignment"] for run in runs], axis=1)
    learned = np.concatenate([run.learned_step for run in runs])
    assert list(dyn.steps) == list(joint.trace.arrays()["steps"])
    got = got if learner == "class_banks" else got[:, :, None, :]
    scale = np.abs(dyn.alignment).max()
    np.testing.assert_allclose(got, dyn.alignment, rtol=1e-10, atol=1e-10 * scale)
    assert list(learned) == list(pred.predicted_learned_step)
    row = result_row(exp)
    assert row["method_joint"] == name
    if name != "ume":
        assert row["co_learned_joint"] == row["method_predicted_co_learned_joint"]


def _phi(cfg, data, run):
    """The run's encoder outputs on the test set, by the kernels' own forward pass."""
    dims = np.array([data.test.X[r].shape[1] for r in run.trained], np.int64)
    width = int(dims.max())
    X = np.zeros((len(run.trained), data.test.n, width))
    W = np.zeros((len(run.trained), cfg.model.banks, cfg.model.width, width))
    for k, r in enumerate(run.trained):
        X[k, :, : dims[k]] = data.test.X[r]
        W[k, :, :, : dims[k]] = run.final_weights[k]
    f, phi = np.empty(data.test.n), np.empty((data.test.n, len(run.trained)))
    kind = {"symmetric": 0, "class_banks": 1}[cfg.model.learner]
    kern.forward(X, dims, W, kind, cfg.model.q, cfg.model.rho, f, phi)
    return phi


SMALL = ["data.n_train=96", "data.n_test=200", "data.modality.0.dim=8", "data.modality.1.dim=8",
         "model.width=3", "train.steps=80", "train.trace_every=20", "train.threads=1"]


def test_alternating_equals_the_unimodal_runs_and_ume_is_their_sum():
    cfg = build_config(None, SMALL + ["method.name=alternating", "method.mix=[0.55, 0.45]"])
    exp = run_experiment(cfg)
    joint = exp.runs[0].trace.arrays()
    for k, name in enumerate(cfg.names):
        alone = next(run for run in exp.runs if run.name == f"unimodal-{name}").trace.arrays()
        np.testing.assert_allclose(joint["alignment"][:, k], alone["alignment"][:, 0],
                                   rtol=1e-12, atol=1e-12 * np.abs(alone["alignment"]).max())
        np.testing.assert_allclose(exp.runs[0].final_weights[k], next(
            run for run in exp.runs if run.name == f"unimodal-{name}").final_weights[0],
            rtol=1e-12, atol=1e-14)
    phi = _phi(cfg, exp.data, exp.runs[0])
    y, w = exp.data.test.y, exp.data.test.weight
    assert exp.outcomes["joint"].test_error == predictor_error(phi, y, w, [0.55, 0.45])
    assert exp.runs[0].trace.records["test_error"][-1] == pytest.approx(
        exp.outcomes["joint"].test_error, abs=1e-12)  # the trainer's own mix-weighted evaluation
    # ume: the sum of the uni-modal networks, exactly
    ume = run_experiment(build_config(None, SMALL + ["method.name=ume"]))
    uni = np.concatenate([_phi(ume.cfg, ume.data, run) for run in ume.runs[1:]], axis=1)
    expected = predictor_error(uni.sum(axis=1, keepdims=True), y, w)
    assert ume.ensemble.test_error == expected
    assert ume.outcomes["joint"].test_error == expected
    summary = summarize(ume)
    assert summary["ensemble"]["test_error"] == expected
    assert summary["comparison"]["ensemble_test_error"] == expected
    assert summary["comparison"]["gap_to_ensemble"] == 0.0
    assert summary["runs"]["joint"]["method"] == "ume"
    # the uni-modal runs of ume are plain: equal to those of method none
    plain = run_experiment(build_config(None, SMALL))
    for a, b in zip(plain.runs, ume.runs):
        assert all(np.array_equal(x, z) for x, z in zip(a.final_weights, b.final_weights))
    assert plain.ensemble.test_error == expected


def test_umt_reuses_or_trains_its_teachers_and_the_batched_path_agrees():
    cfgs = [build_config(None, SMALL + ["method.name=umt", "method.distill_weight=0.5"] + extra)
            for extra in ([], ["method.teacher_steps=30"], ["train.mode=joint"])]
    batched = run_experiments(cfgs)
    for cfg, b in zip(cfgs, batched):
        a = run_experiment(cfg)
        assert [run.name for run in a.runs] == [run.name for run in b.runs]
        for x, z in zip(a.runs, b.runs):
            assert all(np.array_equal(p, q) for p, q in zip(x.final_weights, z.final_weights))
        assert result_row(a)["method_test_error_joint"] == result_row(b)["method_test_error_joint"]
    # teacher_steps = T reuses the uni-modal runs: the same as teachers trained separately
    joint_only = batched[2].runs[0]
    assert all(np.array_equal(p, q) for p, q in zip(joint_only.final_weights,
                                                    batched[0].runs[0].final_weights))
    # teacher_steps = 0: the initial encoders are the teachers (no teacher run is trained)
    zero = run_experiment(build_config(None, SMALL + ["method.name=umt", "method.teacher_steps=0",
                                                      "method.distill_weight=0.5"]))
    assert [run.name for run in zero.runs] == ["joint", "unimodal-A", "unimodal-B"]
    assert not np.array_equal(zero.runs[0].final_weights[0], batched[0].runs[0].final_weights[0])
    # the teachers matter: 30 teacher steps give another joint network
    assert not np.array_equal(batched[1].runs[0].final_weights[0],
                              batched[0].runs[0].final_weights[0])


def test_method_statistics_and_results_of_a_modulated_run():
    cfg = build_config(None, SMALL + ["method.name=ogm", "method.alpha=0.3"])
    exp = run_experiment(cfg)
    joint = exp.runs[0]
    arrays = joint.trace.arrays()
    for key in METHOD_KEYS:
        assert arrays[key].shape == (len(arrays["steps"]), 2)
        assert np.all(np.isnan(arrays[key][0]))
    assert np.all(np.isnan(arrays["method_cosine"]))
    score = arrays["method_score"][1:]
    np.testing.assert_allclose(arrays["method_ratio"][1:, 0], score[:, 0] / score[:, 1], rtol=1e-12)
    k = np.where(arrays["method_ratio"][1:] > 1, 1 - np.tanh(0.3 * arrays["method_ratio"][1:]), 1)
    np.testing.assert_allclose(arrays["method_scale"][1:], k, rtol=1e-12)
    for run in exp.runs[1:]:
        assert not set(METHOD_KEYS) & set(run.trace.arrays())  # uni-modal runs are plain
    summary = summarize(exp)["runs"]["joint"]
    assert summary["method"] == "ogm"
    assert summary["method_scale"] == dict(zip("AB", arrays["method_scale"][-1].tolist()))
    shap = summary["shapley_value"]
    assert sum(shap.values()) == pytest.approx(0.5 - summary["test_error"], abs=1e-12)
    assert summary["method_test_error"] == pytest.approx(summary["test_error"], abs=1e-12)
    for run in exp.runs:  # the outputs used for the results are the kernels'
        np.testing.assert_allclose(
            [predictor_error(_phi(cfg, exp.data, run)[:, [k]], exp.data.test.y,
                             exp.data.test.weight) for k in range(len(run.trained))],
            run.trace.records["modality_test_error"][-1], rtol=0, atol=1e-12)


# The earlier embedded default's strengths, presence and width (the tolerances below were
# measured with them; the betas are passed to the theory explicitly).
STOCH = ["data.modality.0.beta=2.0", "data.modality.1.beta=1.0", "data.modality.0.presence=0.8",
         "model.width=8", "data.modality.0.noise=0", "data.modality.1.noise=0", "data.modality.0.dim=8",
         "data.modality.1.dim=8", "data.n_train=256", "train.steps=100"]


@pytest.mark.parametrize("name, params", [
    ("dropout", {"drop": [0.3, 0.0]}),
    ("dropout", {"drop": [0.5, 0.2], "rescale": True}),
    ("ogm_ge", {"alpha": 0.3}),
    ("opm", {"start": 0}),
    ("opm", {"start": 0, "q_base": 0.8, "alpha": 1.0, "execute_prob": 1.0}),
])
def test_stochastic_kernel_runs_average_to_the_expected_update(name, params):
    """The compiled trainer with 16 fixed method keys on 256 noise-free samples: the mean
    leading alignment against the expected-update dynamics on the same samples' patterns.

    Tolerances (stated): B's mean within 1 % at every step; A's within 15 %; A's mean
    learned step within 1 step of the prediction.  Measured with these keys: B 0.04 %,
    0.26 %, 0.47 %; A 8.4 %, 6.3 %, 11.2 % (largest around A's take-off, where the mean of
    a steep trajectory with a random delay lags the deterministic one); mean learned step
    25.0 / 18.5 / 25.25 against 25 / 19 / 25 predicted.  opm (its defaults from step 0; and
    q_base 0.8, alpha 1, every step executed): the raw means within 8.8 % / 6.0 % (A) and
    1.4 % / 2.5 % (B) of the prediction, beyond 4 standard errors by at most 0.05 % (A) and
    0.6 % (B); mean learned step 22.9 / 47.5 against 23 / 48."""
    cfg = build_config(None, STOCH)
    data = make_experiment_data(cfg)
    tr = data.train
    a0 = np.stack([np.einsum("bid,d->bi", W, v) for W, v in zip(data.init, data.signals)])
    y, s, w = empirical_patterns(tr, [0, 1])
    T = cfg.train.steps
    beta = [m.beta for m in cfg.data.modality]
    assert beta == [2.0, 1.0]
    dyn = method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 1.0, T, name, params)
    X = np.stack(tr.X)
    dims = np.array([x.shape[1] for x in tr.X], np.int64)
    signal = np.stack(data.signals)
    leads, learned = [], []
    for key in range(16):
        rule = make_rule(name, 2, key=1000 + key, **params)
        W = np.stack(data.init).copy()
        lead = [np.einsum("rbid,rd->rbi", W, signal).max(axis=(1, 2))]
        first = -1
        for t in range(T):
            status, _, _ = kern.gd_segment(X, dims, tr.y, tr.weight, W, 0, 3.0, 1.0, 1.0, signal,
                                           np.array([2.0, 1.0]), 1.0,
                                           -np.ones((2, 1), np.int64), t, 1, 0.0, False,
                                           np.zeros_like(W), rule=rule)
            lead.append(np.einsum("rbid,rd->rbi", W, signal).max(axis=(1, 2)))
            if first < 0 and 2.0 * lead[-1][0] >= 1.0:
                first = t + 1
        leads.append(np.array(lead))
        learned.append(first)
    mean = np.mean(leads, axis=0)
    # The mean of 16 draws is within 4 standard errors of its expectation (or the stated
    # relative tolerance, whichever is larger): a fixed key set, so the test is not flaky,
    # and a systematic error in the noise or the masks is far outside the band.
    sem = np.std(leads, axis=0, ddof=1) / np.sqrt(len(leads))
    excess = np.abs(mean - dyn.leading_alignment) - 4.0 * sem
    rel = excess / dyn.leading_alignment
    assert rel[:, 1].max() < 0.01
    assert rel[:, 0].max() < 0.15
    assert abs(np.mean(learned) - dyn.learned_step[0]) <= 1.0


CLI_SMALL = [f"--set={s}" for s in SMALL]


def test_cli_simulate_theory_and_sweep_with_methods(tmp_path, capsys):
    out = tmp_path / "ogm"
    assert main(["simulate", "--out", str(out), "--set", "method.name=ogm", "--set",
                 "method.alpha=0.3"] + CLI_SMALL) == 0
    printed = capsys.readouterr().out
    assert "method ogm" in printed and "ensemble" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["method"] == {"name": "ogm", "alpha": 0.3, "start": 0}
    joint = summary["runs"]["joint"]
    assert joint["method"] == "ogm" and joint["method_test_error"] is not None
    assert set(joint["method_predicted_learned_step"]) == {"A", "B"}
    assert summary["ensemble"]["trained_modalities"] == ["A", "B"]
    with np.load(out / "joint" / "trace.npz") as trace:
        assert set(METHOD_KEYS) <= set(trace.files)
    assert main(["theory", "--set", "method.name=aux"] + CLI_SMALL) == 0
    assert "under method aux" in capsys.readouterr().out
    assert main(["theory", "--json", "--set", "method.name=aux"] + CLI_SMALL) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert rows[0]["method_prediction"]["method"] == "aux"
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--quiet", "--workers", "1", "--out", str(sweep), "--grid",
                 "method.name=none,ogm,aux"] + CLI_SMALL) == 0
    with open(sweep / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert sorted(row["method_joint"] for row in table) == ["aux", "none", "ogm"]
    for row in table:
        assert row["ensemble_test_error"] != "" and row["method_test_error_joint"] != ""
        assert row["shapley_value_joint_A"] != ""


@pytest.mark.parametrize("argv, message", [
    (["simulate", "--set", "method.name=ogm", "--set", "method.drop=[0.1, 0.2]"], "method.drop"),
    (["theory", "--set", "method.name=bogus"], "method.name"),
    (["sweep", "--out", "X", "--grid", "method.name=none,dropout", "--set", "method.alpha=0.3"],
     "method.alpha"),
    (["theory", "--set", "method.name=lr_scale", "--set", "method.lr_scale=[1.0]"], "lr_scale"),
])
def test_bad_method_keys_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize("kind, seed", [(0, 0), (1, 1)])
def test_kernel_mmpareto_conflict_branch_equals_the_numpy_reference(kind, seed):
    """A noisy problem where the fused and uni-modal gradients of an encoder conflict
    (cosine < 0) within six steps, so the min-norm weighting runs: the compiled rule
    against the reference trainer, every weight to 1e-10 relative."""
    dims = (5, 9)
    P = signal_problem(seed, kind, dims=dims, m=3, n=40, w0=1.0, noise=1.0)
    X = [P["X"][r, :, :d] for r, d in enumerate(dims)]
    W0 = [P["W"][r, :, :, :d] for r, d in enumerate(dims)]
    eta, steps = 0.8, 6
    res = ref.train(X, P["y"], P["omega"], W0, form=FORM[kind], eta=eta, steps=steps,
                    method="mmpareto", params={})
    assert np.min(res["cosine"]) < -0.1  # the conflict branch is taken, clearly
    rule = make_rule("mmpareto", 2, key=KEY)
    W = P["W"].copy()
    learned = -np.ones(W.shape[:2], np.int64)
    status, _, _ = kern.gd_segment(P["X"], P["dims"], P["y"], P["omega"], W, kind, 3.0, 1.0, eta,
                                   P["signal"], P["beta"], 100.0, learned, 0, steps, 0.0, False,
                                   np.zeros_like(W), rule=rule)
    assert status == kern.STATUS_OK
    for r, d in enumerate(dims):
        scale = np.abs(res["W"][r]).max()
        np.testing.assert_allclose(W[r, :, :, :d], res["W"][r], rtol=1e-10, atol=1e-10 * scale)
    stats = rule.method_stats()
    np.testing.assert_allclose(stats["method_cosine"], res["cosine"][-1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(stats["method_scale"], res["scale"][-1], rtol=1e-10, atol=1e-14)
