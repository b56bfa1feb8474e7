"""Tests of simcomp.theory (docs/model.md section 5).

The reference computations here are written independently of simcomp.theory:
explicit input points X = y s beta v in R^d (with a random orthogonal
dictionary), the fused network evaluated neuron by neuron on them, and its
loss differentiated by finite differences or by the weight-space gradient
formula of docs/model.md section 3.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp import theory as th
from simcomp.theory import activation as th_act
from simcomp.theory import reduced as th_red
from simcomp.config_file import default_config

QS = [2.0, 2.5, 3.0, 4.0, 5.0]


# --------------------------------------------------------------------------- independent reference


def ref_srelu(z, q, rho):
    if z <= 0:
        return 0.0
    if z <= rho:
        return z**q / (q * rho ** (q - 1))
    return z - (1 - 1 / q) * rho


def ref_srelu_prime(z, q, rho):
    if z <= 0:
        return 0.0
    if z <= rho:
        return (z / rho) ** (q - 1)
    return 1.0


def ref_act(z, activation, q, rho):
    return max(z, 0.0) if activation == "relu" else ref_srelu(z, q, rho)


def ref_act_prime(z, activation, q, rho):
    return float(z > 0) if activation == "relu" else ref_srelu_prime(z, q, rho)


class BruteNet:
    """Weights in input space, explicit pattern points, docs/model.md section 2-3 verbatim."""

    def __init__(self, beta, presence_patterns, q, rho, learner, activation, d, seed):
        self.beta = list(beta)
        self.K = len(beta)
        self.y, self.s, self.w = presence_patterns
        self.q, self.rho, self.learner, self.activation = q, rho, learner, activation
        self.d = d
        rng = np.random.default_rng(seed)
        self.v = []
        for _ in range(self.K):
            qm, r = np.linalg.qr(rng.normal(size=(d, d)))
            qm = qm * np.sign(np.diag(r))
            self.v.append(qm[:, 0])
        # X[p][r] = y s_r beta_r v_r
        self.X = [
            [self.y[p] * self.s[p, r] * self.beta[r] * self.v[r] for r in range(self.K)]
            for p in range(len(self.y))
        ]
        self.banks = [1] if learner == "symmetric" else [1, -1]

    def f(self, W, p):
        """W[r][b] is an (m, d) array."""
        total = 0.0
        for r in range(self.K):
            for b, c in enumerate(self.banks):
                for wi in W[r][b]:
                    z = float(wi @ self.X[p][r])
                    if self.learner == "symmetric":
                        total += ref_srelu(z, self.q, self.rho) - ref_srelu(-z, self.q, self.rho)
                    else:
                        total += c * ref_act(z, self.activation, self.q, self.rho)
        return total

    def loss(self, W):
        return sum(
            self.w[p] * math.log1p(math.exp(-self.y[p] * self.f(W, p))) for p in range(len(self.y))
        )

    def grad(self, W):
        """The weight-space gradient formula of docs/model.md section 3."""
        G = [[np.zeros_like(W[r][b]) for b in range(len(self.banks))] for r in range(self.K)]
        for p in range(len(self.y)):
            fp = self.f(W, p)
            lp = -self.y[p] / (1.0 + math.exp(self.y[p] * fp))
            for r in range(self.K):
                for b, c in enumerate(self.banks):
                    for i, wi in enumerate(W[r][b]):
                        z = float(wi @ self.X[p][r])
                        if self.learner == "symmetric":
                            dz = ref_srelu_prime(abs(z), self.q, self.rho)
                        else:
                            dz = c * ref_act_prime(z, self.activation, self.q, self.rho)
                        G[r][b][i] += self.w[p] * lp * dz * self.X[p][r]
        return G

    def alignments(self, W):
        return np.array(
            [[[c * float(wi @ self.v[r]) for wi in W[r][b]] for b, c in enumerate(self.banks)]
             for r in range(self.K)]
        )

    def random_weights(self, m, scale, seed):
        rng = np.random.default_rng(seed)
        return [[rng.normal(0, scale, size=(m, self.d)) for _ in self.banks] for _ in range(self.K)]


FORMS = [("symmetric", "srelu"), ("class_banks", "srelu"), ("class_banks", "relu")]


def ref_patterns(presence):
    rows = list(itertools.product([-1, 1], *([[0, 1]] * len(presence))))
    y = np.array([r[0] for r in rows], dtype=float)
    s = np.array([r[1:] for r in rows], dtype=int)
    w = np.array([0.5 * np.prod([p if si else 1 - p for si, p in zip(r[1:], presence)])
                  for r in rows])
    return y, s, w


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
