"""The result schema: every quantity in summary.json, in the result row and its CSV cells, alike."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from simcomp import columns as result_csv
from simcomp import results
from simcomp import summary as result_json
from simcomp.config_file import build_config
from simcomp.experiment import run_experiment
from simcomp.outputs import dumps_json

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.n_train=64", "data.n_test=64", "data.modality.0.dim=8", "data.modality.1.dim=8",
         "model.width=2", "train.steps=30", "train.trace_every=10", "train.threads=1"]
KINDS = {"int": (int,), "float": (float,), "str": (str,), "bool": (bool,), "names": (list,),
         "rate": (float, list)}


def small(*extra):
    return build_config(None, SMALL + list(extra))


@pytest.fixture(scope="module")
def compare():
    """A compare-mode experiment in which B is never learned within its 30 steps."""
    exp = run_experiment(small())
    assert exp.runs[0].learned_step[1] == -1  # the kernels' "never"
    return exp


def test_every_quantity_is_well_formed():
    assert len({q.name for q in results.QUANTITIES}) == len(results.QUANTITIES)
    for q in results.QUANTITIES:
        assert re.fullmatch(r"[a-z][a-z_]*", q.name), q.name
        assert q.level in ("modality", "run", "comparison")
        assert q.kind in KINDS
        assert q.csv in ("all", "joint", "shared", "")
        assert q.csv != "shared" or q.level == "modality"
        assert len(q.meaning) > 20
        assert results.quantity(q.name) is q


def test_summary_holds_every_quantity_with_its_type(compare):
    summary = result_json.summarize(compare)
    assert set(summary["runs"]) == {"joint", "unimodal-A", "unimodal-B"}
    run_level = [q for q in results.QUANTITIES if q.level != "comparison"]
    for name, run in summary["runs"].items():
        assert list(run) == [q.name for q in run_level]  # table order, nothing else
        trained = run["trained_modalities"]
        assert trained == (["A", "B"] if name == "joint" else [name.removeprefix("unimodal-")])
        for q in run_level:
            values = list(run[q.name].values()) if q.level == "modality" else [run[q.name]]
            if q.level == "modality":
                assert list(run[q.name]) == trained
            for value in values:
                assert value is None or isinstance(value, KINDS[q.kind]), (q.name, value)
                assert not (q.kind in ("int", "float") and not isinstance(value, bool)
                            and value is not None and type(value) not in (int, float))
    comp = summary["comparison"]
    assert list(comp) == [q.name for q in results.QUANTITIES if q.level == "comparison"]
    assert comp["joint_test_error"] == summary["runs"]["joint"]["test_error"]
    best = min("AB", key=lambda m: (summary["runs"][f"unimodal-{m}"]["test_error"], m))
    assert comp["best_unimodal"] == best
    assert comp["gap"] == comp["joint_test_error"] - comp["best_unimodal_test_error"]
    # plain JSON: what summary.json holds is what Python holds
    assert json.loads(dumps_json(summary)) == json.loads(json.dumps(summary))


def test_never_is_none_everywhere(compare):
    joint = result_json.summarize(compare)["runs"]["joint"]
    assert joint["learned_step"]["B"] is None and joint["learned_by_horizon"]["B"] is False
    assert joint["learned_step"]["A"] == int(compare.runs[0].learned_step[0]) >= 0
    assert joint["learned_by_horizon"]["A"] is True
    assert joint["winner"] == "A"
    pred = compare.predictions["joint"]
    assert joint["prediction_theory"] == "noise_aware"  # the default data are noisy
    for k, m in enumerate("AB"):
        raw = pred.noise_aware.learned_step[k]
        assert joint["predicted_learned_step"][m] == (None if raw < 0 else int(raw))
        raw = pred.predicted_learned_step[k]  # the reduced dynamics
        assert joint["reduced_learned_step"][m] == (None if raw < 0 else int(raw))
        race = float(pred.race_learned_step[k])
        assert joint["race_learned_step"][m] == (race if math.isfinite(race) else None)
    # no kernel "-1" and no inf survive in any step
    text = dumps_json(result_json.summarize(compare))
    assert "Infinity" not in text and "NaN" not in text
    for run in result_json.summarize(compare)["runs"].values():
        for key in ("learned_step", "predicted_learned_step", "race_learned_step",
                    "reduced_learned_step"):
            assert all(v is None or v >= 0 for v in run[key].values())
    row = result_csv.result_row(compare)
    assert row["learned_step_joint_B"] is None and result_csv.csv_cell(None) == ""
    assert row["learned_by_horizon_joint_B"] is False and result_csv.csv_cell(False) == "0"


def test_noisy_race_is_none_without_noise():
    quiet = run_experiment(small("train.mode=joint", "data.modality.0.noise=0",
                                 "data.modality.1.noise=0"))
    assert quiet.predictions["joint"].race_learned_step_noisy is None
    assert result_json.summarize(quiet)["runs"]["joint"]["race_learned_step_noisy"] == {
        "A": None, "B": None}
    noisy = run_experiment(small("train.mode=joint", "data.modality.0.noise=0.05"))
    steps = result_json.summarize(noisy)["runs"]["joint"]["race_learned_step_noisy"]
    raw = noisy.predictions["joint"].race_learned_step_noisy
    assert steps["A"] == float(raw[0]) and math.isfinite(raw[0])
    assert steps["B"] == (float(raw[1]) if math.isfinite(raw[1]) else None)


def expected_row(summary, names):
    """The row by the naming rule of the module docstring, from summary.json alone."""
    runs = summary["runs"]
    out = {}
    for q in results.QUANTITIES:
        if not q.csv:
            continue
        if q.level == "comparison":
            out[q.name] = None if summary["comparison"] is None else summary["comparison"][q.name]
            continue
        for m in names:
            joint, alone = runs.get("joint"), runs.get(f"unimodal-{m}")
            if q.csv == "shared":
                out[f"{q.name}_{m}"] = (joint or alone)[q.name][m]
                continue
            if q.level == "modality":
                out[f"{q.name}_joint_{m}"] = None if joint is None else joint[q.name][m]
                if q.csv == "all":
                    out[f"{q.name}_alone_{m}"] = None if alone is None else alone[q.name][m]
            else:
                out[f"{q.name}_joint"] = None if joint is None else joint[q.name]
                if q.csv == "all":
                    out[f"{q.name}_alone_{m}"] = None if alone is None else alone[q.name]
    return out


@pytest.mark.parametrize("mode", ["compare", "joint", "unimodal"])
def test_row_agrees_with_summary(compare, mode):
    exp = compare if mode == "compare" else run_experiment(small(f"train.mode={mode}"))
    summary = result_json.summarize(exp)
    row = result_csv.result_row(exp, seconds=1.5)
    names = list(exp.cfg.names)
    assert list(row) == ["seed"] + result_csv.result_columns(names) + ["seconds"]
    assert row["seed"] == exp.cfg.seed and row["seconds"] == 1.5 and row["status"] == "ok"
    expected = expected_row(summary, names)
    for column, value in expected.items():
        assert row[column] == value, column
    for setting in result_csv.SETTINGS:
        for r, m in enumerate(names):
            assert row[f"{setting}_{m}"] == getattr(exp.cfg.data.modality[r], setting)
    assert row["presence_correlation"] == exp.cfg.data.presence_correlation
    assert set(expected) | {f"{s}_{m}" for s in result_csv.SETTINGS for m in names} | {
        "status", "presence_correlation"} == set(result_csv.result_columns(names))
    # the record keeps the row as JSON; the CSV cell reads back to the same value
    assert json.loads(dumps_json(row)) == row
    for column, value in row.items():
        cell = result_csv.csv_cell(value)
        if isinstance(value, float):
            assert float(cell) == value
        elif value is None:
            assert cell == ""
    if mode == "joint":
        assert row["test_error_alone_A"] is None and row["gap"] is None
        assert row["winner_coordinate_joint"] is not None
    if mode == "unimodal":
        assert row["winner_joint"] is None and row["test_error_joint"] is None


def test_status_names_the_runs_that_did_not_end_ok(compare):
    runs = [dataclasses.replace(compare.runs[0], status="nonfinite")] + compare.runs[1:]
    broken = dataclasses.replace(compare, runs=runs)
    assert result_csv.result_row(broken)["status"] == "joint=nonfinite"
    assert result_csv.result_row(compare)["status"] == "ok"


def test_value_helpers_keep_step_zero_and_drop_non_finite():
    """Step 0 is a step (only the kernels' -1 means never); inf and nan become None."""
    import numpy as np

    assert results._step(0) == 0 and type(results._step(np.int64(0))) is int
    assert results._step(np.int64(7)) == 7 and results._step(-1) is None
    assert results._step(None) is None
    assert results._float(np.float64(0.25)) == 0.25 and type(results._float(np.float32(1))) is float
    assert results._float(np.inf) is None and results._float(-np.inf) is None
    assert results._float(np.nan) is None and results._float(None) is None
    assert results._rate(np.array([[0.5]])) == 0.5
    assert results._rate(np.array([0.5, np.inf])) == [0.5, None]


def test_csv_cells():
    assert result_csv.csv_cell(None) == ""
    assert result_csv.csv_cell(True) == "1" and result_csv.csv_cell(False) == "0"
    assert result_csv.csv_cell(3) == "3" and result_csv.csv_cell("A") == "A"
    assert result_csv.csv_cell(0.1 + 0.2) == "0.30000000000000004"  # exact, shortest round trip
    assert result_csv.csv_cell(1.4) == "1.4"
    assert result_csv.csv_cell(math.inf) == "" and result_csv.csv_cell(math.nan) == ""


def test_adding_a_quantity_is_one_entry(compare, monkeypatch):
    extra = (
        results.Quantity("coefficient", "modality", "float", "all", "a test-only coefficient",
                         lambda v: [0.5 * (k + 1) for k in range(len(v.names))]),
        results.Quantity("test_only_gap", "comparison", "float", "all", "a test-only gap",
                         lambda e: 0.25),
    )
    monkeypatch.setattr(results, "QUANTITIES", results.QUANTITIES + extra)
    summary = result_json.summarize(compare)
    assert summary["runs"]["joint"]["coefficient"] == {"A": 0.5, "B": 1.0}
    assert summary["runs"]["unimodal-B"]["coefficient"] == {"B": 0.5}
    assert summary["comparison"]["test_only_gap"] == 0.25
    columns = result_csv.result_columns(["A", "B"])
    assert {"coefficient_joint_A", "coefficient_joint_B", "coefficient_alone_A",
            "coefficient_alone_B", "test_only_gap"} <= set(columns)
    row = result_csv.result_row(compare)
    assert row["coefficient_joint_B"] == 1.0 and row["coefficient_alone_B"] == 0.5
    assert row["test_only_gap"] == 0.25


def test_every_quantity_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sweeps = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    for q in results.QUANTITIES:
        assert f"`{q.name}`" in readme, q.name
        if q.csv:
            assert q.name in sweeps, q.name
    for setting in result_csv.SETTINGS:
        assert setting in sweeps


def test_theory_summary_is_the_before_training_part_of_the_run_summary(compare):
    from simcomp.experiment import predict_run
    from simcomp.trace import geometry
    from simcomp.train import run_plan

    cfg, data = compare.cfg, compare.data
    summary = result_json.summarize(compare)["runs"]
    before = [q.name for q in results.QUANTITIES if q.before_training and q.level != "comparison"]
    assert {"kappa", "race_learned_step", "predicted_winner", "presence_fraction",
            "prediction_theory", "predicted_test_error"} <= set(before)
    assert not {"learned_step", "test_error", "winner", "seconds", "expected_test_error"} \
        & set(before)
    for name, trained in run_plan(cfg):
        a0 = geometry([data.init[r] for r in trained], [data.dictionaries[r] for r in trained])[0]
        prediction = predict_run(cfg, data, trained, a0)
        got = result_json.theory_summary(cfg, data, trained, a0, prediction)
        assert list(got) == before
        assert got == {key: summary[name][key] for key in before}


# --------------------------------------------------------------------------- theory by regime


def test_prediction_theory_is_chosen_by_regime():
    from simcomp.experiment import noise_aware_regime

    quiet = small("data.modality.0.noise=0", "data.modality.1.noise=0")
    assert not noise_aware_regime(quiet, [0, 1])
    # noise in one modality: the runs that train it are noise-aware, the other is not
    half = small("data.modality.0.noise=0.05", "data.modality.1.noise=0")
    assert noise_aware_regime(half, [0, 1]) and noise_aware_regime(half, [0])
    assert not noise_aware_regime(half, [1])
    # distractors count only with a non-zero strength
    dist = small("data.modality.0.noise=0", "data.modality.1.noise=0",
                 "data.modality.1.distractors=2", "data.modality.1.distractor_strength=0.3")
    assert noise_aware_regime(dist, [1]) and not noise_aware_regime(dist, [0])
    weak = small("data.modality.0.noise=0", "data.modality.1.noise=0",
                 "data.modality.1.distractors=2", "data.modality.1.distractor_strength=0")
    assert not noise_aware_regime(weak, [1])

    exp = run_experiment(half)
    runs = result_json.summarize(exp)["runs"]
    assert {name: run["prediction_theory"] for name, run in runs.items()} == {
        "joint": "noise_aware", "unimodal-A": "noise_aware", "unimodal-B": "reduced"}
    assert exp.predictions["unimodal-B"].noise_aware is None
    # reduced: the headline predictions are the reduced dynamics' and the race's
    alone_b, pred_b = runs["unimodal-B"], exp.predictions["unimodal-B"]
    assert alone_b["predicted_learned_step"] == alone_b["reduced_learned_step"]
    assert alone_b["predicted_winner"] == alone_b["race_winner"]
    assert alone_b["predicted_test_error"] == alone_b["predicted_test_error_noiseless"]
    assert alone_b["predicted_test_error_stderr"] == 0.0
    assert alone_b["predicted_modality_test_error"]["B"] == pytest.approx(
        float(pred_b.modality_test_error_noiseless[0]))
    # noise-aware: they are the noise-aware theory's
    joint, noisy = runs["joint"], exp.predictions["joint"].noise_aware
    assert joint["predicted_test_error"] == noisy.test_error.fused
    assert joint["predicted_test_error_stderr"] == noisy.test_error.fused_stderr
    assert list(joint["predicted_modality_test_error"].values()) == list(
        noisy.test_error.per_modality)
    assert joint["predicted_learned_by_horizon"] == {
        m: bool(s >= 0) for m, s in zip("AB", noisy.learned_step)}
    assert joint["predicted_winner"] == (None if noisy.predicted_winner is None
                                         else "AB"[noisy.predicted_winner])
    # the old predictions stay under their own names
    assert joint["race_winner"] == "AB"[exp.predictions["joint"].predicted_winner]


@pytest.mark.parametrize("extra, aware", [
    # noise in one modality of two: the joint run is noise-aware (any noisy modality, not all)
    (["data.modality.0.noise=0.05", "data.modality.1.noise=0"],
     {"joint": True, "unimodal-A": True, "unimodal-B": False}),
    # distractors without noise: noise-aware in the results, so in the figure too
    (["data.modality.0.noise=0", "data.modality.1.noise=0", "data.modality.1.distractors=2",
      "data.modality.1.distractor_strength=0.3"],
     {"joint": True, "unimodal-A": False, "unimodal-B": True}),
    # the switch off: reduced everywhere, noise or not
    (["data.modality.0.noise=0.05", "train.noise_theory=false"],
     {"joint": False, "unimodal-A": False, "unimodal-B": False}),
])
def test_the_figure_draws_the_theory_the_results_use(extra, aware):
    """One rule (theory.noise_aware_regime) picks the noise-aware theory for the results'
    predictions and for the figure's theory curve."""
    from types import SimpleNamespace

    from simcomp.api import theory_curves
    from simcomp.data import make_experiment_data
    from simcomp.experiment import predict_run
    from simcomp.trace import geometry
    from simcomp.train import run_plan

    cfg = small(*extra)
    data = make_experiment_data(cfg)
    runs, in_results = [], {}
    for name, trained in run_plan(cfg):
        a0 = geometry([data.init[r] for r in trained], [data.dictionaries[r] for r in trained])[0]
        runs.append(SimpleNamespace(name=name, trained=trained, initial_alignment=a0))
        in_results[name] = predict_run(cfg, data, trained, a0).noise_aware is not None
    in_figure = {name: label.startswith("theory: noise-aware dynamics")
                 for name, (label, _, _) in theory_curves(cfg, data, runs).items()}
    assert in_results == aware
    assert in_figure == aware


def test_reduced_and_noise_aware_agree_without_noise():
    """Forcing the noise-aware theory on noise-free data gives the reduced prediction."""
    from simcomp.experiment import predict_run

    cfg = small("data.modality.0.noise=0", "data.modality.1.noise=0", "train.mode=joint")
    exp = run_experiment(cfg)
    run = exp.runs[0]
    forced = predict_run(cfg, exp.data, run.trained, run.initial_alignment, noise_aware=True)
    plain = exp.predictions["joint"]
    assert plain.theory == "reduced" and forced.theory == "noise_aware"
    assert list(forced.noise_aware.learned_step) == list(plain.predicted_learned_step)
    assert forced.noise_aware.test_error.fused == pytest.approx(plain.test_error_noiseless,
                                                                abs=1e-12)
    assert forced.noise_aware.test_error.fused_stderr == 0.0


def test_comparison_gaps_follow_their_definition(compare):
    comp = result_json.summarize(compare)["comparison"]
    runs = result_json.summarize(compare)["runs"]
    uni = {m: runs[f"unimodal-{m}"] for m in "AB"}
    best_pred = min("AB", key=lambda m: (uni[m]["predicted_test_error"], m))
    assert comp["predicted_best_unimodal"] == best_pred
    assert comp["predicted_gap"] == (runs["joint"]["predicted_test_error"]
                                     - min(u["predicted_test_error"] for u in uni.values()))
    assert comp["expected_gap"] == (runs["joint"]["expected_test_error"]
                                    - min(u["expected_test_error"] for u in uni.values()))
    row = result_csv.result_row(compare)
    for key in ("predicted_gap", "expected_gap", "predicted_best_unimodal"):
        assert row[key] == comp[key]
    # before training: simcomp theory's comparison is the same predicted gap
    from simcomp.experiment import predict_run

    planned = [(run.name, run.trained, run.initial_alignment,
                predict_run(compare.cfg, compare.data, run.trained, run.initial_alignment,
                            name=run.name))
               for run in compare.runs]
    before = result_json.theory_comparison(compare.cfg, compare.data, planned)
    assert before == {"predicted_best_unimodal": comp["predicted_best_unimodal"],
                      "predicted_gap": comp["predicted_gap"],
                      "method_predicted_gap": comp["method_predicted_gap"]}
    joint = compare.predictions["joint"].method
    assert comp["method_predicted_gap"] == pytest.approx(
        joint.test_error_noiseless - min(u["predicted_test_error"] for u in uni.values()))
    assert result_json.theory_comparison(compare.cfg, compare.data, planned[:1]) is None


def test_expected_test_error_matches_a_large_test_set():
    """Every run's expected_test_error is within a few standard errors of 200k fresh samples."""
    import numpy as np

    from simcomp.data import _streams, draw_dataset
    from test_expected_error import mc_errors  # plain NumPy forward pass, tie = half

    exp = run_experiment(small("data.modality.0.noise=0.15", "data.modality.1.noise=0.2",
                               "data.modality.1.distractors=2",
                               "data.modality.1.distractor_strength=0.3", "train.steps=120"))
    cfg, n = exp.cfg, 200_000
    big = draw_dataset(cfg, exp.data.dictionaries, n, *_streams(cfg.seed + 99, cfg.K)[2])
    summary = result_json.summarize(exp)["runs"]
    nontrivial = 0
    for run in exp.runs:
        got = summary[run.name]
        mc_fused, mc_mod = mc_errors(cfg, run.final_weights, run.trained, big.X, big.y)
        se = np.sqrt(mc_fused * (1 - mc_fused) / n)
        assert abs(got["expected_test_error"] - mc_fused) <= (
            4 * np.hypot(got["expected_test_error_stderr"], se) + 1e-3), (run.name, mc_fused)
        for k, m in enumerate(got["trained_modalities"]):
            se = np.sqrt(mc_mod[k] * (1 - mc_mod[k]) / n)
            assert abs(got["expected_modality_test_error"][m] - mc_mod[k]) <= (
                4 * np.hypot(got["expected_modality_test_error_stderr"][m], se) + 1e-3)
        assert got["expected_test_error_stderr"] < 3e-3
        nontrivial += 0.0 < mc_fused < 0.5
        # a uni-modal network's encoder alone is the network
        if len(run.trained) == 1:
            assert got["expected_modality_test_error"][got["trained_modalities"][0]] \
                == got["expected_test_error"]
    assert nontrivial >= 1


def test_expected_test_error_is_none_for_diverged_weights(compare):
    from simcomp.experiment import expected_error

    run = compare.runs[0]
    broken = dataclasses.replace(run, final_weights=[w * np.nan for w in run.final_weights])
    assert expected_error(compare.cfg, compare.data, broken) is None
    view = results.RunView(compare.cfg, compare.data, broken, compare.predictions["joint"], None)
    assert results.quantity("expected_test_error").get(view) is None
    assert results.quantity("expected_modality_test_error").get(view) == [None, None]


def test_a_diverging_run_has_no_predicted_or_expected_error():
    from simcomp.data import make_experiment_data
    from support import poisoned_data

    cfg = small("train.mode=joint")
    exp = run_experiment(cfg, data=poisoned_data(cfg, make=make_experiment_data))
    joint = result_json.summarize(exp)["runs"]["joint"]
    assert joint["status"] == "nonfinite"
    assert joint["prediction_theory"] == "noise_aware"
    # the tracked dynamics follows the poisoned samples and diverges with the run; the
    # prediction comes from the configuration's distribution, which is not poisoned
    assert joint["tracked_test_error"] is None and joint["expected_test_error"] is None
    assert joint["predicted_test_error"] is not None
    assert "NaN" not in dumps_json(joint)


def test_noise_theory_switch_leaves_the_reduced_theory():
    off = run_experiment(small("train.noise_theory=false"))
    assert all(pred.noise_aware is None for pred in off.predictions.values())
    summary = result_json.summarize(off)
    for run in summary["runs"].values():
        assert run["prediction_theory"] == "reduced" and run["expected_test_error"] is None
        assert set(run["expected_modality_test_error"].values()) == {None}
        assert run["predicted_test_error"] == run["predicted_test_error_noiseless"]
    assert summary["comparison"]["expected_gap"] is None
    assert summary["comparison"]["predicted_gap"] is not None
    row = result_csv.result_row(off)
    assert row["expected_test_error_joint"] is None and row["prediction_theory_joint"] == "reduced"
    # everything measured is unchanged by the switch
    on = run_experiment(small())
    assert [r.learned_step.tolist() for r in on.runs] == [r.learned_step.tolist() for r in off.runs]
    with pytest.raises(Exception, match="train.noise_theory must be true or false"):
        small("train.noise_theory=1")


@pytest.mark.parametrize("extra, q", [(["model.q=4"], 4.0),
                                      (["model.learner=class_banks", "model.activation=relu"], 1.0)])
def test_winner_coordinate_uses_the_race_exponent(extra, q):
    """ReLU runs race with a constant drift (q = 1), srelu runs with model.q."""
    from simcomp import theory

    exp = run_experiment(small("train.mode=joint", *extra))
    pred = exp.predictions["joint"]
    got = result_json.summarize(exp)["runs"]["joint"]["winner_coordinate"]
    assert got == float(theory.winner_coordinate(pred.kappa, pred.gamma, q))
    other = float(theory.winner_coordinate(pred.kappa, pred.gamma, exp.cfg.model.q if q == 1.0
                                           else 3.0))
    assert not math.isclose(got, other)  # the exponent matters for this run


def test_gap_is_joint_minus_best_unimodal_with_its_sign():
    """The gap is positive when joint training loses (checked on errors that differ, so a
    flipped sign cannot pass as -0.0 == 0.0)."""

    class StubView(results.ExperimentView):
        def value(self, run, name):
            assert name == "test_error"
            return {"joint": 0.25, "unimodal-A": 0.10, "unimodal-B": 0.05}[run]

    view = StubView(cfg=None, runs={"joint": None, "unimodal-A": None, "unimodal-B": None})
    gap = results.quantity("gap").get(view)
    assert gap == pytest.approx(0.20) and gap > 0
    assert results.quantity("best_unimodal").get(view) == "B"
    assert results.quantity("best_unimodal_test_error").get(view) == 0.05
    assert results.quantity("joint_test_error").get(view) == 0.25
