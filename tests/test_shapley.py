"""Exact Shapley values of the modalities and the error of a weighted predictor."""

import itertools
from math import factorial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp.shapley import coalition_accuracy, predictor_error, shapley_values


def random_problem(seed, n, K):
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n)
    # Multiples of 1/4 make exact ties (output 0) happen, and sum exactly in any order.
    phi = np.round(4 * (rng.normal(size=(n, K)) + 0.3 * y[:, None])) / 4
    w = rng.random(n) + 0.1
    return phi, y, w / w.sum()


def brute_force(phi, y, w):
    """Shapley values as the average marginal contribution over all orderings."""
    K = phi.shape[1]

    def acc(S):
        g = y * phi[:, list(S)].sum(axis=1) if S else np.zeros_like(y)
        return w @ ((g > 0) + 0.5 * (g == 0))

    vals = np.zeros(K)
    for order in itertools.permutations(range(K)):
        seen = []
        for r in order:
            vals[r] += acc(seen + [r]) - acc(seen)
            seen.append(r)
    return vals / factorial(K)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30), K=st.integers(1, 5))
def test_efficiency_and_brute_force(seed, n, K):
    phi, y, w = random_problem(seed, n, K)
    vals = shapley_values(phi, y, w)
    acc = coalition_accuracy(phi, y, w)
    assert acc[0] == pytest.approx(0.5)
    assert vals.sum() == pytest.approx(acc[-1] - 0.5, abs=1e-12)
    assert vals.sum() == pytest.approx(0.5 - predictor_error(phi, y, w), abs=1e-12)
    np.testing.assert_allclose(vals, brute_force(phi, y, w), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30), K=st.integers(1, 4))
def test_symmetry_dummy_and_permutation(seed, n, K):
    phi, y, w = random_problem(seed, n, K)
    twin = np.concatenate([phi, phi[:, :1], np.zeros((n, 1))], axis=1)  # a copy of 0, a dummy
    vals = shapley_values(twin, y, w)
    assert vals[0] == pytest.approx(vals[K], abs=1e-12)
    assert vals[K + 1] == 0.0
    perm = np.random.default_rng(seed).permutation(K)
    np.testing.assert_allclose(shapley_values(phi[:, perm], y, w), shapley_values(phi, y, w)[perm],
                               atol=1e-12)


def test_hand_example():
    # A decides samples 0, 1; B only sample 2; sample 3 has no signal.
    y = np.array([1.0, -1.0, 1.0, 1.0])
    phi = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    acc = coalition_accuracy(phi, y)
    np.testing.assert_allclose(acc, [0.5, 0.75, 0.625, 0.875])
    np.testing.assert_allclose(shapley_values(phi, y), [0.25, 0.125])
    assert predictor_error(phi, y) == pytest.approx(0.125)
    assert predictor_error(phi, y, mix=[0.0, 1.0]) == pytest.approx(0.375)
    assert predictor_error(phi, y, mix=[1.0, -1.0]) == pytest.approx(0.375)


def test_refusals():
    with pytest.raises(ValueError, match=r"K = 9 modalities is more than the supported 8"):
        shapley_values(np.zeros((3, 9)), np.ones(3))
    with pytest.raises(ValueError, match=r"phi must have shape \(n, K\)"):
        shapley_values(np.zeros((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="mix has 3 weights"):
        predictor_error(np.zeros((3, 2)), np.ones(3), mix=[1, 1, 1])
    assert shapley_values(np.ones((2, 8)), np.ones(2)).shape == (8,)
