"""The theory under correlated presence (data.presence_correlation): orthant probabilities,
population mode against the reduced dynamics, test errors and the ensemble."""

import dataclasses
import math
from itertools import product

import numpy as np
import pytest

from simcomp import theory
from simcomp.config_file import build_config
from simcomp.data import make_experiment_data
from simcomp.experiment import predict_run_method, run_experiment
from simcomp.method_config import MethodConfig
from simcomp.presence import pattern_probabilities
from simcomp.theory import orthant
from simcomp.train import train_run

CASES = [([0.8, 0.3], -0.9), ([0.8, 0.3], -0.4), ([0.65, 0.9], 0.5), ([0.8, 0.3, 0.6], -0.45),
         ([0.8, 0.3, 0.6], -0.2), ([0.8, 0.3, 0.6], 0.3), ([0.8, 0.3, 0.6], 0.9),
         ([0.1, 0.95, 0.5], 0.97), ([0.7, 1.0, 0.4, 0.0], -0.3), ([0.6, 0.5, 0.3, 0.9, 0.75], -0.2),
         ([0.6, 0.5, 0.3, 0.9, 0.75], 0.6), ([0.8, 0.3, 0.6], 1.0)]


@pytest.mark.parametrize("p, c", CASES)
def test_theory_and_data_pattern_probabilities_agree(p, c):
    """Two independent computations (different code and methods) agree to 1e-12."""
    th = orthant.presence_pattern_probabilities(p, c)
    assert th.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.max(np.abs(th - pattern_probabilities(p, c))) <= 1e-12


@pytest.mark.parametrize("c", [-0.99, -0.5, -0.1, 0.3, 0.92])
def test_two_modalities_at_median_thresholds_closed_form(c):
    th = orthant.presence_pattern_probabilities([0.5, 0.5], c)
    both = 0.25 + math.asin(c) / (2 * math.pi)  # Sheppard
    assert th == pytest.approx([both, 0.5 - both, 0.5 - both, both], abs=1e-13)


@pytest.mark.parametrize("c", [-0.49, -0.3, 0.4, 0.95])
def test_three_modalities_at_median_thresholds_closed_form(c):
    th = orthant.presence_pattern_probabilities([0.5, 0.5, 0.5], c)
    assert th[7] == pytest.approx(0.125 + 3 * math.asin(c) / (4 * math.pi), abs=1e-12)


@pytest.mark.parametrize("p", [[0.8, 0.3], [0.1, 0.75], [0.5, 0.97]])
@pytest.mark.parametrize("c", [-0.95, -0.6, -0.2])
def test_complex_shift_equals_the_bivariate_cdf_for_two(p, c):
    """The complex-shift integral (used for K >= 3, c < 0) against the bivariate CDF."""
    h = orthant._quantile(np.array(p))
    sign = np.array(list(product((0, 1), repeat=2))) * 2.0 - 1.0
    via_shift = orthant._complex_factor(h, sign, c)
    via_cdf = [orthant._bivariate(s[0] * h[0], s[1] * h[1], s[0] * s[1] * c) for s in sign]
    assert np.max(np.abs(via_shift - via_cdf)) <= 1e-12


@pytest.mark.parametrize("p, c", [([0.8, 0.3, 0.6], -0.45), ([0.8, 0.3, 0.6], -0.25),
                                  ([0.7, 0.55, 0.4, 0.9], -0.3), ([0.8, 0.3, 0.6], 0.7)])
def test_orthant_probabilities_against_monte_carlo(p, c):
    """10^6 Gaussians drawn here (Cholesky of the correlation), within 4.5 standard errors."""
    K, n = len(p), 1_000_000
    R = (1 - c) * np.eye(K) + c * np.ones((K, K))
    z = np.random.default_rng(11).standard_normal((n, K)) @ np.linalg.cholesky(R).T
    h = orthant._quantile(np.array(p))
    idx = (z < h).astype(np.int64) @ (2 ** np.arange(K - 1, -1, -1))
    freq = np.bincount(idx, minlength=2 ** K) / n
    th = orthant.presence_pattern_probabilities(p, c)
    assert np.all(np.abs(freq - th) <= 4.5 * np.sqrt(th * (1 - th) / n) + 1e-12)


def test_zero_correlation_is_bit_identical_to_independence():
    p = [0.8, 0.35, 1.0]
    y, s, w = theory.population_patterns(p)
    assert np.array_equal(w, 0.5 * np.prod(np.where(s == 1, p, 1.0 - np.array(p)), axis=1))
    assert np.array_equal(theory.population_patterns(p, 0.0)[2], w)
    assert theory.test_error_coinflip([True, True, False], p, 0.0) == 0.5 * np.prod(
        1.0 - np.array(p)[:2])


def test_coinflip_error_is_half_the_chance_that_no_learned_modality_is_present():
    p = [0.8, 0.6, 0.3]
    # c = 1: one coin; nobody present exactly when z is above every threshold: 1 - max p
    assert theory.test_error_coinflip([True, True, False], p, 1.0) == pytest.approx(0.5 * 0.2)
    for c in (-0.4, 0.5):
        probs = pattern_probabilities(p, c)  # the data module's, against the theory's
        absent01 = probs[0b000] + probs[0b001]
        assert theory.test_error_coinflip([True, True, False], p, c) == pytest.approx(
            0.5 * absent01, abs=1e-13)
    assert theory.test_error_coinflip([True, True, False], p, 0.5) < 0.5 * 0.2 * 0.4 + 0.1
    assert theory.test_error_coinflip([True, True, False], p, 0.5) > 0.5 * 0.2 * 0.4


def _population_cfg(c, learner, K=2, extra=()):
    base = ["data.population=true", "data.modality.0.beta=2.0", "data.modality.0.presence=0.8",
            "data.modality.1.presence=0.7", "data.modality.0.dim=5", "data.modality.1.dim=4",
            "model.width=3", "model.init_scale=0.05", f"model.learner={learner}",
            "train.steps=400", "train.trace_every=1", "train.mode=joint",
            f"data.presence_correlation={c}"]
    base += [f"data.modality.{r}.noise=0.0" for r in range(K)]
    if K == 3:
        base += ["data.modality.2.dim=3", "data.modality.2.beta=1.3",
                 "data.modality.2.presence=0.5"]
    return build_config(None, base + list(extra))


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
@pytest.mark.parametrize("c, K", [(-0.7, 2), (0.6, 2), (-0.35, 3), (0.85, 3)])
def test_population_mode_matches_reduced_dynamics_with_correlation(learner, c, K):
    """Training on the data module's weighted points == the theory's dynamics on its own P(s)."""
    cfg = _population_cfg(c, learner, K)
    data = make_experiment_data(cfg)
    trained = list(range(K))
    run = train_run(cfg, data, "joint", trained)
    sim = run.trace.arrays()["alignment"]
    if sim.ndim == 3:
        sim = sim[:, :, None, :]
    pats = theory.population_patterns([m.presence for m in cfg.data.modality], c)
    red = theory.reduced_dynamics(
        run.initial_alignment, np.array([m.beta for m in cfg.data.modality]), *pats,
        cfg.model.q, cfg.model.rho, cfg.train.lr, cfg.train.steps, learner=learner,
        activation="srelu", threshold=cfg.model.rho, record_every=1)
    scale = np.abs(red.alignment).reshape(len(sim), -1).max(axis=1)
    rel = np.abs(sim - red.alignment).reshape(len(sim), -1).max(axis=1) / scale
    assert rel.max() <= 1e-10
    assert np.array_equal(red.learned_step, run.learned_step)
    assert run.learned_step[0] >= 0
    # the independent theory is measurably off: the correlation matters to the dynamics
    indep = theory.population_patterns([m.presence for m in cfg.data.modality])
    red0 = theory.reduced_dynamics(
        run.initial_alignment, np.array([m.beta for m in cfg.data.modality]), *indep,
        cfg.model.q, cfg.model.rho, cfg.train.lr, cfg.train.steps, learner=learner,
        activation="srelu", threshold=cfg.model.rho, record_every=1)
    assert np.abs(sim - red0.alignment).max() > 1e-4


@pytest.mark.parametrize("c", [-0.6, 0.7])
def test_predicted_test_errors_equal_the_population_measurement(c):
    """Population mode's test set is the distribution: the theory's errors must match exactly."""
    cfg = _population_cfg(c, "symmetric", extra=["train.mode=compare", "train.steps=150"])
    exp = run_experiment(cfg)
    for run in exp.runs:
        pred = exp.predictions[run.name]
        measured = run.trace.arrays()["test_error"][-1]
        assert pred.test_error_noiseless == pytest.approx(measured, abs=1e-12)
        exp_err = exp.expected_errors[run.name]
        assert exp_err.fused == pytest.approx(measured, abs=1e-12)
    # the ensemble of the uni-modal networks, predicted from the theory's patterns
    assert exp.ensemble.predicted_test_error == pytest.approx(exp.ensemble.test_error, abs=1e-12)


def test_expected_error_weights_patterns_by_correlation():
    """A noise-free encoder pair: the expected error is the chance-weighted tie/sign error."""
    cfg = _population_cfg(0.5, "symmetric")
    mods = list(cfg.data.modality)
    # weights that vote +1 for A only: B's encoder silent -> error = 0.5 P(A absent)
    w_a = np.zeros((1, 1, 5))
    w_a[0, 0, 0] = 3.0
    w_b = np.zeros((1, 1, 4))
    out = theory.expected_test_error([w_a, w_b], mods, correlation=0.5)
    assert out.fused == pytest.approx(0.5 * 0.2, abs=1e-12)
    w_b[0, 0, 0] = 3.0  # both vote: error only where both are absent
    for c in (-0.5, 0.5):
        out = theory.expected_test_error([w_a, w_b], mods, correlation=c)
        assert out.fused == pytest.approx(0.5 * pattern_probabilities([0.8, 0.7], c)[0], abs=1e-12)


def test_method_prediction_uses_the_correlation():
    cfg = _population_cfg(0.8, "symmetric", extra=["train.steps=150"])
    cfg0 = cfg.replace(**{"data.presence_correlation": 0.0})
    data = make_experiment_data(cfg)
    a0 = np.full((2, 1, 3), 0.05)
    def ume(c):
        return predict_run_method(dataclasses.replace(c, method=MethodConfig(name="ume")),
                                  data, [0, 1], a0)

    # both modalities learned: error only where both are absent, more often when correlated
    assert ume(cfg).test_error_coinflip == pytest.approx(
        0.5 * pattern_probabilities([0.8, 0.7], 0.8)[0], abs=1e-13)
    assert ume(cfg0).test_error_coinflip == pytest.approx(0.5 * 0.2 * 0.3, abs=1e-15)


def test_benchmark_small_grid_learned_steps_follow_the_correlated_theory():
    """benchmarks/presence_correlation.py --quick: the theory with c tracks the measured learned
    steps (median within the 3 % target) and does better than the theory that ignores c."""
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    bench = importlib.import_module("presence_correlation")
    result = bench.main(["--quick"])
    stats = result["stats"]
    assert stats["n"] >= 3 and stats["mismatched"] == 0
    assert stats["median"] <= bench.TARGET
    ignored = bench.stats(result["rows"], "error_independent")
    assert ignored["median"] > stats["median"]
    assert "<!-- BEGIN presence_correlation -->" in result["section"]


def test_noise_aware_prediction_weighs_its_test_error_by_the_correlation(monkeypatch):
    """The noise-aware prediction's expected test error is taken with the data's correlation."""
    from simcomp.theory import noisy_dynamics

    seen = []
    real = noisy_dynamics.expected_error_gaussian

    def spy(*args, **kwargs):
        seen.append(kwargs.get("correlation"))
        return real(*args, **kwargs)

    monkeypatch.setattr(noisy_dynamics, "expected_error_gaussian", spy)
    cfg = build_config(None, ["data.n_train=64", "data.n_test=64", "data.modality.0.dim=6",
                              "data.modality.1.dim=5", "model.width=2", "train.steps=20",
                              "data.presence_correlation=-0.4"])
    data = make_experiment_data(cfg)
    from simcomp.experiment import predict_run
    from simcomp.trace import geometry

    a0 = geometry(data.init, data.dictionaries)[0]
    pred = predict_run(cfg, data, [0, 1], a0, noise_aware=True)
    # the distribution-level prediction and the tracked check both weigh by it
    assert pred.noise_aware is not None and pred.tracked is not None and seen == [-0.4, -0.4]
