"""The restructured noise-aware kernel against the plain one it replaced.

``tests/reference_noisy_kernel.py`` keeps the kernel as it was (a full
forward pass, then a full update pass, every sum in index order).  The new
one fuses the passes per neuron, sums each alignment drive in 32 partial
sums (simcomp.theory.drive) and takes logarithms only where the loss is recorded; every output of
``noise_aware_dynamics`` and of the distribution-level prediction must agree
with the plain kernel's to ~1e-10 in the diagonal limit (the default) and in
exact-Gram mode, for every learner form, K = 1, 2, 3, with nan/inf behaving
alike in a diverging run.
"""

import numpy as np
import pytest

from reference_noisy_kernel import ref_noisy_kernel
from simcomp.data import empirical_patterns, make_experiment_data
from simcomp.theory import distribution as dist
from simcomp.theory import noisy_dynamics as nd
from test_noisy_dynamics import make_cfg, noise_of

CASES = [
    {},
    {"noise": 0.8},
    {"learner": "class_banks"},
    {"distractors": 3},
    {"learner": "class_banks", "activation": "relu", "noise": 0.4},
    {"K3": True, "noise": 0.4},
    {"n": 61, "width": 3},  # n not a multiple of the 32 partial sums
    {"n": 31, "width": 3},  # no full block of 32: the scalar tail only
]


def both(monkeypatch, fn):
    """fn() with the new kernel, then with the reference kernel."""
    new = fn()
    with monkeypatch.context() as mp:
        mp.setattr(nd, "_noisy_kernel", ref_noisy_kernel)
        old = fn()
    return new, old


def assert_same(new, old, tol=1e-10):
    np.testing.assert_array_equal(new.steps, old.steps)
    np.testing.assert_array_equal(new.learned_step_bank, old.learned_step_bank)
    for key in ("alignment", "final_alignment", "loss", "pre", "theta"):
        a, b = np.asarray(getattr(new, key)), np.asarray(getattr(old, key))
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b), err_msg=key)
        fin = np.isfinite(b)
        scale = max(np.abs(b[fin]).max(initial=0.0), 1e-300)
        assert np.abs(a[fin] - b[fin]).max(initial=0.0) <= tol * scale, key
    for Ga, Gb in zip(new.weight_gram, old.weight_gram):
        np.testing.assert_allclose(Ga, Gb, rtol=tol, atol=tol * np.abs(Gb).max())


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("kwargs", CASES)
def test_tracked_dynamics_equal_the_plain_kernel(monkeypatch, kwargs, exact):
    cfg = make_cfg(**kwargs)
    data = make_experiment_data(cfg)
    trained = list(range(cfg.K))
    a0 = np.abs(np.random.default_rng(3).normal(0.1, 0.05, (cfg.K, cfg.model.banks,
                                                             cfg.model.width)))
    noise = noise_of(cfg, data, trained, exact, True)
    new, old = both(monkeypatch, lambda: nd.noise_aware_dynamics(
        cfg, trained, a0, data.train.y, data.train.presence, noise))
    assert_same(new, old)
    assert np.abs(new.final_alignment - a0).max() > 1e-2  # something happened


@pytest.mark.parametrize("kwargs", [{}, {"learner": "class_banks", "activation": "relu"},
                                    {"K3": True, "noise": 0.4}])
def test_distribution_prediction_equals_the_plain_kernel(monkeypatch, kwargs):
    cfg = make_cfg(**kwargs)
    data = make_experiment_data(cfg)
    for trained in ([0], list(range(cfg.K))):
        a0 = np.full((len(trained), cfg.model.banks, cfg.model.width), 0.05)
        y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)
        grams = [dist.weight_geometry(data.init[r], data.signals[r]) for r in trained]
        new, old = both(monkeypatch, lambda: dist.distribution_predict(
            cfg, trained, a0, y_pat, s_pat, w_pat, grams, nodes=128, points=256,
            replicates=2))
        assert_same(new.dynamics, old.dynamics)
        np.testing.assert_array_equal(new.learned_step, old.learned_step)
        assert abs(new.test_error.fused - old.test_error.fused) <= 1e-10


def test_a_diverging_run_overflows_as_in_the_plain_kernel(monkeypatch):
    cfg = make_cfg(noise=0.4, steps=60)
    data = make_experiment_data(cfg)
    trained = [0, 1]
    a0 = np.full((2, 1, cfg.model.width), 0.1)
    a0[0], a0[1] = 1e308, -1e308  # overflowing outputs: inf and nan
    noise = noise_of(cfg, data, trained, False, True)
    new, old = both(monkeypatch, lambda: nd.noise_aware_dynamics(
        cfg, trained, a0, data.train.y, data.train.presence, noise))
    assert_same(new, old)
    assert not np.isfinite(old.loss).all() or not np.isfinite(old.alignment).all()
