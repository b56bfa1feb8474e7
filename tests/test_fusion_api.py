"""The fusion engine through the one result schema: simulate, save, load, the CLI, preflight."""

import json

import numpy as np
import pytest

import simcomp
from simcomp.cli import main
from simcomp.fusion_train import prepare
from simcomp.preflight import ResourceError, _fusion_params, check, estimate_simulate

SETS = {"model.head": "trainable", "data.kind": "gaussian", "model.activation": "linear",
        "train.loss": "mse", "data.modality.0.dim": 1, "data.modality.1.dim": 1,
        "model.width": 1, "model.init_scale": 1e-12, "train.lr": 0.04, "train.steps": 2000,
        "train.trace_every": 1, "data.n_train": 1024, "train.mode": "joint",
        "data.modality.0.std": 2.0, "data.correlation": 0.5, "data.modality.0.noise": 0.0,
        "data.modality.1.noise": 0.0}


def _argv(sets):
    out = []
    for key, value in sets.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def test_simulate_reports_measured_and_predicted_side_by_side(tmp_path):
    result = simcomp.simulate(simcomp.build_config(overrides=SETS))
    run = result.summary["runs"]["joint"]
    assert result.summary["engine"] == "fusion"
    for key in ("total_weight", "half_step", "predicted_half_step", "misattribution",
                "predicted_misattribution", "half_step_ratio", "predicted_half_step_ratio"):
        assert key in run
    assert set(run["half_step"]) == {"A", "B"}
    assert run["predicted_half_step"]["A"] == pytest.approx(run["half_step"]["A"], rel=0.05)
    assert run["predicted_half_step_ratio"] == pytest.approx(1 + 3 / 0.75)
    trace = result.traces["joint"]
    assert trace["total_weight"].shape == (2001, 2)
    result.save(tmp_path / "out")
    again = simcomp.load(tmp_path / "out")
    assert again.summary["runs"] == json.loads(json.dumps(result.summary["runs"]))
    np.testing.assert_array_equal(again.traces["joint"]["total_weight"], trace["total_weight"])
    assert (tmp_path / "out" / "figures" / "total_weight.png").stat().st_size > 0


def test_cli_simulate_and_theory(tmp_path, capsys):
    assert main(["simulate", "--quiet", "--out", str(tmp_path / "o"), *_argv(SETS)]) == 0
    assert main(["theory", *_argv(SETS)]) == 0
    assert "predicted_half_step A" in capsys.readouterr().out
    assert main(["theory", "--json", *_argv(SETS)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"][0]["ratio"] == pytest.approx(5.0)


def test_cli_refuses_a_bad_fusion_key_with_exit_2(capsys):
    assert main(["theory", *_argv({**SETS, "model.architecture": "mid_fusion"})]) == 2
    assert "model.architecture" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [
    {}, {"model.architecture": "early_fusion", "model.width": 3},
    {"model.architecture": "deep_fusion", "model.depth": 5, "model.fusion_layer": 3,
     "model.width": 2},
    {"model.architecture": "deep_fusion", "model.depth": 4, "model.fusion_layer": 4,
     "data.modality.0.dim": 3}])
def test_preflight_counts_the_network_weights(extra):
    cfg = simcomp.build_config(overrides={**SETS, **extra})
    assert _fusion_params(cfg) == prepare(cfg).net.n_params


def test_preflight_refuses_an_oversized_fusion_run():
    cfg = simcomp.build_config(overrides={**SETS, "data.modality.0.dim": 200000,
                                          "data.n_train": 10**6})
    with pytest.raises(ResourceError):
        check(estimate_simulate(cfg))


def test_the_original_experiment_refuses_fusion_configs():
    from simcomp.experiment import run_experiment, run_experiments

    cfg = simcomp.build_config(overrides=SETS)
    for call in (lambda: run_experiment(cfg), lambda: run_experiments([cfg])):
        with pytest.raises(simcomp.ConfigError, match="fusion engine"):
            call()


def test_report_keeps_huge_total_weights_in_their_column():
    # A diverging run (data.label_noise = 1e6) left finite total weights of ~1e230, which
    # were printed with every one of their digits.
    from simcomp.fusion_result import fusion_report

    run = {"total_weight": {"A": 8.19e229, "B": float("nan")}, "half_step": {"A": None, "B": 3},
           "predicted_half_step": {"A": 151.0, "B": None}, "half_step_ratio": None,
           "predicted_half_step_ratio": 5.0, "misattribution": None,
           "predicted_misattribution": 0.25, "final_loss": float("inf"), "status": "nonfinite",
           "theory_formula": "late_fusion_two_layer"}
    summary = {"simcomp_version": "x", "seed": 0, "runs": {"joint": run},
               "config": {"model": {"activation": "linear", "width": 1},
                          "train": {"lr": 0.04, "steps": 10}}}
    lines = fusion_report(summary).splitlines()
    row = next(line for line in lines if line.startswith("A "))
    assert "8.19e+229" in row and len(row) <= 46
    assert "nan" in next(line for line in lines if line.startswith("B "))
