"""Tests of simcomp.theory's reduced dynamics (docs/model.md section 5.4).

Against brute-force gradient descent on explicit input points (tests/reference_theory.py),
finite differences, and the plain-NumPy reference of the compiled kernel.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp import theory as th
from simcomp.theory import activation as th_act
from simcomp.theory import reduced as th_red

from reference_theory import FORMS, QS, BruteNet


# ------------------------------------------------------------- reduced dynamics vs brute force


@pytest.mark.parametrize("learner,activation", FORMS)
@pytest.mark.parametrize("q", [2.0, 3.0, 4.5])
def test_reduced_one_step_matches_finite_difference_gradient(learner, activation, q):
    rho, eta, m, d = 0.7, 0.9, 3, 4
    beta = [1.7, 0.9]
    pats = th.population_patterns([0.7, 0.6])
    net = BruteNet(beta, pats, q, rho, learner, activation, d, seed=1)
    W = net.random_weights(m, 0.4, seed=2)  # large enough to hit both srelu pieces
    a0 = net.alignments(W)
    B = 1 if learner == "symmetric" else 2
    assert a0.shape == (2, B, m)
    # central finite differences of the loss along each signal direction
    h = 1e-6
    expect = np.empty_like(a0)
    for r in range(2):
        for b, c in enumerate(net.banks):
            for i in range(m):
                Wp = [[x.copy() for x in row] for row in W]
                Wm = [[x.copy() for x in row] for row in W]
                Wp[r][b][i] += h * net.v[r]
                Wm[r][b][i] -= h * net.v[r]
                dL = (net.loss(Wp) - net.loss(Wm)) / (2 * h)  # d loss / d <w, v>
                expect[r, b, i] = a0[r, b, i] - eta * c * dL  # a = c <w, v>
    red = th.reduced_dynamics(a0, beta, *pats, q, rho, eta, 1, learner, activation)
    np.testing.assert_allclose(red.final_alignment, expect, rtol=1e-6, atol=1e-8)
    assert red.loss[0] == pytest.approx(net.loss(W), rel=1e-12)
    # the gradient has no component orthogonal to the signal vectors
    G = net.grad(W)
    for r in range(2):
        for b in range(B):
            perp = G[r][b] - np.outer(G[r][b] @ net.v[r], net.v[r])
            assert np.abs(perp).max() < 1e-14


@pytest.mark.parametrize("learner,activation", FORMS)
def test_reduced_trajectory_matches_brute_force_gd(learner, activation):
    """Full-X gradient descent (docs/model.md section 3 formula) vs the reduced dynamics, 120 steps."""
    q, rho, eta, m, d, T = 3.0, 1.0, 1.0, 2, 3, 120
    beta = [2.0, 1.0]
    pats = th.population_patterns([0.8, 0.9])
    net = BruteNet(beta, pats, q, rho, learner, activation, d, seed=5)
    W = net.random_weights(m, 0.15, seed=6)
    a0 = net.alignments(W)
    red = th.reduced_dynamics(a0, beta, *pats, q, rho, eta, T, learner, activation, record_every=40)
    np.testing.assert_array_equal(red.steps, [0, 40, 80, 120])
    for t in range(T + 1):
        if t in (40, 80, 120):
            j = list(red.steps).index(t)
            np.testing.assert_allclose(red.alignment[j], net.alignments(W), rtol=1e-10, atol=1e-13)
        G = net.grad(W)
        W = [[W[r][b] - eta * G[r][b] for b in range(len(W[r]))] for r in range(len(W))]


def test_reduced_recording_and_learned_steps():
    pats = th.population_patterns([0.8, 1.0])
    rng = np.random.default_rng(0)
    a0 = rng.normal(0, 0.01, size=(2, 1, 8))
    red = th.reduced_dynamics(a0, [2.0, 1.0], *pats, 3.0, 1.0, 1.0, 47, record_every=10)
    np.testing.assert_array_equal(red.steps, [0, 10, 20, 30, 40, 47])
    assert red.alignment.shape == (6, 2, 1, 8)
    assert red.leading_alignment.shape == (6, 2)
    np.testing.assert_array_equal(red.alignment[0], a0)
    np.testing.assert_array_equal(red.alignment[-1], red.final_alignment)
    np.testing.assert_allclose(red.leading_alignment, red.alignment.max(axis=(2, 3)))
    # learned step checked at every step: compare with a step-by-step run
    full = th.reduced_dynamics(a0, [2.0, 1.0], *pats, 3.0, 1.0, 1.0, 47)
    np.testing.assert_array_equal(full.final_alignment, red.final_alignment)
    beta_lead = np.array([2.0, 1.0]) * full.leading_alignment
    for r in range(2):
        hits = np.nonzero(beta_lead[:, r] >= 1.0)[0]
        assert red.learned_step[r] == (hits[0] if hits.size else -1)
    assert red.learned_step_bank.shape == (2, 1)
    np.testing.assert_array_equal(red.learned_step_bank[:, 0], red.learned_step)
    # loss at the recorded steps is the population loss of the recorded alignments
    for j in range(len(red.steps)):
        assert red.loss[j] == pytest.approx(
            th.population_loss(red.alignment[j], [2.0, 1.0], *pats, 3.0, 1.0), rel=1e-14
        )


def test_reduced_class_banks_learned_per_bank():
    pats = th.population_patterns([0.8])
    a0 = np.array([[[0.02, -0.01], [0.005, 0.001]]])  # bank +1 ahead of bank -1
    red = th.reduced_dynamics(a0, [2.0], *pats, 3.0, 1.0, 1.0, 400, "class_banks", "srelu")
    lb = red.learned_step_bank[0]
    assert 0 <= lb[0] < lb[1]
    assert red.learned_step[0] == lb[0]
    # an explicit threshold above rho takes longer
    red2 = th.reduced_dynamics(a0, [2.0], *pats, 3.0, 1.0, 1.0, 400, "class_banks", "srelu",
                               threshold=4.0)
    assert red2.learned_step[0] > red.learned_step[0]


def test_reduced_threshold_zero_alignment_never_moves():
    pats = th.population_patterns([0.5, 0.5])
    a0 = np.zeros((2, 1, 4))
    red = th.reduced_dynamics(a0, [1.0, 1.0], *pats, 3.0, 1.0, 1.0, 50)
    np.testing.assert_array_equal(red.final_alignment, 0.0)
    np.testing.assert_array_equal(red.learned_step, [-1, -1])
    assert red.loss[-1] == pytest.approx(math.log(2))


def test_reduced_input_checks():
    pats = th.population_patterns([0.5])
    with pytest.raises(ValueError):
        th.reduced_dynamics(np.zeros((1, 2, 3)), [1.0], *pats, 3.0, 1.0, 1.0, 5)  # B mismatch
    with pytest.raises(ValueError):
        th.reduced_dynamics(np.zeros((2, 1, 3)), [1.0], *pats, 3.0, 1.0, 1.0, 5)  # K mismatch
    with pytest.raises(ValueError):
        th.reduced_dynamics(np.zeros((1, 1, 3)), [1.0], *pats, 3.0, 1.0, 1.0, 5,
                            "symmetric", "relu")


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**31),
    K=st.integers(1, 3),
    form=st.sampled_from(FORMS),
    q=st.sampled_from(QS),
    eta=st.floats(0.1, 2.0),
    presence=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
)
def test_reduced_properties(seed, K, form, q, eta, presence):
    learner, activation = form
    B = 1 if learner == "symmetric" else 2
    rng = np.random.default_rng(seed)
    beta = rng.uniform(0.5, 2.5, size=K)
    a0 = rng.normal(0, 0.05, size=(K, B, 5))
    pats = th.population_patterns(presence[:K])
    red = th.reduced_dynamics(a0, beta, *pats, q, 1.0, eta, 60, learner, activation,
                              threshold=1.0, record_every=7)
    # every increment is a sum of non-negative terms: alignments never decrease
    assert np.all(np.diff(red.alignment, axis=0) >= 0)
    assert np.all(np.isfinite(red.alignment)) and np.all(red.loss >= 0)
    # learned steps are consistent with the recorded leading alignment
    for r in range(K):
        t = red.learned_step[r]
        rec_hit = np.nonzero(beta[r] * red.leading_alignment[:, r] >= 1.0)[0]
        if t < 0:
            assert rec_hit.size == 0
        else:
            assert rec_hit.size and red.steps[rec_hit[0]] >= t
            earlier = red.steps < t
            assert np.all(beta[r] * red.leading_alignment[earlier, r] < 1.0)
        assert t == (red.learned_step_bank[r][red.learned_step_bank[r] >= 0].min()
                     if np.any(red.learned_step_bank[r] >= 0) else -1)
    # a modality that is never present never moves
    for r in range(K):
        if presence[r] == 0.0:
            np.testing.assert_array_equal(red.final_alignment[r], a0[r])


def assert_same_dynamics(fast, slow, rtol):
    """Two ReducedDynamics agree: steps and learned steps exactly, the rest to rtol.

    Alignments are compared relative to the largest alignment of their
    record (a neuron crossing 0 has no meaningful relative error of its own).
    """
    np.testing.assert_array_equal(fast.steps, slow.steps)
    np.testing.assert_array_equal(fast.learned_step_bank, slow.learned_step_bank)
    np.testing.assert_array_equal(fast.learned_step, slow.learned_step)
    assert fast.alignment.shape == slow.alignment.shape
    scale = np.abs(slow.alignment).max(axis=(1, 2, 3), keepdims=True)
    assert np.all(np.abs(fast.alignment - slow.alignment) <= rtol * scale)
    np.testing.assert_array_equal(fast.final_alignment, fast.alignment[-1])
    np.testing.assert_allclose(fast.leading_alignment, slow.leading_alignment, rtol=rtol, atol=0)
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=rtol, atol=0)


@settings(deadline=None, max_examples=150)
@given(
    seed=st.integers(0, 2**31),
    K=st.integers(1, 3),
    m=st.integers(1, 6),
    form=st.sampled_from(FORMS),
    q=st.one_of(st.sampled_from(QS), st.floats(2.0, 5.0)),
    rho=st.floats(0.3, 2.0),
    eta=st.floats(0.1, 2.0),
    thr_factor=st.floats(0.2, 3.0),
    steps=st.integers(0, 150),
    record_every=st.integers(1, 40),
    population=st.booleans(),
)
def test_reduced_compiled_matches_numpy_reference(seed, K, m, form, q, rho, eta, thr_factor,
                                                  steps, record_every, population):
    """The compiled step loop against the vectorised NumPy loop it replaced."""
    learner, activation = form
    B = 1 if learner == "symmetric" else 2
    rng = np.random.default_rng(seed)
    beta = rng.uniform(0.5, 2.5, size=K)
    a0 = rng.normal(0, 0.1, size=(K, B, m)) * rng.choice([0.0, 1.0], p=[0.15, 0.85], size=(K, B, m))
    y_pat, s_pat, w_pat = th.population_patterns(rng.choice([0.0, 0.3, 0.8, 1.0], size=K))
    if not population:  # the patterns of a finite training set: other weights
        w_pat = rng.dirichlet(np.ones(y_pat.size)) * rng.uniform(0.5, 1.5)
    args = (a0, beta, y_pat, s_pat, w_pat, q, rho, eta, steps, learner, activation,
            thr_factor * rho, record_every)
    fast = th.reduced_dynamics(*args)
    slow = th_red._reduced_dynamics_numpy(*args)
    assert_same_dynamics(fast, slow, rtol=1e-12)
    np.testing.assert_array_equal(fast.alignment[0], a0)


@pytest.mark.parametrize("learner,activation", FORMS)
def test_reduced_compiled_matches_numpy_reference_long(learner, activation):
    """The default story over 2000 steps (srelu: both modalities learned) on both loops."""
    B = 1 if learner == "symmetric" else 2
    a0 = np.random.default_rng(3).normal(0, 0.01, size=(2, B, 8))
    pats = th.population_patterns([0.8, 1.0])
    args = (a0, [2.0, 1.0], *pats, 3.0, 1.0, 1.0, 2000, learner, activation, 1.0, 5)
    fast = th.reduced_dynamics(*args)
    assert_same_dynamics(fast, th_red._reduced_dynamics_numpy(*args), rtol=1e-12)
    assert fast.loss[-1] < 1e-2 * fast.loss[0]  # the trajectory goes somewhere
    if activation == "srelu":  # (ReLU fits with all 8 neurons below the threshold)
        np.testing.assert_array_equal(fast.learned_step >= 0, True)


def test_reduced_nan_alignment_matches_numpy_reference():
    """A nan alignment is never learned and makes the loss nan, in both loops."""
    pats = th.population_patterns([0.8, 0.6])
    for learner, activation in FORMS:
        B = 1 if learner == "symmetric" else 2
        a0 = np.full((2, B, 3), 0.3)
        a0[0, 0, 1] = np.nan
        args = (a0, [2.0, 1.0], *pats, 3.0, 1.0, 1.0, 20, learner, activation, 1.0, 1)
        fast = th.reduced_dynamics(*args)
        with np.errstate(invalid="ignore"):
            slow = th_red._reduced_dynamics_numpy(*args)
        np.testing.assert_array_equal(fast.learned_step_bank, slow.learned_step_bank)
        assert fast.learned_step_bank[0, 0] == -1
        np.testing.assert_allclose(fast.alignment, slow.alignment, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-12, equal_nan=True)
        assert np.all(np.isnan(fast.loss[1:]))


@settings(deadline=None, max_examples=200)
@given(z=st.floats(0.0, 4.0), q=st.one_of(st.sampled_from(QS + [1.0, 9.0, 10.0]),
                                           st.floats(1.0, 10.0)), rho=st.floats(0.1, 3.0))
def test_srelu_pair_matches_srelu(z, q, rho):
    """The kernels' one-power srelu agrees with srelu / srelu_prime to rounding."""
    n = int(q - 1) if q == math.floor(q) and q - 1 <= th_act._POW_INT_MAX else -1
    v, d = th_act._srelu_pair(z, q, rho, (1.0 - 1.0 / q) * rho, n)
    assert v == pytest.approx(float(th.srelu(z, q, rho)), rel=1e-14, abs=1e-300)
    assert d == pytest.approx(float(th.srelu_prime(z, q, rho)), rel=1e-14, abs=1e-300)


def test_reduced_kernel_compiles_once():
    """Python ints, float32, int labels and strided arrays all reach one compiled version."""
    kernel = th_red._reduced_kernel
    if not hasattr(kernel, "signatures"):
        pytest.skip("numba JIT disabled")
    pats = th.population_patterns([0.8, 1.0])
    a0 = np.random.default_rng(0).normal(0, 0.01, size=(2, 2, 8))
    th.reduced_dynamics(a0, [2, 1], *pats, 3, 1, 1, 10, "class_banks", threshold=np.float32(1))
    th.reduced_dynamics(a0.astype(np.float32)[:, :, ::2], np.array([2, 1]),
                        pats[0].astype(int), pats[1], pats[2], 3, 1, 1, 10, "class_banks", "relu")
    th.reduced_dynamics(a0[:, :1], (2.0, 1.0), *pats, 2.5, 1.0, 0.5, 10)
    assert len(kernel.signatures) == 1


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
def test_reduced_learned_check_counts_an_alignment_exactly_at_the_threshold(learner):
    """beta max_i a = threshold is learned (>=), as in the simulator; one ulp below is not."""
    B = 1 if learner == "symmetric" else 2
    a0 = np.full((2, B, 3), 0.01)
    a0[0, :, 1] = 0.5  # beta_A a = 2 * 0.5 = 1.0, exactly the threshold
    pats = th.population_patterns([1.0, 1.0])
    red = th.reduced_dynamics(a0, [2.0, 1.0], *pats, 3.0, 1.0, 0.0, 5, learner, threshold=1.0)
    assert red.learned_step.tolist() == [0, -1]
    red = th.reduced_dynamics(a0, [2.0, 1.0], *pats, 3.0, 1.0, 0.0, 5, learner,
                              threshold=np.nextafter(1.0, 2.0))
    assert red.learned_step.tolist() == [-1, -1]
