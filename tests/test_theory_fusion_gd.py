"""GD on the distribution (simcomp.theory.fusion_gd): a plain-NumPy reference with
finite-difference gradients, and the population-mode simulation of the same network."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simcomp
from simcomp.fusion_result import fusion_prediction
from simcomp.fusion_train import chain_scalars, prepare, train_fusion
from simcomp.theory.fusion import predicted_half_steps
from simcomp.theory.fusion_gd import population_half_steps


def _reference(cov, a, lr, enc, fuse, shared, max_steps):
    """Half steps of GD with central finite-difference gradients of the population loss."""
    K = len(fuse)
    sizes = (enc.size, K, shared.size)

    def unpack(p):
        e = p[:sizes[0]].reshape(K, -1)
        return e, p[sizes[0]:sizes[0] + K], p[sizes[0] + K:]

    def total(p):
        e, f, s = unpack(p)
        return np.prod(s) * f * np.prod(e, axis=1)

    def loss(p):
        d = total(p) - a
        return 0.5 * d @ cov @ d

    p = np.concatenate([enc.ravel(), fuse, shared]).astype(np.float64)
    halves = [None] * K
    prev = total(p) / a
    for step in range(1, max_steps + 1):
        grad = np.empty_like(p)
        for i in range(p.size):
            h = 1e-7 * max(1.0, abs(p[i]))
            up, down = p.copy(), p.copy()
            up[i] += h
            down[i] -= h
            grad[i] = (loss(up) - loss(down)) / (2 * h)
        p = p - lr * grad
        now = total(p) / a
        for r in range(K):
            if halves[r] is None and now[r] >= 0.5:
                halves[r] = step - 1 + (0.5 - prev[r]) / (now[r] - prev[r])
        prev = now
        if None not in halves:
            break
    return halves


@settings(deadline=None, max_examples=15)
@given(r=st.floats(1.0, 2.5), rho=st.floats(-0.6, 0.6), n_enc=st.integers(0, 2),
       n_shared=st.integers(0, 2), seed=st.integers(0, 1000))
def test_matches_a_finite_difference_reference(r, rho, n_enc, n_shared, seed):
    rng = np.random.default_rng(seed)
    cov = np.array([[r * r, rho * r], [rho * r, 1.0]])
    a = np.ones(2)
    enc = 0.3 + 0.1 * rng.random((2, n_enc))
    fuse = 0.3 + 0.1 * rng.random(2)
    shared = 0.3 + 0.1 * rng.random(n_shared)
    ours = population_half_steps(cov, a, 0.05, enc, fuse, shared, 3000)
    ref = _reference(cov, a, 0.05, enc, fuse, shared, 3000)
    assert None not in ours
    assert ours == pytest.approx(ref, rel=1e-5, abs=1e-5)


BASE = {"model.head": "trainable", "data.kind": "gaussian", "model.activation": "linear",
        "train.loss": "mse", "data.modality.0.dim": 1, "data.modality.1.dim": 1,
        "model.width": 1, "model.init_scale": 1e-6, "train.lr": 0.04, "train.steps": 3000,
        "train.trace_every": 1, "data.population": True, "train.mode": "joint",
        "data.modality.0.std": 2.0, "data.correlation": 0.3}


@pytest.mark.parametrize("extra", [
    {}, {"model.architecture": "early_fusion", "data.correlation": -0.6},
    {"model.architecture": "deep_fusion", "model.depth": 4, "model.fusion_layer": 3,
     "model.init_scale": 0.3, "train.steps": 20000}])
def test_predicts_the_population_simulation_of_the_same_run(extra):
    """The prediction is GD on the distribution from the run's weights: it must agree with
    the engine's population-mode run of that network (not a fit: a separate integrator)."""
    cfg = simcomp.build_config(overrides={**BASE, **extra})
    run = prepare(cfg)
    res = train_fusion([cfg], [run])[0]
    pred = fusion_prediction(cfg, run)
    assert pred["formula"].endswith("GD on the distribution")
    for name in cfg.names:
        assert pred["predicted_half_step"][name] == pytest.approx(res["half_step"][name],
                                                                  rel=1e-6)


def test_only_width_one_networks_of_one_dimensional_modalities():
    cfg = simcomp.build_config(overrides={**BASE, "model.width": 2})
    run = prepare(cfg)
    assert chain_scalars(run.net, run.theta0, [1, 1]) is None
    pred = predicted_half_steps(cfg.names, [2.0, 1.0], 0.3, 0.04, "late_fusion", 2, 2,
                                run.extra["u0"], 1e-6, chain0=None, steps=3000)
    assert pred["formula"].endswith("discrete-time rates")
    run1 = prepare(simcomp.build_config(overrides=BASE))
    enc, fuse, shared = run1.extra["chain0"]
    assert enc.shape == (2, 1) and fuse.shape == (2,) and shared.shape == (0,)
    assert enc[0, 0] == run1.theta0[0] and fuse[1] == run1.theta0[3]


def test_not_reached_within_the_horizon_is_none():
    cov = np.array([[4.0, 0.0], [0.0, 1.0]])
    halves = population_half_steps(cov, np.ones(2), 0.04, np.zeros((2, 1)) + 1e-6,
                                   np.zeros(2) + 1e-6, np.zeros(0), 50)
    assert halves == [None, None]
    with pytest.raises(ValueError, match="nonzero"):
        population_half_steps(cov, np.array([1.0, 0.0]), 0.04, np.ones((2, 1)), np.ones(2),
                              np.zeros(0), 10)
