"""Tests of simcomp.theory (docs/model.md section 5): the test-error predictions, predict()
end to end, the race with noise, and each modality's own parameters.

The race (sections 5.1-5.3) is tested in tests/test_theory_race.py, the reduced dynamics
(section 5.4) in tests/test_theory_reduced.py; the independent reference they share (explicit
input points, the network evaluated neuron by neuron) is tests/reference_theory.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcomp import theory as th
from simcomp.config_file import default_config

from reference_theory import FORMS


# --------------------------------------------------------------------------- test errors


def test_coinflip_errors():
    assert th.test_error_coinflip([True, False], [0.8, 1.0]) == pytest.approx(0.1)
    assert th.test_error_coinflip([False, False], [0.8, 1.0]) == 0.5
    assert th.test_error_coinflip([False, True], [0.8, 1.0]) == 0.0
    assert th.test_error_coinflip([True, True], [0.5, 0.6]) == pytest.approx(0.5 * 0.5 * 0.4)
    with pytest.raises(ValueError):
        th.test_error_coinflip([True], [0.5, 0.5])


@pytest.mark.parametrize("learner,activation", FORMS)
def test_noiseless_error_zero_alignments_is_half(learner, activation):
    B = 1 if learner == "symmetric" else 2
    err = th.test_error_noiseless(np.zeros((2, B, 4)), [2.0, 1.0], [0.8, 1.0], learner, activation,
                                  3.0, 1.0)
    assert err == 0.5


def test_noiseless_error_hand_cases():
    beta, p = [2.0, 1.0], [0.8, 0.6]
    # only A points the right way; B exactly zero: wrong-or-tie only where A is absent
    a = np.zeros((2, 1, 3))
    a[0, 0, 0] = 1.0
    assert th.test_error_noiseless(a, beta, p) == pytest.approx(0.5 * 0.2)
    # B has a small negative vote: where A is absent and B present it is wrong
    a[1, 0, 1] = -0.01
    assert th.test_error_noiseless(a, beta, p) == pytest.approx(0.2 * 0.6 + 0.5 * 0.2 * 0.4)
    # B's vote positive: wrong nowhere, tie where both absent
    a[1, 0, 1] = +0.01
    assert th.test_error_noiseless(a, beta, p) == pytest.approx(0.5 * 0.2 * 0.4)
    # a large negative B vote overrides A where both are present
    a[1, 0, 1] = -5.0
    assert th.test_error_noiseless(a, beta, p) == pytest.approx(0.6 + 0.5 * 0.2 * 0.4)


def test_noiseless_error_class_banks_depends_on_label():
    # only bank +1 of a single modality has grown: y = +1 samples with signal are
    # right, y = -1 samples see f = 0 (ties)
    a = np.zeros((1, 2, 2))
    a[0, 0, 0] = 0.5
    err = th.test_error_noiseless(a, [2.0], [0.7], "class_banks", "srelu", 3.0, 1.0)
    # y=+1,s=1: right (0.35); y=+1,s=0: tie (0.15); y=-1,s=1: tie (0.35); y=-1,s=0: tie (0.15)
    assert err == pytest.approx(0.5 * (0.15 + 0.35 + 0.15))
    # bank -1 neuron pointing the wrong way fires on y=+1 samples with a negative vote
    a[0, 1, 0] = -2.0
    err = th.test_error_noiseless(a, [2.0], [0.7], "class_banks", "relu", 3.0, 1.0)
    # y=+1,s=1: f = relu(1) - relu(4) < 0 wrong; y=-1,s=1: f = relu(-1) - relu(-4) = 0 tie
    assert err == pytest.approx(0.35 + 0.5 * (0.15 + 0.35 + 0.15))


# --------------------------------------------------------------------------- predict


def default_run(trained, seed=0):
    cfg = default_config()
    rng = np.random.default_rng(seed)
    # the alignment of an N(0, sigma_0^2 I) weight with a unit vector is N(0, sigma_0^2)
    a0 = rng.normal(0, cfg.model.init_scale, size=(len(trained), cfg.model.banks, cfg.model.width))
    pres = [cfg.data.modality[r].presence for r in trained]
    return cfg, a0, th.population_patterns(pres)


def test_predict_default_story():
    """docs/model.md section 6: A wins; jointly B is starved (usually not learned by T); alone it is."""
    a_steps, b_joint_unlearned, b_alone_learned = [], 0, 0
    for seed in range(8):
        cfg, a0, pats = default_run([0, 1], seed)
        pred = th.predict(cfg, [0, 1], a0, *pats)
        assert pred.predicted_winner == 0
        # kappa = pi beta^q / 2 at the population presence: A 0.85 * 3^3 / 2, B 1 * 1 / 2
        np.testing.assert_allclose(pred.kappa[:, 0], [11.475, 0.5])
        a_steps.append(pred.predicted_learned_step[0])
        # the race and the reduced dynamics agree on A's learn step within a few steps
        assert abs(pred.race_learned_step[0] - pred.predicted_learned_step[0]) <= 3
        b_joint = pred.predicted_learned_step[1]
        b_joint_unlearned += b_joint < 0
        assert pred.test_error_coinflip == pytest.approx(0.075 if b_joint < 0 else 0.0)
        cfg1, _, pats1 = default_run([1], seed)
        solo = th.predict(cfg1, [1], a0[1:2], *pats1)
        b_solo = solo.predicted_learned_step[0]
        b_alone_learned += b_solo >= 0
        # competition only delays B
        if b_joint >= 0:
            assert 0 <= b_solo < b_joint
        # alone, B's race is the whole story (f stays near 0 until B is learned)
        if b_solo >= 0:
            assert abs(solo.race_learned_step[0] - b_solo) <= 2
            assert solo.test_error_noiseless == 0.0
    assert all(3 <= s <= 80 for s in a_steps)
    assert b_joint_unlearned >= 6
    assert b_alone_learned >= 5


def test_predict_fields_and_json():
    cfg, a0, pats = default_run([0, 1])
    pred = th.predict(cfg, [0, 1], a0, *pats)
    assert pred.kappa.shape == pred.gamma.shape == pred.pi.shape == (2, 1)
    assert pred.race_learned_step.shape == (2,)
    assert pred.reduced.steps[-1] == cfg.train.steps
    assert pred.reduced.steps[1] == cfg.train.trace_every
    np.testing.assert_array_equal(pred.predicted_learned_step, pred.reduced.learned_step)
    doc = pred.to_json(["A", "B"])
    text = json.dumps(doc, allow_nan=False)
    back = json.loads(text)
    assert back["predicted_winner"] == "A"
    assert back["learned_by_horizon"] == {"A": True, "B": False}
    assert back["predicted_learned_step"]["B"] is None
    assert isinstance(back["kappa"]["A"], float)
    with pytest.raises(ValueError):
        pred.to_json(["A"])


def test_predict_class_banks_and_relu():
    # the earlier embedded default (A: beta 2, presence 0.8; width 8), which the numbers assume
    cfg = default_config().replace(**{"model.learner": "class_banks", "model.width": 8,
                                      "data.modality.0.beta": 2.0,
                                      "data.modality.0.presence": 0.8})
    a0 = np.random.default_rng(3).normal(0, 0.01, size=(2, 2, 8))
    pats = th.population_patterns([0.8, 1.0])
    pred = th.predict(cfg, [0, 1], a0, *pats)
    np.testing.assert_allclose(pred.pi, [[0.4, 0.4], [0.5, 0.5]])
    np.testing.assert_allclose(pred.race_learned_step, pred.race_learned_step_bank.min(axis=1))
    assert pred.predicted_winner == 0
    doc = json.loads(json.dumps(pred.to_json(["A", "B"]), allow_nan=False))
    assert len(doc["kappa"]["A"]) == 2
    cfg_r = cfg.replace(**{"model.activation": "relu", "model.learned_threshold": 0.5})
    pred_r = th.predict(cfg_r, [0, 1], a0, *pats)
    # relu: kappa = pi beta / 2, constant drift; learned steps are finite and ordered
    np.testing.assert_allclose(pred_r.kappa, [[0.4, 0.4], [0.25, 0.25]])
    assert np.all(pred_r.predicted_learned_step >= 0)
    with pytest.raises(ValueError):
        th.predict(cfg, [0, 1], a0[:, :1], *pats)


# --------------------------------------------------------------------------- extension: noisy race


def test_noisy_race_reduces_to_recursion_without_noise():
    for q in [2.0, 3.0, 4.0]:
        for g in [0.02, 0.05]:
            n0 = th.race_learn_step_iterated(g, 0.5, 1.0, q, 1.0, 1.0)
            assert th.race_learn_step_noisy(g, 0.5, 1.0, q, 1.0, 1.0, 0.0, 0.1) == n0
    assert th.race_learn_step_noisy(0.01, 0.0, 1.0, 3.0, 1.0, 1.0, 0.1, 0.1) == np.inf
    assert th.race_learn_step_noisy(2.0, 0.5, 1.0, 3.0, 1.0, 1.0, 0.1, 0.1) == 0.0
    out = th.race_learn_step_noisy(np.array([[0.01, 0.02]]), 0.5, 1.0, 3.0, 1.0, 1.0, 0.05, 0.1)
    assert out.shape == (1, 2) and out[0, 0] > out[0, 1]


def test_noisy_race_is_faster_and_starts_from_zero():
    # noise lifts the drift of a small neuron: the learn time shrinks with the noise
    args = (0.01, 0.5, 1.0, 3.0, 1.0, 1.0)
    t = [th.race_learn_step_noisy(*args, sig, 0.1) for sig in (0.0, 0.02, 0.05)]
    assert t[0] > t[1] > t[2]
    # a neuron at exactly zero never moves without noise, but does with it
    assert th.race_learn_step_noisy(0.0, 0.5, 1.0, 3.0, 1.0, 1.0, 0.0, 0.1) == np.inf
    assert np.isfinite(th.race_learn_step_noisy(0.0, 0.5, 1.0, 3.0, 1.0, 1.0, 0.2, 0.2))
    # plain ReLU (q = 1): the drift is Phi(beta Lambda / tau), at most the noise-free one
    rel = th.race_learn_step_noisy(0.001, 0.05, 1.0, 1.0, 1.0, 1.0, 0.5, 0.1, symmetric=False)
    assert rel > th.race_learn_step_iterated(0.001, 0.05, 1.0, 1.0, 1.0, 1.0)


def test_noisy_race_tracks_a_noisy_network():
    """Brute-force GD of one noisy modality (identity dictionary) vs both races."""
    q, rho, eta, beta, sig, d, m, n = 3.0, 1.0, 1.0, 1.0, 0.06, 32, 4, 256
    err_plain, err_noisy = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        y = rng.choice([-1.0, 1.0], n)
        X = rng.normal(0, sig, (n, d))
        X[:, 0] += y * beta
        W = rng.normal(0, 0.01, (m, d))
        gamma = W[:, 0].max()
        step = -1
        for t in range(2000):
            if beta * W[:, 0].max() >= rho:
                step = t
                break
            Z = X @ W.T
            az = np.abs(Z)
            val = np.where(az > rho, az - (1 - 1 / q) * rho, az**q / (q * rho ** (q - 1)))
            f = (np.sign(Z) * val).sum(axis=1)
            lp = -y / (1 + np.exp(y * f)) / n
            W -= eta * (lp[:, None] * np.where(az > rho, 1.0, (az / rho) ** (q - 1))).T @ X
        assert step > 0
        kappa = th.rate(beta, 1.0, q, rho)
        plain = th.race_learn_step(max(gamma, 0.0), kappa, beta, q, rho, eta)
        perp = 0.01 * np.sqrt(d - 1)
        noisy = th.race_learn_step_noisy(gamma, kappa, beta, q, rho, eta, sig, perp)
        err_plain.append(abs(plain - step) / step)
        err_noisy.append(abs(noisy - step) / step)
    assert max(err_noisy) < 0.06
    assert np.mean(err_noisy) < 0.5 * np.mean(err_plain)


def test_predict_reports_noisy_race_only_with_noise():
    cfg, a0, pats = default_run([0, 1])
    pred = th.predict(cfg, [0, 1], a0, *pats)
    assert pred.race_learned_step_noisy is not None
    assert pred.race_learned_step_noisy[0] == pytest.approx(pred.race_learned_step[0], abs=2)
    cfg0 = cfg.replace(**{"data.modality.0.noise": 0.0, "data.modality.1.noise": 0.0})
    pred0 = th.predict(cfg0, [0, 1], a0, *pats)
    assert pred0.race_learned_step_noisy is None
    assert pred0.to_json(["A", "B"])["race_learned_step_noisy"] is None


# --------------------------------------------------------------------------- each modality's own parameters


def three_modality_config(learner="symmetric"):
    from simcomp.config import config_from_dict

    mods = [
        {"name": "A", "dim": 16, "beta": 2.0, "presence": 0.5, "noise": 0.03},
        {"name": "B", "dim": 64, "beta": 1.3, "presence": 0.9, "noise": 0.01},
        {"name": "C", "dim": 40, "beta": 0.8, "presence": 1.0, "noise": 0.05},
    ]
    return config_from_dict({"seed": 0, "data": {"modality": mods},
                             "model": {"learner": learner, "width": 4},
                             "train": {"steps": 120, "trace_every": 7}})


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
def test_predict_uses_each_modalitys_own_parameters(learner):
    """K = 3, different betas, presences, noises and dims, trained in a permuted order.

    Every per-modality quantity must equal the one computed from that
    modality's own config entry alone: a race with another modality's beta,
    presence, noise or dim changes at least one of these numbers.
    """
    cfg = three_modality_config(learner)
    trained = [2, 0, 1]
    mods = [cfg.data.modality[r] for r in trained]
    B = cfg.model.banks
    a0 = np.random.default_rng(5).normal(0, 0.01, size=(3, B, cfg.model.width))
    # training patterns whose presence frequencies differ from the configured p_r
    freq = [0.7, 0.35, 0.6]
    y_pat, s_pat, w_pat = th.population_patterns(freq)
    pred = th.predict(cfg, trained, a0, y_pat, s_pat, w_pat)
    q, rho, eta = cfg.model.q, cfg.model.rho, cfg.train.lr
    for j, mod in enumerate(mods):
        # the presence fraction is the training set's, not the configured presence
        pi_j = freq[j] if B == 1 else np.array([freq[j], freq[j]]) / 2
        np.testing.assert_allclose(pred.pi[j], pi_j, rtol=1e-12)
        kappa_j = np.atleast_1d(pi_j) * mod.beta**q / (2 * rho ** (q - 1))
        np.testing.assert_allclose(pred.kappa[j], kappa_j, rtol=1e-12)
        gamma_j = np.maximum(a0[j].max(axis=1), 0.0)
        np.testing.assert_array_equal(pred.gamma[j], gamma_j)
        # kappa checked above; the races reuse pred.kappa so that equality is exact
        alone = th.race_learn_step(gamma_j, pred.kappa[j], mod.beta, q, rho, eta)
        np.testing.assert_array_equal(pred.race_learned_step_bank[j], alone)
        noisy = th.race_learn_step_noisy(
            a0[j].max(axis=1), pred.kappa[j], mod.beta, q, rho, eta, mod.noise,
            cfg.model.init_scale * np.sqrt(mod.dim - 1.0), symmetric=learner == "symmetric",
            max_steps=10 * cfg.train.steps)
        assert pred.race_learned_step_noisy[j] == np.min(noisy)
    # a modality's step is its first bank's (the banks' steps differ here)
    np.testing.assert_array_equal(pred.race_learned_step, pred.race_learned_step_bank.min(axis=1))
    if B == 2:
        assert np.any(pred.race_learned_step_bank[:, 0] != pred.race_learned_step_bank[:, 1])
    # the reduced dynamics runs with the trained modalities' own betas
    betas = [mod.beta for mod in mods]
    red = th.reduced_dynamics(a0, betas, y_pat, s_pat, w_pat, q, rho, eta, cfg.train.steps,
                              learner, record_every=cfg.train.trace_every)
    np.testing.assert_array_equal(pred.reduced.final_alignment, red.final_alignment)
    np.testing.assert_array_equal(pred.predicted_learned_step, red.learned_step)
    # the test errors use the distribution's presence p_r, in trained order
    pres = [mod.presence for mod in mods]
    assert pred.test_error_noiseless == th.test_error_noiseless(
        red.final_alignment, betas, pres, learner, "srelu", q, rho)
    assert pred.test_error_coinflip == th.test_error_coinflip(red.learned_step >= 0, pres)
    # and the betas differ enough that the winner depends on which beta goes where
    swapped = th.predict(cfg, [0, 2, 1], a0, y_pat, s_pat, w_pat)
    assert not np.array_equal(swapped.kappa, pred.kappa)


def test_presence_fraction_is_the_training_sets():
    """pi counts the training patterns' weights, whatever the configured presence says."""
    cfg = three_modality_config()
    a0 = np.full((2, 1, 4), 0.01)
    # one pattern only: y = +1, modality A absent, B present
    pred = th.predict(cfg, [0, 1], a0, np.array([1.0]), np.array([[0, 1]]), np.array([1.0]))
    np.testing.assert_array_equal(pred.pi, [[0.0], [1.0]])
    assert pred.race_learned_step[0] == np.inf and np.isfinite(pred.race_learned_step[1])
    assert pred.predicted_winner == 1


def test_theory_never_imports_the_simulator():
    """simcomp.theory (every module, the noise-aware ones included) loads no simulator code."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, simcomp.theory, simcomp.theory.noisy_dynamics, "
            "simcomp.theory.expected_error; "
            "print(sorted(m for m in sys.modules if m.startswith('simcomp')))")
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": root}, check=True).stdout
    loaded = set(eval(out))
    assert "simcomp.theory.noisy_dynamics" in loaded
    assert not loaded & {"simcomp.train", "simcomp.data", "simcomp.trace", "simcomp.experiment",
                         "simcomp._kernels", "simcomp.kernels"}, loaded
