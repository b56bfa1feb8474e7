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

import reference_methods as ref
from simcomp.cli import main
from simcomp.config import ConfigError
from simcomp.config_file import build_config
from simcomp.experiment import run_experiment
from simcomp.method_config import MethodNoOpWarning
from simcomp.trace import METHOD_KEYS

SMALL = ["data.n_train=96", "data.n_test=200", "data.modality.0.dim=8", "data.modality.1.dim=8",
         "model.width=3", "train.steps=80", "train.trace_every=20", "train.threads=1"]

BAD = [
    (["method.name=ogm_boost", "method.boost=0"], r"method.boost \(method ogm_boost\) must be > 0"),
    (["method.name=ogm_boost", "method.boost=fast"],
     r"method.boost \(method ogm_boost\) must be a number"),
    (["method.name=ogm_boost", "method.start=-1"], r"method.start \(method ogm_boost\) must be >= 0"),
    (["method.name=ogm_boost", "method.start=10", "method.stop=5"],
     r"method.stop \(method ogm_boost\) must be >= 11"),
    (["method.name=ogm_boost", "method.alpha=0.3"],
     r"method.alpha is not a setting of method 'ogm_boost'; method ogm_boost takes: boost, "
     r"start, stop"),
]

NOOP = [
    (["method.name=ogm_boost", "method.boost=1"], "method.boost 1"),
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
                 "method.name=none,ogm_boost"] + [f"--set={s}" for s in SMALL]) == 0
    with open(sweep / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert sorted(row["method_joint"] for row in table) == ["none", "ogm_boost"]
    for row in table:
        assert row["method_predicted_learned_step_joint_A"] != ""
    base = ["method.name=ogm_boost"] + SMALL
    assert main(["sweep", "--quiet", "--workers", "1", "--out", str(tmp_path / "b"), "--grid",
                 "method.boost=2,4"] + [f"--set={s}" for s in base]) == 0
