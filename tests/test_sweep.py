"""Sweeps: grid parsing, seed derivation and the results table (its columns and values).

Resuming and the sweep directory are tested in tests/test_sweep_resume.py, the executors
(Dask) and the command line in tests/test_sweep_execute.py.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from simcomp import columns as result_csv
from simcomp import results
from simcomp.config import ConfigError
from simcomp.experiment import run_experiment, summarize

from sweep_helpers import THIRD, base, read_csv, sw


# --------------------------------------------------------------------------- grid parsing


def test_linspace_floats_and_lists():
    axis = sw.parse_grid("data.modality.0.beta=1:2:5")
    assert axis.key == "data.modality.0.beta" and axis.spec == "1:2:5"
    assert axis.values == (1.0, 1.25, 1.5, 1.75, 2.0)
    assert all(type(v) is float for v in axis.values)
    assert sw.parse_grid("model.q=3:3:1").values == (3.0,)
    assert sw.parse_grid("data.modality.1.presence=0.5, 1").values == (0.5, 1)
    assert sw.parse_grid("train.mode=joint,compare").values == ("joint", "compare")
    assert sw.parse_grid('model.learner="symmetric","class_banks"').values == (
        "symmetric", "class_banks")
    assert sw.parse_grid("data.population=true,false").values == (True, False)
    assert sw.parse_grid("train.steps=40").values == (40,)


def test_linspace_integer_settings_give_exact_ints():
    for text, expected in [("train.steps=100:500:5", (100, 200, 300, 400, 500)),
                           ("data.n_train=10:20:3", (10, 15, 20)),
                           ("data.modality.1.dim=4:8:3", (4, 6, 8)),
                           ("model.width=1:4:4", (1, 2, 3, 4)),
                           ("train.steps=1e2:3e2:3", (100, 200, 300))]:
        values = sw.parse_grid(text).values
        assert values == expected
        assert all(type(v) is int for v in values)


@pytest.mark.parametrize("text, words", [
    ("train.steps=100:200:4", ["train.steps", "integer", "133.333"]),
    ("data.modality.0.dim=1.5:3.5:3", ["data.modality.0.dim", "integer"]),
    ("model.learner=1:2:3", ["model.learner", "numeric"]),
    ("model.nonsense=1:2:3", ["model.nonsense", "not a config setting"]),
    ("data.modality.0.beta=a:2:3", ["data.modality.0.beta", "START"]),
    ("data.modality.0.beta=1:2:0", ["data.modality.0.beta", "NUM"]),
    ("data.modality.0.beta=1:2:2.5", ["data.modality.0.beta", "NUM"]),
    ("data.modality.0.beta=1:2:1", ["data.modality.0.beta", "START = STOP"]),
    ("data.modality.0.beta=", ["data.modality.0.beta", "no values"]),
    ("data.modality.0.beta=1,,2", ["data.modality.0.beta", "empty value"]),
    ("data.modality.0.beta=[1,2]", ["data.modality.0.beta", "numbers, strings or booleans"]),
    ("nokey", ["KEY=START:STOP:NUM"]),
    ("seed=1,2", ["--seeds"]),
])
def test_bad_grid_text_is_refused_naming_the_key(text, words):
    with pytest.raises(sw.SweepError) as err:
        sw.parse_grid(text)
    assert isinstance(err.value, ConfigError)  # exit code 2 in the CLI
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("grids, words", [
    (["data.modality.0.beta=1,-1"], ["data.modality.0.beta", "-1", "> 0"]),
    (["train.stepz=1,2"], ["train.stepz", "unknown config key"]),
    (["train.mode=joint,sideways"], ["train.mode", "sideways"]),
    (["data.modality.0.beta=1,2", "data.modality.0.beta=3"], ["more than once"]),
    (["data.modality.0.beta=1,1.0"], ["data.modality.0.beta", "appears more than once"]),
    (["data.modality.1.name=B,C"], ["modality names", "data.modality.1.name"]),
    (["data.modality.0.dim=4,8", "data.modality.0.distractors=0,6"],
     ["data.modality.0.dim=4", "data.modality.0.distractors=6", "distractors"]),
    (["data.modality"], ["KEY="]),
])
def test_bad_grid_values_fail_before_anything_runs(grids, words):
    with pytest.raises(ConfigError) as err:
        sw.plan_sweep(base(), grids, 2)
    for word in words:
        assert word in str(err.value)


def test_bad_seeds_refused():
    for seeds in (0, -1, 1.5, True):
        with pytest.raises(sw.SweepError, match="--seeds"):
            sw.plan_sweep(base(), [], seeds)


def test_cartesian_product_order_and_normalised_values():
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1,2,3", "train.mode=joint,compare"], 4)
    assert len(plan.points) == 6 and len(plan.runs) == 24
    assert plan.axes[0].values == (1.0, 2.0, 3.0)  # ints normalised to the float setting
    assert [dict(p) for p in plan.points[:3]] == [
        {"data.modality.0.beta": 1.0, "train.mode": "joint"},
        {"data.modality.0.beta": 1.0, "train.mode": "compare"},
        {"data.modality.0.beta": 2.0, "train.mode": "joint"}]
    assert [r.repeat for r in plan.runs[:5]] == [0, 1, 2, 3, 0]
    for run in plan.runs:
        point = dict(run.point)
        assert run.cfg.data.modality[0].beta == point["data.modality.0.beta"]
        assert run.cfg.train.mode == point["train.mode"]
        assert run.cfg.seed == run.seed
    assert len({r.run_id for r in plan.runs}) == 24
    assert len(sw.plan_sweep(base(), [], 3).runs) == 3  # no grid: one point, N seeds


# --------------------------------------------------------------------------- seeds


def reference_seed(base_seed, point, repeat):
    """The rule of docs/sweeps.md, written out independently."""
    text = json.dumps({"base_seed": base_seed, "point": sorted([k, v] for k, v in point.items()),
                       "repeat": repeat}, sort_keys=True, separators=(",", ":"))
    entropy = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) >> 1


def test_seed_rule_is_the_documented_one():
    point = {"data.modality.0.beta": 1.5, "train.steps": 30}
    for repeat in range(3):
        assert sw.derive_seed(0, point, repeat) == reference_seed(0, point, repeat)
    assert sw.derive_seed(0, {}, 0) == reference_seed(0, {}, 0)
    # pinned: changing the rule would reseed every stored sweep
    assert sw.derive_seed(0, point, 0) == 6587154392326367645
    assert sw.derive_seed(0, {}, 0) == 8717395936649211693
    assert "SHA-256" in sw.SEED_RULE


def test_seed_depends_on_content_not_position():
    point = {"data.modality.0.beta": 1.5, "train.mode": "joint"}
    seed = sw.derive_seed(7, point, 1)
    assert 0 <= seed < 2**63
    assert sw.derive_seed(7, dict(reversed(list(point.items()))), 1) == seed
    assert sw.derive_seed(7, point, 0) != seed
    assert sw.derive_seed(8, point, 1) != seed
    assert sw.derive_seed(7, {**point, "data.modality.0.beta": 1.25}, 1) != seed

    a = sw.plan_sweep(base(), ["data.modality.0.beta=1,2", "train.mode=joint,compare"], 2)
    b = sw.plan_sweep(base(), ["train.mode=compare,joint", "data.modality.0.beta=3,2,1.5,1"], 3)
    seeds_b = {(frozenset(r.point), r.repeat): (r.seed, r.run_id) for r in b.runs}
    for run in a.runs:
        assert seeds_b[(frozenset(run.point), run.repeat)] == (run.seed, run.run_id)
    again = sw.plan_sweep(base(), ["data.modality.0.beta=1,2", "train.mode=joint,compare"], 2)
    assert [r.seed for r in again.runs] == [r.seed for r in a.runs]


def test_run_id_ignores_threads_only():
    cfg = base()
    assert sw.run_id(cfg) == sw.run_id(cfg.replace(**{"train.threads": 4}))
    assert sw.run_id(cfg) != sw.run_id(cfg.replace(seed=1))
    assert sw.run_id(cfg) != sw.run_id(cfg.replace(**{"train.steps": 31}))
    assert len(sw.run_id(cfg)) == 16


# --------------------------------------------------------------------------- the table


def cell(value):
    """What results.csv holds for a value of summary.json."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(value) if isinstance(value, float) else str(value)


def check_row_against_summary(row, cfg, names):
    """Every result column equals its summary.json value, by the naming rule of simcomp.results.

    ``<q>_joint_<M>`` / ``<q>_alone_<M>`` are ``runs.joint.<q>.<M>`` /
    ``runs.unimodal-<M>.<q>``, ``<q>_<M>`` a value shared by the runs,
    comparison quantities keep their name; missing runs give empty cells.
    """
    summary = summarize(run_experiment(cfg))
    runs = summary["runs"]
    checked, empty = set(), 0
    for q in results.QUANTITIES:
        if not q.csv:
            continue
        if q.level == "comparison":
            comp = summary["comparison"]
            expected = {q.name: None if comp is None else comp[q.name]}
        else:
            expected = {}
            for name in names:
                joint, alone = runs.get("joint"), runs.get(f"unimodal-{name}")
                if q.csv == "shared":
                    holder = joint or alone
                    expected[f"{q.name}_{name}"] = holder[q.name][name]
                    continue
                pick = (lambda run: run[q.name][name]) if q.level == "modality" else (
                    lambda run: run[q.name])
                key = f"{q.name}_joint_{name}" if q.level == "modality" else f"{q.name}_joint"
                expected[key] = None if joint is None else pick(joint)
                if q.csv == "all":
                    expected[f"{q.name}_alone_{name}"] = None if alone is None else (
                        alone[q.name][name] if q.level == "modality" else alone[q.name])
        for column, value in expected.items():
            assert row[column] == cell(value), (column, row[column], value)
            checked.add(column)
            empty += value is None
    for s in result_csv.SETTINGS:
        for r, name in enumerate(names):
            assert row[f"{s}_{name}"] == cell(getattr(cfg.data.modality[r], s))
            checked.add(f"{s}_{name}")
    assert row["presence_correlation"] == cell(cfg.data.presence_correlation)
    checked.add("presence_correlation")
    assert row["status"] == "ok"
    assert checked | {"status"} == set(result_csv.result_columns(names))  # every column checked
    assert "seconds" not in row
    return sum(1 for name in names if row[f"learned_step_joint_{name}"] == ""
               or row.get(f"learned_step_alone_{name}") == "")


def test_csv_columns_and_values_k2(tmp_path):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5", "train.mode=compare,joint"], 1)
    result = sw.run_sweep(plan, tmp_path / "s", workers=1)
    header, rows = read_csv(tmp_path / "s" / "results.csv")
    assert header == sw.csv_columns(plan.grid_keys, ("A", "B")) == plan.columns
    assert header[:4] == ["data.modality.0.beta", "train.mode", "repeat", "seed"]
    assert header[4:8] == ["dim_A", "dim_B", "beta_A", "beta_B"]
    assert header[-11:] == ["best_unimodal", "best_unimodal_test_error", "gap", "expected_gap",
                            "predicted_best_unimodal", "predicted_gap", "method_predicted_gap",
                            "tracked_gap",
                            "ensemble_test_error",
                            "gap_to_ensemble", "status"]
    assert "learned_by_horizon_joint_B" in header and "race_learned_step_alone_A" in header
    assert len(rows) == 4 and result.ran == 4 and result.done_before == 0
    empties = 0
    for run, values in zip(plan.runs, rows):
        row = dict(zip(header, values))
        assert row["data.modality.0.beta"] == repr(dict(run.point)["data.modality.0.beta"])
        assert row["train.mode"] == dict(run.point)["train.mode"]
        assert row["repeat"] == str(run.repeat) and row["seed"] == str(run.seed)
        empties += check_row_against_summary(row, run.cfg, ("A", "B"))
    assert empties > 0  # a "never" was checked to be an empty cell
    assert sum(1 for v in rows if v[header.index("winner_coordinate_joint")]) >= 1


def test_csv_k3(tmp_path):
    plan = sw.plan_sweep(base(*THIRD), ["data.modality.2.beta=1.5"], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    header, rows = read_csv(tmp_path / "s" / "results.csv")
    assert plan.names == ("A", "B", "C")
    assert header == plan.columns
    assert header[3:9] == ["dim_A", "dim_B", "dim_C", "beta_A", "beta_B", "beta_C"]
    row = dict(zip(header, rows[0]))
    check_row_against_summary(row, plan.runs[0].cfg, ("A", "B", "C"))
    assert row["winner_coordinate_joint"] == ""


def test_sweep_json_and_records(tmp_path):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1:2:2"], 2)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    meta = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert meta["definition"]["base_config"] == base().to_dict()
    assert meta["definition"]["grids"] == [
        {"key": "data.modality.0.beta", "spec": "1:2:2", "values": [1.0, 2.0]}]
    assert meta["definition"]["seeds"] == 2
    assert meta["definition"]["seed_rule"] == sw.SEED_RULE
    assert meta["counts"] == {"grid_points": 2, "seeds": 2, "runs": 4, "done": 4, "done_before": 0,
                              "ran": 4, "complete": True}
    assert meta["provenance"]["numba_version"] and meta["columns"] == plan.columns
    records = sorted((tmp_path / "s" / "runs").iterdir())
    assert [p.name for p in records] == sorted(f"{r.run_id}.json" for r in plan.runs)
    record = json.loads((tmp_path / "s" / "runs" / f"{plan.runs[1].run_id}.json").read_text())
    assert record["seed"] == plan.runs[1].seed and record["repeat"] == 1
    assert record["config"] == plan.runs[1].cfg.to_dict()


def test_sweep_over_the_presence_correlation(tmp_path):
    """data.presence_correlation is a grid key like any other; each row carries its value."""
    plan = sw.plan_sweep(base("data.modality.0.presence=0.7", "data.modality.1.presence=0.6"),
                         ["data.presence_correlation=-0.5,0,0.8"], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    header, rows = read_csv(tmp_path / "s" / "results.csv")
    assert header[0] == "data.presence_correlation" and "presence_correlation" in header
    assert [r[0] for r in rows] == ["-0.5", "0.0", "0.8"]
    assert [r[header.index("presence_correlation")] for r in rows] == ["-0.5", "0.0", "0.8"]
    for run, values in zip(plan.runs, rows):
        assert run.cfg.data.presence_correlation == float(values[0])
        check_row_against_summary(dict(zip(header, values)), run.cfg, ("A", "B"))
    with pytest.raises(ConfigError, match="data.presence_correlation must be >= -1/"):
        sw.plan_sweep(base(*THIRD), ["data.presence_correlation=-0.6"], 1)


# --------------------------------------------------------------------------- values and columns


def test_linspace_values_are_the_decimals_meant(tmp_path):
    axis = sw.parse_grid("data.modality.0.beta=1:2:6")
    assert axis.values == (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
    assert sw.parse_grid("data.modality.0.noise=0:0.3:4").values == (0.0, 0.1, 0.2, 0.3)
    assert sw.parse_grid("model.q=2.5:3.5:3").values == (2.5, 3.0, 3.5)
    plan = sw.plan_sweep(base(), ["data.modality.1.presence=0.7:0.9:3"], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    header, rows = read_csv(tmp_path / "s" / "results.csv")
    assert [r[0] for r in rows] == ["0.7", "0.8", "0.9"]
    assert [r[header.index("presence_B")] for r in rows] == ["0.7", "0.8", "0.9"]


def test_every_modality_setting_is_a_column(tmp_path):
    plan = sw.plan_sweep(base("data.modality.1.noise=0.05"), ["data.modality.0.beta=1.5"], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    rows = sw.read_results(tmp_path / "s" / "results.csv")
    cfg = plan.runs[0].cfg
    for setting in result_csv.SETTINGS:
        for r, name in enumerate("AB"):
            value = getattr(cfg.data.modality[r], setting)
            assert rows[0][f"{setting}_{name}"] == (repr(value) if isinstance(value, float)
                                                    else str(value))
    assert rows[0]["noise_B"] == "0.05" and rows[0]["beta_A"] == "1.5"
    assert rows[0]["beta_B"] == repr(cfg.data.modality[1].beta)  # not swept, still there


def test_sweep_report_names_the_measured_winner(tmp_path):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 2)
    result = sw.run_sweep(plan, tmp_path / "s", workers=1)
    text = sw.sweep_report(result)
    header = text.splitlines()[2]
    assert "winner" in header and "as predicted" in header and "joint loses" in header
    for p, point in enumerate(plan.points):
        rows = result.rows[p * 2:(p + 1) * 2]
        winners = [r["winner_joint"] or "none" for r in rows]
        top = max(sorted(set(winners)), key=winners.count)
        line = next(ln for ln in text.splitlines()
                    if ln.startswith(f"data.modality.0.beta={dict(point)['data.modality.0.beta']}"))
        assert f"{top} {winners.count(top)}/2" in line
