"""The noise-aware dynamics against the simulation where it must be exact.

* With the exact Gram matrix of the training noise and the run's initial
  noise pre-activations it is the simulation in sample coordinates: every
  traced alignment agrees to rounding, in any regime (noise, distractors,
  both learners, ReLU, K = 3).
* Without noise and distractors it is the reduced dynamics on the run's
  training samples (docs/model.md section 5.4), limit mode or not.
* In the race regime (small noise, high dimension) the limit mode with drawn
  initial noise pre-activations gives the measured learned steps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simcomp import theory as th
from simcomp.config import config_from_dict
from simcomp.data import empirical_patterns, make_experiment_data
from simcomp.theory import noisy_dynamics as nd
from simcomp.train import train_run


def make_cfg(learner="symmetric", activation="srelu", noise=0.1, distractors=0, dim=32, n=64,
             steps=150, K3=False, width=4, seed=1):
    mods = [{"name": "A", "dim": dim, "beta": 1.3, "presence": 0.8,
             "noise": noise * 1.3 / np.sqrt(dim), "distractors": distractors,
             "distractor_strength": 0.3 if distractors else 0.0, "dictionary": "random"},
            {"name": "B", "dim": dim, "beta": 1.0, "presence": 1.0, "noise": noise / np.sqrt(dim)}]
    if K3:
        mods.append({"name": "C", "dim": dim // 2, "beta": 1.1, "presence": 0.6,
                     "noise": 2 * noise / np.sqrt(dim), "distractors": 2,
                     "distractor_strength": 0.2})
    model = {"learner": learner, "width": width, "activation": activation}
    if activation == "relu":
        model["learned_threshold"] = 0.5
    return config_from_dict({"seed": seed, "data": {"modality": mods, "n_train": n, "n_test": 16},
                             "model": model,
                             "train": {"steps": steps, "trace_every": 10, "mode": "joint"}})


def noise_of(cfg, data, trained, exact, pre0):
    return [nd.training_noise(data.train.X[r], data.train.y, data.train.presence[:, r],
                              cfg.data.modality[r].beta, data.signals[r],
                              data.init[r] if pre0 else None, exact=exact) for r in trained]


@pytest.mark.parametrize("kwargs", [
    {},
    {"noise": 0.8},
    {"learner": "class_banks"},
    {"distractors": 3},
    {"learner": "class_banks", "activation": "relu", "noise": 0.4},
    {"K3": True, "noise": 0.4},
])
def test_exact_gram_mode_is_the_simulation(kwargs):
    cfg = make_cfg(**kwargs)
    data = make_experiment_data(cfg)
    trained = list(range(cfg.K))
    run = train_run(cfg, data, "joint", trained)
    dyn = nd.noise_aware_dynamics(cfg, trained, run.initial_alignment, data.train.y,
                                  data.train.presence, noise_of(cfg, data, trained, True, True))
    sim = np.asarray(run.trace.records["alignment"], dtype=float).reshape(dyn.alignment.shape)
    np.testing.assert_array_equal(dyn.steps, run.trace.records["steps"])
    assert np.abs(dyn.alignment - sim).max() <= 1e-10 * np.abs(sim).max()
    np.testing.assert_array_equal(dyn.learned_step_bank, run.learned_step_bank)
    np.testing.assert_allclose(dyn.loss, run.trace.records["train_loss"], rtol=1e-10)
    # the final weights' orthogonal Gram, from the coefficients alone
    for r in trained:
        W = run.final_weights[r].reshape(-1, cfg.data.modality[r].dim)
        v = data.signals[r]
        Wp = W - np.outer(W @ v, v)
        np.testing.assert_allclose(dyn.weight_gram[r], Wp @ Wp.T, rtol=1e-8,
                                   atol=1e-10 * np.abs(Wp @ Wp.T).max())


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
def test_noise_free_limit_is_the_reduced_dynamics(learner):
    cfg = make_cfg(learner=learner, noise=0.0, steps=200)
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1])
    a0 = run.initial_alignment
    red = th.reduced_dynamics(a0, [1.3, 1.0], *empirical_patterns(data.train, [0, 1]),
                              cfg.model.q, cfg.model.rho, cfg.train.lr, cfg.train.steps,
                              learner, record_every=cfg.train.trace_every)
    for exact in (False, True):
        dyn = nd.noise_aware_dynamics(cfg, [0, 1], a0, data.train.y, data.train.presence,
                                      noise_of(cfg, data, [0, 1], exact, False))
        assert np.abs(dyn.pre).max() < 1e-12  # no noise: nothing to memorise (rounding only)
        np.testing.assert_allclose(dyn.alignment, red.alignment, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(dyn.learned_step, red.learned_step)
        np.testing.assert_allclose(dyn.loss, red.loss, rtol=1e-10)
    assert red.learned_step[0] >= 0  # the comparison covers a learned modality


def test_limit_mode_predicts_learned_steps_in_the_race_regime():
    """High dimension (d = 256 >> n = 64), moderate noise: the limit holds.

    With the run's own initial noise pre-activations the learned step is
    within 1% (one step); with drawn ones (config, noise norms and initial
    alignments only) within 4%: which neuron leads then depends on the draw.
    """
    errs_pre0, errs_drawn = [], []
    for seed in range(3):
        cfg = make_cfg(noise=0.2, dim=256, n=64, steps=400, seed=seed, width=8)
        data = make_experiment_data(cfg)
        run = train_run(cfg, data, "joint", [0, 1])
        w = run.winner
        assert w is not None
        for pre0, errs in ((True, errs_pre0), (False, errs_drawn)):
            pred = nd.noise_aware_predict(cfg, [0, 1], run.initial_alignment, data.train.y,
                                          data.train.presence,
                                          noise_of(cfg, data, [0, 1], False, pre0),
                                          points=512, replicates=4)
            assert pred.predicted_winner == w
            errs.append(abs(pred.learned_step[w] / run.learned_step[w] - 1))
    assert max(errs_pre0) <= 0.01, errs_pre0
    assert max(errs_drawn) <= 0.04, errs_drawn


def test_uses_each_modalitys_own_noise_and_beta():
    """K = 3 in permuted order equals the same modalities in config order, permuted."""
    cfg = make_cfg(K3=True, noise=0.4)
    data = make_experiment_data(cfg)
    a0 = np.random.default_rng(0).normal(0, 0.01, (3, 1, 4))
    order = [2, 0, 1]
    nz = noise_of(cfg, data, [0, 1, 2], False, True)
    dyn = nd.noise_aware_dynamics(cfg, [0, 1, 2], a0, data.train.y, data.train.presence, nz)
    perm = nd.noise_aware_dynamics(cfg, order, a0[order], data.train.y,
                                   data.train.presence[:, order], [nz[r] for r in order])
    np.testing.assert_allclose(perm.alignment, dyn.alignment[:, order], rtol=1e-12, atol=1e-16)
    np.testing.assert_array_equal(perm.learned_step, dyn.learned_step[order])
    # a different beta for C changes C's trajectory
    other = cfg.replace(**{"data.modality.2.beta": 0.7})
    alt = nd.noise_aware_dynamics(other, [0, 1, 2], a0, data.train.y, data.train.presence, nz)
    assert not np.allclose(alt.alignment[:, 2], dyn.alignment[:, 2])


def test_predicted_gap_and_arguments():
    cfg = make_cfg(noise=0.4, steps=60)
    data = make_experiment_data(cfg)
    a0 = np.full((2, 1, 4), 0.01)
    nz = noise_of(cfg, data, [0, 1], False, False)
    joint = nd.noise_aware_predict(cfg, [0, 1], a0, data.train.y, data.train.presence, nz,
                                   points=256, replicates=4)
    uni = [nd.noise_aware_predict(cfg, [r], a0[r:r + 1], data.train.y,
                                  data.train.presence[:, [r]], [nz[r]], points=256, replicates=4)
           for r in (0, 1)]
    gap = nd.predicted_gap(joint, uni)
    assert gap == joint.test_error.fused - min(u.test_error.fused for u in uni)
    with pytest.raises(ValueError, match="uni-modal"):
        nd.predicted_gap(joint, [])
    with pytest.raises(ValueError, match="alignment0"):
        nd.noise_aware_dynamics(cfg, [0, 1], a0[:1], data.train.y, data.train.presence, nz)
    with pytest.raises(ValueError, match="TrainingNoise"):
        nd.noise_aware_dynamics(cfg, [0, 1], a0, data.train.y, data.train.presence, nz[:1])
    mixed = [nz[0], noise_of(cfg, data, [1], True, False)[0]]
    with pytest.raises(ValueError, match="exact"):
        nd.noise_aware_dynamics(cfg, [0, 1], a0, data.train.y, data.train.presence, mixed)


def test_limit_recovers_theta_as_exact_mode_with_a_diagonal_gram():
    """The limit keeps no per-step theta (it is (nu - nu(0)) / ||N||^2): equal to exact mode
    run with the diagonal Gram matrix, which accumulates theta step by step."""
    cfg = make_cfg(noise=0.8, n=40, dim=16, steps=60)
    data = make_experiment_data(cfg)
    a0 = train_run(cfg, data, "joint", [0, 1]).initial_alignment
    limit = noise_of(cfg, data, [0, 1], exact=False, pre0=True)
    diag = [nd.TrainingNoise(sq_norm=nz.sq_norm, gram=np.diag(nz.sq_norm),
                             along_signal=nz.along_signal, pre0=nz.pre0,
                             weight_gram0=nz.weight_gram0) for nz in limit]
    one = nd.noise_aware_dynamics(cfg, [0, 1], a0, data.train.y, data.train.presence, limit)
    two = nd.noise_aware_dynamics(cfg, [0, 1], a0, data.train.y, data.train.presence, diag)
    np.testing.assert_allclose(one.alignment, two.alignment, rtol=1e-12, atol=1e-15)
    scale = np.abs(two.theta).max()
    np.testing.assert_allclose(one.theta, two.theta, rtol=0, atol=1e-9 * scale)
    for g1, g2 in zip(one.weight_gram, two.weight_gram):
        np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-12 * np.abs(g2).max())


def test_huge_weights_degrade_to_no_expected_error_not_a_linalg_error():
    """A config validation accepts (found by the property test of test_reliability.py):
    the predicted weights grow so large that their noise covariance overflows; the
    prediction then has no expected test error, as ``expected_error`` does, instead of
    ``numpy.linalg.LinAlgError: Eigenvalues did not converge`` from predict_run."""
    from simcomp import experiment
    from simcomp.config_file import build_config
    from simcomp.trace import geometry
    from simcomp.train import run_plan

    cfg = build_config(None, [
        "data.n_train=32", "data.n_test=32", "data.modality.0.dim=6", "data.modality.1.dim=5",
        "model.width=2", "train.steps=3", "train.trace_every=1", "data.modality.0.distractors=1",
        "model.learner=class_banks", "model.q=2.0", "model.init_scale=47.0",
        "train.lr=2.68e154", "data.modality.0.beta=1.0", "data.modality.1.noise=1.0",
        "data.modality.0.distractor_strength=0.0", "data.modality.1.presence=1.0",
        "model.rho=1.0", "model.learned_threshold=1.0", "train.stop_loss=0.0"])
    data = make_experiment_data(cfg)
    errors = []
    for _, trained in run_plan(cfg):
        a0 = geometry([data.init[r] for r in trained], [data.dictionaries[r] for r in trained])[0]
        with np.errstate(over="ignore", invalid="ignore"):
            pred = experiment.predict_run(cfg, data, trained, a0)
        errors.append(pred.noise_aware.test_error.fused)
    # an error where the theory has one, nan where the predicted network overflows
    assert all(isinstance(e, float) and (math.isnan(e) or 0.0 <= e <= 1.0) for e in errors)
