"""The distribution-level noisy theory (``predicted_*``) against the tracked dynamics (``tracked_*``).

``predicted_*`` may use the configuration, the initial weights and the
training set's (y, s) pattern weights, never its per-sample noise; the
tracked dynamics follows the run's own noise (a check of the signal-noise
decomposition).  Redrawing the training noise while keeping the labels,
presence patterns and initial weights must therefore leave the prediction
unchanged and move the tracked dynamics.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simcomp import theory as th
from simcomp.data import make_experiment_data
from simcomp.experiment import predict_run
from simcomp.theory.distribution import distribution_nodes, weight_geometry

from test_noisy_dynamics import make_cfg


def redraw_noise(cfg, data, seed):
    """The training set with fresh Gaussian noise: same labels, presence, signals, weights."""
    rng = np.random.default_rng(seed)
    Xs = []
    for r, mod in enumerate(cfg.data.modality):
        M = np.asarray(data.dictionaries[r])
        z = np.zeros((data.train.n, mod.dim))
        z[:, 0] = data.train.y * mod.beta * data.train.presence[:, r]
        Xs.append(z @ M.T + rng.normal(0.0, mod.noise, size=z.shape))
    return dataclasses.replace(data, train=dataclasses.replace(data.train, X=Xs))


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
def test_predicted_blind_to_the_training_noise_tracked_not(learner):
    cfg = make_cfg(learner=learner, noise=0.8, dim=16, n=48, steps=120)
    data = make_experiment_data(cfg)
    other = redraw_noise(cfg, data, seed=5)
    assert not np.allclose(other.train.X[0], data.train.X[0])
    trained = [0, 1]
    a0 = np.stack([np.einsum("bmd,d->bm", data.init[r], data.signals[r]) for r in trained])
    if learner == "class_banks":
        a0 = a0 * np.array([1.0, -1.0])[None, :, None]
    one = predict_run(cfg, data, trained, a0)
    two = predict_run(cfg, other, trained, a0)
    assert one.theory == two.theory == "noise_aware"
    # predicted: bit for bit the same (same config, weights and pattern weights)
    np.testing.assert_array_equal(one.noise_aware.learned_step, two.noise_aware.learned_step)
    np.testing.assert_array_equal(one.noise_aware.dynamics.alignment,
                                  two.noise_aware.dynamics.alignment)
    assert one.noise_aware.test_error.fused == two.noise_aware.test_error.fused
    # tracked: follows the draw
    assert one.tracked is not None and two.tracked is not None
    assert not np.allclose(one.tracked.dynamics.alignment, two.tracked.dynamics.alignment)
    assert one.tracked.test_error.fused != two.tracked.test_error.fused


def test_tracked_skipped_on_request_and_without_noise_theory():
    cfg = make_cfg(noise=0.4, dim=16, n=32, steps=40)
    data = make_experiment_data(cfg)
    a0 = np.stack([np.einsum("bmd,d->bm", data.init[r], data.signals[r]) for r in (0, 1)])
    pred = predict_run(cfg, data, [0, 1], a0, tracked=False)
    assert pred.noise_aware is not None and pred.tracked is None
    off = cfg.replace(**{"train.noise_theory": False})
    pred = predict_run(off, data, [0, 1], a0)
    assert pred.noise_aware is None and pred.tracked is None


def test_nodes_follow_the_law():
    """Node weights are the pattern weights; noise along v and the initial pre-activations
    have the law's second moments; the memorisation rate is one sample's."""
    cfg = make_cfg(noise=0.8, dim=16, n=48, steps=10)
    data = make_experiment_data(cfg)
    y_pat, s_pat, w_pat = th.population_patterns([0.8, 1.0])
    grams = [weight_geometry(data.init[r], data.signals[r]) for r in (0, 1)]
    y, s, w, noise = distribution_nodes(cfg, [0, 1], y_pat, s_pat, w_pat, grams, nodes=4000)
    assert w.sum() == pytest.approx(w_pat.sum())
    for p in range(y_pat.size):
        on = (y == y_pat[p]) & np.all(s == s_pat[p], axis=1)
        assert w[on].sum() == pytest.approx(w_pat[p])
    for r, mod in enumerate(cfg.data.modality):
        nz = noise[r]
        assert np.average(nz.along_signal**2, weights=w) == pytest.approx(mod.noise**2, rel=0.02)
        emp = np.einsum("bmn,cqn,n->bmcq", nz.pre0, nz.pre0, w).reshape(grams[r].shape)
        np.testing.assert_allclose(emp, mod.noise**2 * grams[r],
                                   atol=0.1 * mod.noise**2 * np.abs(grams[r]).max())
        # energy / (n W): a node of weight 1/n memorises like one sample
        np.testing.assert_allclose(nz.sq_norm * cfg.data.n_train * w,
                                   mod.noise**2 * (mod.dim - 1))


def test_prediction_repr_is_short():
    cfg = make_cfg(noise=0.4, dim=16, n=32, steps=400)
    data = make_experiment_data(cfg)
    a0 = np.stack([np.einsum("bmd,d->bm", data.init[r], data.signals[r]) for r in (0, 1)])
    pred = predict_run(cfg, data, [0, 1], a0)
    assert len(repr(pred)) < 400
    assert len(repr(pred.noise_aware)) < 400
