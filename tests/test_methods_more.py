"""ogm_boost, opm, pmr and inforeg end to end: their keys in the config and the CLI, the
settings that do nothing, their statistics in a run's trace and results, and their
method-specific behaviour in the compiled trainer (the per-method tables of
test_methods_join, test_method_kernel and test_rules compare them with the NumPy
references on every path)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from simcomp.cli import main
from simcomp.config import ConfigError
from simcomp.config_file import build_config
from simcomp.experiment import run_experiment

SMALL = ["data.n_train=96", "data.n_test=200", "data.modality.0.dim=8", "data.modality.1.dim=8",
         "model.width=3", "train.steps=80", "train.trace_every=20", "train.threads=1"]

BAD = [
    (["method.name=ogm_boost", "method.boost=0"], r"method.boost \(method ogm_boost\) must be > 0"),
    (["method.name=ogm_boost", "method.boost=fast"],
     r"method.boost \(method ogm_boost\) must be a number"),
    (["method.name=ogm_boost", "method.start=-1"],
     r"method.start \(method ogm_boost\) must be >= 0"),
    (["method.name=ogm_boost", "method.start=10", "method.stop=5"],
     r"method.stop \(method ogm_boost\) must be >= 11"),
    (["method.name=ogm_boost", "method.alpha=0.3"],
     r"method.alpha is not a setting of method 'ogm_boost'; method ogm_boost takes: boost, "
     r"start, stop"),
    (["method.name=pmr", "method.momentum=1"],
     r"method.momentum \(method pmr\) must be in \[0, 1\)"),
    (["method.name=pmr", "method.proto_every=0"],
     r"method.proto_every \(method pmr\) must be >= 1"),
    (["method.name=pmr", "method.alpha=-1"], r"method.alpha \(method pmr\) must be >= 0"),
    (["method.name=pmr", "method.boost=2"], r"method.boost is not a setting of method 'pmr'"),
    (["method.name=opm", "method.q_base=1.5"], r"method.q_base \(method opm\) must be in \[0, 1\]"),
    (["method.name=opm", "method.execute_prob=-0.1"],
     r"method.execute_prob \(method opm\) must be"),
    (["method.name=opm", "method.alpha=-1"], r"method.alpha \(method opm\) must be >= 0"),
    (["method.name=inforeg", "method.trace_window=101"],
     r"method.trace_window \(method inforeg\) must be >= 1 and <= 100, got 101"),
    (["method.name=inforeg", "method.every=0"], r"method.every \(method inforeg\) must be >= 1"),
    (["method.name=inforeg", "method.prox_weight=-0.1"],
     r"method.prox_weight \(method inforeg\) must be >= 0"),
    (["method.name=inforeg", "method.threshold=x"],
     r"method.threshold \(method inforeg\) must be a number"),
    (["method.name=inforeg", "method.aux_weight=[1]"],
     r"method.aux_weight \(method inforeg\) must have one value per modality \(2\), got 1"),
    # the proximal spring overshoots at eta prox_weight e >= 2
    (["method.name=inforeg", "method.prox_weight=1"],
     r"method.prox_weight \(method inforeg\) must be < 2 / \(e train.lr\) = 0.735759 at "
     r"train.lr 1, got 1"),
    (["method.name=inforeg", "train.lr=40"],
     r"method.prox_weight \(method inforeg\) must be < 2 / \(e train.lr\) = 0.018394 at "
     r"train.lr 40, got 0.02"),
]

NOOP = [
    (["method.name=ogm_boost", "method.boost=1"], "method.boost 1"),
    (["method.name=pmr", "method.alpha=0"], "method.alpha 0"),
    (["method.name=opm", "method.execute_prob=0"], "method.execute_prob 0"),
    (["method.name=opm", "method.q_base=0"], "method.q_base 0"),
    (["method.name=inforeg", "method.prox_weight=0", "method.aux_weight=0"],
     "method.prox_weight 0 and every method.aux_weight 0"),
]


@pytest.mark.parametrize("overrides, pattern", BAD)
def test_bad_values_are_refused_naming_the_key(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_config(None, overrides)


@pytest.mark.parametrize("overrides, pattern", BAD[:2])
def test_bad_values_exit_2_with_one_line(overrides, pattern, capsys):
    assert main(["theory"] + [f"--set={s}" for s in SMALL + overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and overrides[1].split("=")[0] in err


@pytest.mark.parametrize("sets, word", NOOP)
def test_settings_that_do_nothing_are_warned_about(sets, word):
    cfg = build_config(None, SMALL + sets)
    assert word in cfg.method.noop_reason()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_config(None, SMALL + sets[:1]).method.noop_reason() is None


def test_ogm_boost_statistics_in_the_trace_and_the_results(tmp_path):
    out = tmp_path / "boost"
    sets = SMALL + ["method.name=ogm_boost", "method.boost=3", "method.start=10"]
    assert main(["simulate", "--quiet", "--out", str(out)] + [f"--set={s}" for s in sets]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["method"] == {"name": "ogm_boost", "boost": 3.0, "start": 10}
    joint = summary["runs"]["joint"]
    assert joint["method"] == "ogm_boost"
    assert set(joint["method_predicted_learned_step"]) == {"A", "B"}
    with np.load(out / "joint" / "trace.npz") as trace:
        ratio, scale, steps = trace["method_ratio"], trace["method_scale"], trace["steps"]
        score = trace["method_score"]
    # the statistics of the step before each record: boosted where behind, from step 10 on
    after = steps[1:] - 1 >= 10
    np.testing.assert_array_equal(scale[1:][after], np.where(ratio[1:][after] < 1, 3.0, 1.0))
    assert np.all(scale[1:][~after] == 1.0)
    np.testing.assert_allclose(ratio[1:, 0], score[1:, 0] / score[1:, 1], rtol=1e-12)
    assert (scale[1:] == 3.0).any()


def test_sweep_over_the_new_methods(tmp_path):
    import csv

    sweep = tmp_path / "sweep"
    assert main(["sweep", "--quiet", "--workers", "1", "--out", str(sweep), "--grid",
                 "method.name=none,ogm_boost,opm,pmr,inforeg"] + [f"--set={s}" for s in SMALL]) == 0
    with open(sweep / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert sorted(row["method_joint"] for row in table) == ["inforeg", "none", "ogm_boost", "opm",
                                                             "pmr"]
    for row in table:
        assert row["method_predicted_learned_step_joint_A"] != ""
    base = ["method.name=ogm_boost"] + SMALL
    assert main(["sweep", "--quiet", "--workers", "1", "--out", str(tmp_path / "b"), "--grid",
                 "method.boost=2,4"] + [f"--set={s}" for s in base]) == 0
    # runs of pmr batched together (their states stacked) equal the runs alone
    base = ["method.name=pmr", "train.mode=joint"] + SMALL
    assert main(["sweep", "--quiet", "--workers", "1", "--out", str(tmp_path / "c"), "--grid",
                 "method.alpha=0.5,2"] + [f"--set={s}" for s in base]) == 0
    with open(tmp_path / "c" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        alone = run_experiment(build_config(None, base + [f"method.alpha={row['method.alpha']}",
                                                          f"seed={row['seed']}"]))
        assert float(row["test_error_joint"]) == pytest.approx(alone.outcomes["joint"].test_error,
                                                               abs=1e-12)


def test_pmr_statistics_and_its_state_across_segments():
    """pmr's prototype scores in the trace; a run recorded every step (one call per step,
    the state carried between calls) equals one recorded only at the end."""
    sets = SMALL + ["method.name=pmr", "method.alpha=1", "train.mode=joint"]
    every = run_experiment(build_config(None, sets + ["train.trace_every=1"])).runs[0]
    once = run_experiment(build_config(None, sets + ["train.trace_every=80"])).runs[0]
    for a, b in zip(every.final_weights, once.final_weights):
        np.testing.assert_array_equal(a, b)
    arrays = every.trace.arrays()
    score, ratio, lam = arrays["method_score"], arrays["method_ratio"], arrays["method_scale"]
    assert np.all(np.isnan(score[:2]))  # no prototypes before step 1's statistics
    assert np.all((score[2:] > 0) & (score[2:] < 1))
    np.testing.assert_allclose(ratio[2:], score[2:] / score[2:].max(axis=1, keepdims=True),
                               rtol=1e-12)
    # lam of step t comes from step t - 1's scores: 0 for the leader, alpha clip(...) otherwise
    want = np.minimum(np.maximum(1.0 / ratio[2:-1] - 1.0, 0.0), 1.0)
    np.testing.assert_allclose(lam[3:], want, rtol=1e-12)
    assert (lam[3:] > 0).any()


def test_inforeg_regulates_only_the_leader_while_its_window_is_open():
    sets = SMALL + ["method.name=inforeg", "method.prox_weight=0.3", "method.every=5",
                    "method.trace_window=2", "train.mode=joint", "train.trace_every=1"]
    arrays = run_experiment(build_config(None, sets)).runs[0].trace.arrays()
    score, k, beta = (arrays[key][1:] for key in ("method_score", "method_ratio", "method_scale"))
    lead = score.argmax(axis=1)
    rows = np.arange(len(lead))
    # beta for the leader only, in (prox e^-1, prox e) while k_l > threshold, else 0
    other = beta.copy()
    other[rows, lead] = 0.0
    assert np.all(other == 0.0)
    open_ = k[rows, lead] > 0.04
    assert open_.any() and (~open_).any()  # the window closes during the run
    assert np.all((beta[rows, lead][open_] > 0.3 / np.e) & (beta[rows, lead][open_] <= 0.3 * np.e))
    assert np.all(beta[rows, lead][~open_] == 0.0)
    # k is a per-epoch statistic: constant within each epoch of 5 steps, 1 in the first two
    assert np.all(k[:10] == 1.0)
    for e in range(len(k) // 5):
        assert np.all(k[5 * e:5 * e + 5] == k[5 * e])


def test_opm_drops_with_the_previous_steps_probabilities_and_is_reproducible():
    sets = SMALL + ["method.name=opm", "method.start=3", "method.q_base=0.6", "train.mode=joint",
                    "train.trace_every=1"]
    run = run_experiment(build_config(None, sets)).runs[0]
    again = run_experiment(build_config(None, sets)).runs[0]
    for a, b in zip(run.final_weights, again.final_weights):
        np.testing.assert_array_equal(a, b)  # the method's stream comes from the seed
    other = run_experiment(build_config(None, sets + ["seed=1"])).runs[0]
    assert not np.array_equal(run.final_weights[0], other.final_weights[0])
    arrays = run.trace.arrays()
    score, ratio, q = (arrays[key][1:] for key in ("method_score", "method_ratio", "method_scale"))
    assert np.all(q[:3] == 0.0)  # before the window
    # q of step t from step t - 1's ratios: only a leader is dropped
    g = np.tanh(np.maximum(ratio[2:-1] - 1.0, 0.0))
    want = np.where(g > 0, np.minimum(1.0, 0.6 * (1.0 + 0.5 * g)), 0.0)
    np.testing.assert_allclose(q[3:], want, rtol=1e-12)
    assert (q > 0).any() and np.all(q.min(axis=1) == 0.0)


def test_calibration_predicts_the_new_methods():
    from simcomp.calibrate import calibrate
    from test_calibrate import CREMA

    names = ["ogm_boost", "opm", "inforeg"]
    cal = calibrate(CREMA, simulate=0, sample=2, methods=names + ["pmr"], correlations=[0.0])
    rows = cal.json["methods"]
    assert sorted({m["method"] for m in rows}) == sorted(names)
    assert "pmr" in cal.json["methods_refused"]  # its pull vanishes for calibrate's learner
    for m in rows:
        assert m["gain_median"] is not None and np.isfinite(m["gain_median"])


def test_calibration_covers_every_method_of_the_registry():
    from simcomp.calibrate import METHOD_PARAMS
    from simcomp.registry import REGISTRY

    assert sorted(METHOD_PARAMS) == sorted(nm for nm in REGISTRY if nm != "none")
    # each given setting passes its own bounds, and lies on or beside its grid
    for nm, spec in METHOD_PARAMS.items():
        if spec.param is not None:
            for value in (spec.given,) + tuple(spec.grid):
                spec.check(f"methods.{nm}", value)


def test_calibration_predicts_or_refuses_the_hook_methods():
    from simcomp.calibrate import calibrate
    from test_calibrate import CREMA

    names = ["reconboost", "relearning", "gblending", "greedy", "mmcosine"]
    cal = calibrate(CREMA, simulate=0, sample=2, methods=names, correlations=[0.0])
    rows = cal.json["methods"]
    assert [(m["method"], m["which"]) for m in rows] == [
        ("reconboost", "given"), ("reconboost", "best"), ("greedy", "given"), ("greedy", "best")]
    for m in rows:
        assert m["gain_median"] is not None and np.isfinite(m["gain_median"])
    assert rows[0]["setting"] == {"boost_weight": 5.0}
    assert rows[2]["setting"] == {"epsilon": 0.01}
    # the held-out methods are refused, each with its reason, never dropped silently
    refused = json.loads(json.dumps(cal.json))["methods_refused"]
    assert sorted(refused) == ["gblending", "mmcosine", "relearning"]
    assert all("held-out" in refused[nm] and "population" in refused[nm]
               for nm in ("relearning", "gblending"))
    assert "fusion head" in refused["mmcosine"]
    text = cal.report()
    assert "greedy (an analogue)" in text
    for nm in refused:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(nm))
        assert "not predicted: " + refused[nm] in line


def test_relearning_in_the_population_toy_is_plain_training():
    # why calibrate refuses relearning: with the population as held-out sample (calibrate's
    # toy), the purity gap is 0 and no reset moves a weight, at any reset_scale
    from simcomp.theory.mitigation import method_dynamics
    from simcomp.theory.patterns import population_patterns

    y, s, w = population_patterns([0.5, 0.5], 0.0)
    rng = np.random.default_rng(3)
    a0 = 0.05 * rng.standard_normal((2, 1, 8))
    args = (a0, np.array([1.0, 0.7]), y, s, w, 3.0, 1.0, 0.5, 120)
    plain = method_dynamics(*args, "none").final_alignment
    for scale in (1.0, 3.0, 10.0):
        dyn = method_dynamics(*args, "relearning", {"reset_scale": scale, "every": 20})
        assert np.array_equal(dyn.final_alignment, plain)
    # whereas a held-out sample that differs does reset (the check can fail)
    w_hold = w * np.linspace(0.5, 1.5, w.size)
    other = method_dynamics(*args, "relearning", {"reset_scale": 10.0, "every": 20},
                            w_holdout=w_hold / w_hold.sum()).final_alignment
    assert not np.array_equal(other, plain)


def test_calibration_doc_holds_the_generated_table():
    from pathlib import Path

    from simcomp.registry.table import calibration_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "calibration.md").read_text()
    table = calibration_table()
    assert table in page
    for name in ("reconboost", "greedy", "relearning", "gblending"):
        assert f"| `{name}`" in table
