"""The exact expected test error against a large Monte-Carlo test set.

The weights come from real training runs (``simcomp.train``), the Monte-Carlo
test set from the data generator (``simcomp.data``) and its error from a
plain NumPy forward pass written here; ``simcomp.theory.expected_error``
shares none of that code.  Agreement is required within four combined
standard errors (the stated accuracy of the estimate and the sampling error
of the test set) plus 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest

from simcomp.config import config_from_dict
from simcomp.data import _streams, draw_dataset, make_experiment_data
from simcomp.theory import expected_test_error
from simcomp.theory.expected_error import normal_quantile
from simcomp.train import train_run

N_MC = 200_000


def srelu(z, q, rho):
    zp = np.maximum(z, 0.0)
    return np.where(z > rho, z - (1 - 1 / q) * rho, zp**q / (q * rho ** (q - 1)))


def mc_errors(cfg, W, trained, X, y):
    """Fused and per-encoder error of weights W on samples X, tie = half, in plain NumPy."""
    q, rho = cfg.model.q, cfg.model.rho
    phis = []
    for Wr, r in zip(W, trained):
        u = np.einsum("bmd,nd->nbm", Wr, X[r])
        if cfg.model.learner == "symmetric":
            phis.append(np.sum(np.sign(u) * srelu(np.abs(u), q, rho), axis=(1, 2)))
        else:
            act = np.maximum(u, 0) if cfg.model.activation == "relu" else srelu(u, q, rho)
            phis.append(act[:, 0].sum(1) - act[:, 1].sum(1))

    def err(f):
        m = y * f
        return float(np.mean((m < 0) + 0.5 * (m == 0)))

    return err(np.sum(phis, axis=0)), np.array([err(p) for p in phis])


def make_cfg(learner="symmetric", activation="srelu", K3=False, distractors=0, noise=0.1,
             dictionary="identity"):
    mods = [
        {"name": "A", "dim": 24, "beta": 1.6, "presence": 0.7, "noise": noise,
         "distractors": distractors, "distractor_strength": 0.3 if distractors else 0.0,
         "dictionary": dictionary},
        {"name": "B", "dim": 16, "beta": 1.0, "presence": 0.9, "noise": noise * 1.5},
    ]
    if K3:
        mods.append({"name": "C", "dim": 12, "beta": 0.9, "presence": 0.6, "noise": noise,
                     "distractors": 2, "distractor_strength": 0.2})
    model = {"learner": learner, "activation": activation, "width": 4}
    if activation == "relu":
        model["learned_threshold"] = 0.5
    return config_from_dict({"seed": 3, "data": {"modality": mods, "n_train": 128, "n_test": 64},
                             "model": model, "train": {"steps": 400, "trace_every": 400,
                                                       "mode": "joint"}})


def check(cfg, steps_weights=None):
    data = make_experiment_data(cfg)
    trained = list(range(cfg.K))
    run = train_run(cfg, data, "joint", trained)
    W = run.final_weights
    mods = [cfg.data.modality[r] for r in trained]
    got = expected_test_error(W, mods, data.dictionaries, cfg.model.learner,
                              cfg.model.activation, cfg.model.q, cfg.model.rho)
    streams = _streams(cfg.seed + 1000, cfg.K)
    big = draw_dataset(cfg, data.dictionaries, N_MC, *streams[2])
    mc_fused, mc_mod = mc_errors(cfg, W, trained, big.X, big.y)
    se_fused = np.sqrt(mc_fused * (1 - mc_fused) / N_MC)
    assert abs(got.fused - mc_fused) <= 4 * np.hypot(got.fused_stderr, se_fused) + 1e-3, (
        got, mc_fused)
    for r in range(cfg.K):
        se = np.sqrt(mc_mod[r] * (1 - mc_mod[r]) / N_MC)
        assert abs(got.per_modality[r] - mc_mod[r]) <= (
            4 * np.hypot(got.per_modality_stderr[r], se) + 1e-3), (r, got, mc_mod)
    # the stated accuracy is useful: well below the effects it is meant to resolve
    assert got.fused_stderr < 2e-3 and np.all(got.per_modality_stderr < 2e-3)
    return got, mc_fused, mc_mod


@pytest.mark.parametrize("kwargs", [
    {},
    {"noise": 0.25},
    {"distractors": 6, "dictionary": "random"},
    {"learner": "class_banks"},
    {"learner": "class_banks", "activation": "relu", "distractors": 3},
    {"K3": True},
])
def test_expected_error_matches_large_monte_carlo(kwargs):
    got, mc_fused, mc_mod = check(make_cfg(**kwargs))
    # the runs must be non-trivial for the comparison to mean anything
    assert 0.0 < got.fused < 0.5 or np.any((got.per_modality > 0) & (got.per_modality < 0.5))


def test_noise_free_is_exact_with_the_tie_rule():
    """No noise, no distractors: the error is a finite sum; an encoder is a coin where silent."""
    cfg = make_cfg(noise=0.0)
    data = make_experiment_data(cfg)
    W = [np.zeros((1, 4, 24)), np.zeros((1, 4, 16))]
    W[0][0, 0, 0] = 1.0  # A votes the right way with its signal, 0 where silent
    mods = list(cfg.data.modality)
    got = expected_test_error(W, mods, data.dictionaries)
    # fused: wrong only as a tie when A is silent (B's encoder is all zero): 0.5 * 0.3
    assert got.fused == pytest.approx(0.15, abs=1e-15)
    np.testing.assert_allclose(got.per_modality, [0.15, 0.5], atol=1e-15)
    assert got.fused_stderr == 0.0 and np.all(got.per_modality_stderr == 0.0)
    # a negative vote on the signal is a full error where present
    W[0][0, 0, 0] = -1.0
    got = expected_test_error(W, mods, data.dictionaries)
    assert got.per_modality[0] == pytest.approx(0.7 + 0.15, abs=1e-15)


def test_expected_error_uses_each_modalitys_own_parameters():
    """Swapping two modalities' configs (with their weights) changes nothing; swapping only
    the configs changes the per-modality errors."""
    cfg = make_cfg(K3=True)
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1, 2])
    W = run.final_weights
    mods = list(cfg.data.modality)
    D = data.dictionaries
    a = expected_test_error(W, mods, D, seed=4)
    b = expected_test_error([W[2], W[0], W[1]], [mods[2], mods[0], mods[1]], [D[2], D[0], D[1]],
                            seed=4)
    np.testing.assert_allclose(b.per_modality, a.per_modality[[2, 0, 1]], atol=5 * 2e-3)
    assert b.fused == pytest.approx(a.fused, abs=5 * 2e-3)
    with pytest.raises(ValueError, match="shape"):
        expected_test_error(W, [mods[1], mods[0], mods[2]], D)


def test_normal_quantile_and_arguments():
    u = np.array([1e-10, 0.001, 0.02425, 0.3, 0.5, 0.9, 0.999])
    z = normal_quantile(u)
    from math import erfc, sqrt
    back = np.array([0.5 * erfc(-v / sqrt(2)) for v in z])
    np.testing.assert_allclose(back, u, rtol=5e-8)  # 1.2e-9 in z, amplified in the far tail
    assert z[4] == 0.0
    cfg = make_cfg()
    W = [np.zeros((1, 4, 24)), np.zeros((1, 4, 16))]
    with pytest.raises(ValueError, match="replicates"):
        expected_test_error(W, list(cfg.data.modality), replicates=1)
    with pytest.raises(ValueError, match="modalities"):
        expected_test_error(W, list(cfg.data.modality)[:1])
