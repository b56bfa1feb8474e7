"""Sweeps over fusion-engine configs: the fusion quantities as results.csv columns."""

import json

import pytest

import simcomp
from simcomp import results
from simcomp.cli import main
from simcomp.columns import result_columns
from simcomp.sweep import plan_sweep, run_sweep

SETS = {"model.head": "trainable", "data.kind": "gaussian", "model.activation": "linear",
        "train.loss": "mse", "data.modality.0.dim": 1, "data.modality.1.dim": 1,
        "model.width": 1, "model.init_scale": 1e-6, "train.lr": 0.04, "train.steps": 1200,
        "train.trace_every": 4, "data.n_train": 256, "train.mode": "joint",
        "data.modality.0.std": 2.0, "data.modality.0.noise": 0.0,
        "data.modality.1.noise": 0.0}
FUSION_ONLY = [q for q in results.QUANTITIES if q.engines == ("fusion",)]


def _argv(sets):
    out = []
    for key, value in sets.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def test_a_correlation_sweep_writes_the_fusion_quantities(tmp_path):
    base = simcomp.build_config(overrides=SETS)
    # 0.0 is the default, left out of the config's dict form: still a sweepable setting
    plan = plan_sweep(base, ["data.correlation=0.0,0.5"], 1)
    out = run_sweep(plan, tmp_path / "s", workers=1)
    assert out.not_ok == 0 and len(out.rows) == 2
    for row, run in zip(out.rows, plan.runs):
        assert row["data.correlation"] == run.cfg.data.correlation
        summary = simcomp.simulate(run.cfg).summary["runs"]["joint"]
        for q in FUSION_ONLY:
            if not q.csv:
                continue
            if q.level == "modality":
                got = {m: row[f"{q.name}_joint_{m}"] for m in "AB"}
            else:
                got = row[f"{q.name}_joint"]
            assert got == summary[q.name], q.name  # the row is the simulate summary
        # the original learner's quantities do not apply: empty cells
        assert row["learned_step_joint_A"] is None and row["test_error_joint"] is None
        assert row["winner_joint"] == ("A" if row["half_step_joint_A"] < row["half_step_joint_B"]
                                       else "B")
        assert row["half_step_ratio_joint"] == pytest.approx(
            max(row["half_step_joint_A"], row["half_step_joint_B"])
            / min(row["half_step_joint_A"], row["half_step_joint_B"]))
        assert row["predicted_half_step_joint_A"] is not None
    # std_A = 2 learns A first; the theory's ratio at rho = 0.5 is 1 + 3 / 0.75
    assert out.rows[1]["predicted_half_step_ratio_joint"] == pytest.approx(5.0)
    text = (tmp_path / "s" / "results.csv").read_text().splitlines()
    assert "half_step_joint_A" in text[0].split(",") and len(text) == 3


def test_fusion_columns_are_empty_for_the_original_learner():
    cols = result_columns(["A", "B"])
    for q in FUSION_ONLY:
        if q.csv:
            assert (f"{q.name}_joint_A" if q.level == "modality" else f"{q.name}_joint") in cols
    from simcomp.experiment import run_experiment
    from simcomp.columns import result_row

    cfg = simcomp.build_config(overrides={"train.steps": 20, "data.n_train": 64,
                                          "data.n_test": 64, "train.mode": "joint"})
    row = result_row(run_experiment(cfg))
    assert row["half_step_joint_A"] is None and row["misattribution_joint"] is None
    assert row["final_leading_alignment_joint_A"] is not None


def test_cli_sweep_and_phase_diagram_on_two_fusion_axes(tmp_path, capsys):
    argv = ["sweep", "--out", str(tmp_path / "s"), "--workers", "1",
            "--grid", "data.correlation=-0.5,0.5", "--grid", "data.modality.0.std=1.5,2",
            *_argv({**SETS, "train.steps": 600})]
    assert main(argv) == 0
    assert (tmp_path / "s" / "figures" / "phase.png").stat().st_size > 0
    assert main(["plot", str(tmp_path / "s")]) == 0


def test_the_sweep_table_shows_the_fusion_quantities_and_the_predicted_winner(tmp_path):
    """The printed table had '-' in every cell for fusion runs (it read only the original
    learner's columns) and predicted_winner was empty: both come from the fusion results."""
    from simcomp.sweep.report import sweep_report

    base = simcomp.build_config(overrides=SETS)
    plan = plan_sweep(base, ["data.correlation=-0.5,0.5"], 2)
    out = run_sweep(plan, tmp_path / "s", workers=1)
    for row in out.rows:
        pred = {m: row[f"predicted_half_step_joint_{m}"] for m in "AB"}
        assert row["predicted_winner_joint"] == min(pred, key=pred.get) == "A"
    text = sweep_report(out)
    table = text.split("\n\n")[1].splitlines()
    header, rows = table[0], table[1:]
    for column in ("first learned", "half steps", "ratio", "misattribution"):
        assert column in header
    assert "mean gap" not in header  # the original learner's columns: none of its runs here
    total = next(line for line in rows if line.startswith("all"))
    cells = total.split()
    assert "-" not in cells and cells[1] == "4" and "4/4" in cells
    mean_a = sum(r["half_step_joint_A"] for r in out.rows) / 4
    mean_b = sum(r["half_step_joint_B"] for r in out.rows) / 4
    assert f"{mean_a:.0f}/{mean_b:.0f}" in cells
    assert f"{sum(r['misattribution_joint'] for r in out.rows) / 4:+.3f}" in cells
