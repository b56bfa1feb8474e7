"""Tests of simcomp.theory's race (docs/model.md sections 5.1-5.3): patterns, pi, Gamma, kappa,
the leading-neuron race against its ODE and recursion, and the winner coordinate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp import theory as th

from reference_theory import QS, ref_patterns


# --------------------------------------------------------------------------- patterns and pi


def test_population_patterns_order_and_weights():
    y, s, w = th.population_patterns([0.8, 1.0])
    assert y.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1]
    assert s.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] * 2
    np.testing.assert_allclose(w, [0, 0.1, 0, 0.4, 0, 0.1, 0, 0.4], atol=1e-15)
    assert s.dtype.kind == "i" and y.dtype == float


@settings(deadline=None, max_examples=40)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5))
def test_population_patterns_marginals(presence):
    y, s, w = th.population_patterns(presence)
    K = len(presence)
    assert y.shape == (2 ** (K + 1),) and s.shape == (2 ** (K + 1), K)
    assert abs(w.sum() - 1.0) < 1e-12
    assert np.all(w >= 0)
    np.testing.assert_allclose(w @ s, presence, atol=1e-12)
    np.testing.assert_allclose(w[y > 0].sum(), 0.5, atol=1e-12)
    yr, sr, wr = ref_patterns(presence)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(s, sr)
    np.testing.assert_allclose(w, wr, atol=1e-15)
    # index formula of the docstring
    for idx in range(len(y)):
        expect = int(y[idx] > 0) * 2**K + sum(int(s[idx, r]) << (K - 1 - r) for r in range(K))
        assert expect == idx


def test_population_patterns_rejects_bad_presence():
    with pytest.raises(ValueError):
        th.population_patterns([1.2])
    with pytest.raises(ValueError):
        th.population_patterns([])


def test_presence_fraction_known_values():
    y, s, w = th.population_patterns([0.8, 0.3])
    np.testing.assert_allclose(th.presence_fraction(y, s, w, 1), [[0.8], [0.3]], atol=1e-12)
    np.testing.assert_allclose(th.presence_fraction(y, s, w, 2), [[0.4, 0.4], [0.15, 0.15]],
                               atol=1e-12)
    # an unbalanced empirical set: 3 samples (y=+1, s=(1,0)), (y=-1, s=(1,1)), (y=-1, s=(0,1))
    y = np.array([1.0, -1.0, -1.0])
    s = np.array([[1, 0], [1, 1], [0, 1]])
    w = np.full(3, 1 / 3)
    np.testing.assert_allclose(th.presence_fraction(y, s, w, 1), [[2 / 3], [2 / 3]])
    np.testing.assert_allclose(th.presence_fraction(y, s, w, 2), [[1 / 3, 1 / 3], [0, 2 / 3]])
    with pytest.raises(ValueError):
        th.presence_fraction(y, s, w, 3)


def test_initial_gamma_and_rate():
    a0 = np.array([[[-0.1, 0.02, 0.01]], [[-0.3, -0.2, -0.05]]])
    np.testing.assert_allclose(th.initial_gamma(a0), [[0.02], [0.0]])
    assert th.rate(2.0, 0.8, 3.0, 1.0) == pytest.approx(0.8 * 8 / 2)
    assert th.rate(2.0, 0.8, 3.0, 2.0) == pytest.approx(0.8 * 8 / (2 * 4))
    k = th.rate(np.array([2.0, 1.0]), np.array([[0.4, 0.4], [0.5, 0.5]]), 3.0, 1.0)
    np.testing.assert_allclose(k, [[1.6, 1.6], [0.25, 0.25]])
    # docs/model.md section 6: kappa_A / kappa_B = 6.4
    ka, kb = th.rate(np.array([2.0, 1.0]), np.array([0.8, 1.0]), 3.0, 1.0)
    assert ka / kb == pytest.approx(6.4)


# --------------------------------------------------------------------------- race


def rk4_time(gamma, ek, q, lam_end, growth=1e-3):
    """Time for dL/dt = ek L^(q-1) to go from gamma to lam_end, by RK4 in log-space.

    Integrates x = ln L with dx/dt = ek exp((q-2) x), each substep growing x by
    about ``growth``; the crossing is interpolated linearly.
    """
    x, t, x_end = math.log(gamma), 0.0, math.log(lam_end)
    fn = lambda x: ek * math.exp((q - 2) * x)  # noqa: E731
    while True:
        k1 = fn(x)
        h = growth / k1
        k2 = fn(x + h / 2 * k1)
        k3 = fn(x + h / 2 * k2)
        k4 = fn(x + h * k3)
        xn = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if xn >= x_end:
            return t + h * (x_end - x) / (xn - x)
        x, t = xn, t + h


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("gamma", [1e-3, 1e-2, 0.05])
def test_race_formula_continuous_part_matches_ode(q, gamma):
    beta, rho, eta, kappa = 1.5, 1.2, 0.5, 0.3
    lam_end = rho / beta
    t_formula = th.race_learn_step(gamma, kappa, beta, q, rho, eta)
    lag = 0.5 * (q - 1) * math.log(lam_end / gamma)
    t_ode = rk4_time(gamma, eta * kappa, q, lam_end)
    assert t_formula - lag == pytest.approx(t_ode, rel=1e-6)


# gammas for which the race lasts at most ~1e5 steps
RACE_CASES = [(q, g) for q in QS for g in ([1e-3, 1e-2, 0.1] if q <= 3 else [0.02, 0.05, 0.2])]


@pytest.mark.parametrize("q,gamma", RACE_CASES)
@pytest.mark.parametrize("u_end", [0.05, 0.3, 1.0])
def test_race_formula_matches_discrete_recursion(q, gamma, u_end):
    # u_end = eta kappa (rho/beta)^(q-2): the Euler step size at the learn threshold
    beta, rho, eta = 2.0, 1.0, 1.0
    kappa = u_end / (eta * (rho / beta) ** (q - 2))
    n = th.race_learn_step_iterated(gamma, kappa, beta, q, rho, eta, max_steps=10**6)
    assert np.isfinite(n)
    t = th.race_learn_step(gamma, kappa, beta, q, rho, eta)
    # the formula is a continuous crossing time; the recursion's first integer
    # crossing lies within one step of it (plus a few percent)
    assert abs(t - n) <= 1.0 + 0.03 * n, (t, n)
    # the lag term is what makes the discrete count match: without it the
    # error is several steps once the race is long
    cont = t - 0.5 * (q - 1) * math.log((rho / beta) / gamma)
    if q > 2 and n > 50:
        assert abs(t - n) < abs(cont - n)


def test_race_q2_branch_is_continuous():
    args = dict(gamma=0.01, kappa=0.4, beta=1.3, rho=1.0, eta=0.7)
    t2 = th.race_learn_step(q=2.0, **args)
    for dq in [1e-13, -1e-13, 1e-9, 1e-6]:
        assert th.race_learn_step(q=2.0 + dq, **args) == pytest.approx(t2, rel=1e-5)
    L = math.log(1.0 / (1.3 * 0.01))
    assert t2 == pytest.approx(L / (0.7 * 0.4) + L / 2)


def test_race_special_cases():
    assert th.race_learn_step(0.0, 1.0, 1.0, 3.0, 1.0, 1.0) == np.inf
    assert th.race_learn_step(-0.1, 1.0, 1.0, 3.0, 1.0, 1.0) == np.inf
    assert th.race_learn_step(0.01, 0.0, 1.0, 3.0, 1.0, 1.0) == np.inf
    assert th.race_learn_step(2.0, 1.0, 1.0, 3.0, 1.0, 1.0) == 0.0
    assert th.race_learn_step_iterated(0.0, 1.0, 1.0, 3.0, 1.0, 1.0) == np.inf
    assert th.race_learn_step_iterated(2.0, 1.0, 1.0, 3.0, 1.0, 1.0) == 0.0
    out = th.race_learn_step(np.array([0.0, 0.01, 0.1]), 1.0, 1.0, 3.0, 1.0, 1.0)
    assert out.shape == (3,) and out[0] == np.inf and out[1] > out[2] > 0
    # q = 1 (plain ReLU): constant drift, exact
    assert th.race_learn_step(0.1, 0.25, 2.0, 1.0, 1.5, 1.0) == pytest.approx((0.75 - 0.1) / 0.25)
    assert th.race_learn_step_iterated(0.1, 0.25, 2.0, 1.0, 1.5, 1.0) == 3.0


@pytest.mark.parametrize("q", [2.0, 3.0])
def test_race_threshold_above_rho_adds_linear_phase(q):
    beta, rho, eta, kappa, gamma, thr = 1.0, 0.5, 1.0, 0.05, 0.01, 2.0
    t_rho = th.race_learn_step(gamma, kappa, beta, q, rho, eta)
    t_thr = th.race_learn_step(gamma, kappa, beta, q, rho, eta, threshold=thr)
    lin_rate = eta * kappa * (rho / beta) ** (q - 1)
    assert t_thr - t_rho == pytest.approx((thr - rho) / beta / lin_rate)
    n = th.race_learn_step_iterated(gamma, kappa, beta, q, rho, eta, threshold=thr)
    assert abs(t_thr - n) <= 1.0 + 0.03 * n
    # below rho the target simply moves
    t_low = th.race_learn_step(gamma, kappa, beta, q, rho, eta, threshold=0.25)
    assert t_low < t_rho
    L = math.log(0.25 / gamma)
    cont = (-math.expm1(-(q - 2) * L) / (q - 2) * gamma ** (2 - q) if q != 2 else L) / (eta * kappa)
    assert t_low == pytest.approx(cont + 0.5 * (q - 1) * L)


@settings(deadline=None, max_examples=60)
@given(
    q=st.sampled_from(QS),
    gamma=st.floats(1e-3, 0.2),
    beta=st.floats(0.5, 3.0),
    pi=st.floats(0.1, 1.0),
    eta=st.floats(0.05, 1.0),
)
def test_race_properties(q, gamma, beta, pi, eta):
    rho = 1.0
    kappa = th.rate(beta, pi, q, rho)
    t = th.race_learn_step(gamma, kappa, beta, q, rho, eta)
    if beta * gamma >= rho:
        assert t == 0.0
        return
    assert 0 < t < np.inf
    # faster with a larger head start or a larger rate
    assert th.race_learn_step(gamma * 1.5, kappa, beta, q, rho, eta) <= t
    assert th.race_learn_step(gamma, kappa * 1.5, beta, q, rho, eta) < t
    n = th.race_learn_step_iterated(gamma, kappa, beta, q, rho, eta, max_steps=200_000)
    if np.isfinite(n):
        u_end = eta * kappa * (rho / beta) ** (q - 2)
        assert abs(t - n) <= 1.0 + 0.03 * n + 0.5 * max(u_end - 1.0, 0.0) * n, (t, n, u_end)


def test_predicted_winner():
    assert th.predicted_winner([30.0, 5.0, np.inf]) == 1
    assert th.predicted_winner([np.inf, np.inf]) is None
    assert th.predicted_winner(np.array([[40.0, 9.0], [10.0, 20.0]])) == 0
    assert th.predicted_winner([7.0, 7.0]) == 0


# ------------------------------------------------------------- winner coordinate and boundary


def test_winner_coordinate_and_boundary_signs():
    q = 3.0
    beta = np.array([2.0, 1.0])
    p = np.array([0.8, 1.0])
    kappa = th.rate(beta, p, q, 1.0)
    gamma = np.array([0.01, 0.01])
    x = th.winner_coordinate(kappa, gamma, q)
    assert x == pytest.approx(-math.log(6.4))  # A (index 0) wins
    assert th.winner_coordinate(kappa[::-1], gamma[::-1], q) == pytest.approx(-x)
    # x is the left side of the boundary equation
    lhs = (q * math.log(beta[1] / beta[0]) + (q - 2) * math.log(gamma[1] / gamma[0])
           + math.log(p[1] / p[0]))
    assert x == pytest.approx(lhs)
    # at half the signal, modality 2 needs 2^3 = 8 times the presence to tie at equal Gammas
    assert th.phase_boundary(q, beta_ratio=0.5) == pytest.approx(8.0)
    assert th.phase_boundary(q, presence_ratio=8.0) == pytest.approx(0.5)
    # a larger head start for modality 2 lowers the presence it needs (q > 2)
    assert th.phase_boundary(q, beta_ratio=0.5, gamma_ratio=2.0) == pytest.approx(4.0)
    assert th.phase_boundary(2.0, beta_ratio=0.5, gamma_ratio=2.0) == pytest.approx(4.0)
    # q = 2: Gamma does not enter
    assert th.winner_coordinate(kappa, np.array([0.01, 0.5]), 2.0) == pytest.approx(
        math.log(kappa[1] / kappa[0]))
    # a modality with Gamma = 0 never starts
    assert th.winner_coordinate(kappa, np.array([0.0, 0.01]), q) == np.inf
    with pytest.raises(ValueError):
        th.phase_boundary(q)
    # bank axis: the fastest bank counts
    kb = np.array([[1.0, 1.0], [0.5, 0.5]])
    gb = np.array([[0.01, 0.02], [0.01, 0.01]])
    assert th.winner_coordinate(kb, gb, q) == pytest.approx(math.log(0.5 * 0.01 / 0.02))


@settings(deadline=None, max_examples=60)
@given(
    q=st.sampled_from([2.5, 3.0, 4.0]),
    b=st.lists(st.floats(0.5, 3.0), min_size=2, max_size=2),
    p=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=2),
    g=st.lists(st.floats(1e-4, 1e-3), min_size=2, max_size=2),
)
def test_winner_coordinate_agrees_with_race(q, b, p, g):
    beta, pres, gamma = map(np.array, (b, p, g))
    kappa = th.rate(beta, pres, q, 1.0)
    x = th.winner_coordinate(kappa, gamma, q)
    race = th.race_learn_step(gamma, kappa, beta, q, 1.0, 1.0)
    # with small Gammas the race is decided by kappa Gamma^(q-2) unless nearly tied
    if abs(x) > 0.2:
        assert th.predicted_winner(race) == (1 if x > 0 else 0)
    # on the boundary the winner coordinate vanishes
    pr = th.phase_boundary(q, beta_ratio=beta[1] / beta[0], gamma_ratio=gamma[1] / gamma[0])
    k_b = th.rate(beta, np.array([1.0, pr]), q, 1.0)
    assert abs(th.winner_coordinate(k_b, gamma, q)) < 1e-9


def _noisy_race_reference(gamma, kappa, beta, q, rho, eta, noise, perp, symmetric, max_steps=10**4):
    """The noisy race written from its docstring in plain Python: the spread of a neuron's
    pre-activation is tau = sigma sqrt(Lambda^2 + |w_perp|^2), its own alignment included."""
    from simcomp.theory.race import _Z_GRID, _Z_WEIGHT

    lam, step = gamma, eta * kappa * (rho / beta) ** (q - 1.0)
    for n in range(1, max_steps + 1):
        tau = noise * math.sqrt(lam * lam + perp * perp)
        z = beta * lam + tau * _Z_GRID
        z = np.abs(z) if symmetric else z
        deriv = np.where(z > rho, 1.0, np.where(z > 0.0, (np.maximum(z, 0.0) / rho) ** (q - 1.0),
                                                   0.0))
        lam += step * float(np.sum(_Z_WEIGHT * deriv))
        if beta * lam >= rho:
            return float(n)
    return math.inf


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("q", [2.0, 3.0])
def test_noisy_race_spread_counts_the_neurons_own_alignment(q, symmetric):
    """With no perpendicular part (|w_perp| = 0) and noise > 0 the whole spread comes from
    the neuron's own alignment: tau = sigma Lambda.  The learn step must follow it exactly,
    and differ from the noise-free race (which a spread ignoring Lambda would give)."""
    args = (0.05, 0.5, 1.0, q, 1.0, 1.0)
    got = th.race_learn_step_noisy(*args, 1.5, 0.0, None, symmetric)
    want = _noisy_race_reference(*args, 1.5, 0.0, symmetric)
    assert got == want
    assert got != th.race_learn_step_noisy(*args, 0.0, 0.0, None, symmetric)
