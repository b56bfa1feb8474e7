"""The NumPy reference of reconboost, relearning, gblending and greedy (analogue):
its pieces against hand examples and finite differences, its weight-space trainer
against its pattern recursion, and the identities docs/theory.md 15.5-15.9 state."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_methods as ref
import reference_methods_more_b as rb
from simcomp.theory import population_patterns

FORMS = ("symmetric", "class_banks", "relu")


def problem(seed, K, m, n, form, scale=1.0, d_max=4):
    rng = np.random.default_rng(seed)
    B = 1 if form == "symmetric" else 2
    dims = rng.integers(1, d_max + 1, size=K)
    X = [rng.normal(size=(n, d)) for d in dims]
    y = rng.choice([-1.0, 1.0], size=n)
    omega = rng.random(n) + 0.1
    omega /= omega.sum()
    W = [scale * rng.normal(size=(B, m, d)) for d in dims]
    return X, y, omega, W


def fd(loss_of, Wr, h=1e-6):
    g = np.zeros_like(Wr)
    for idx in np.ndindex(Wr.shape):
        Wp, Wm = Wr.copy(), Wr.copy()
        Wp[idx] += h
        Wm[idx] -= h
        g[idx] = (loss_of(Wp) - loss_of(Wm)) / (2 * h)
    return g


# --------------------------------------------------------------------------- reconboost


def test_reconboost_schedule():
    got = [rb.reconboost_schedule(t, 2, 4, 4) for t in range(18)]
    assert got == [0] * 4 + [None] * 4 + [1] * 4 + [None] * 4 + [0] * 2
    got = [rb.reconboost_schedule(t, 3, 2, 1) for t in range(10)]
    assert got == [0, 0, None, 1, 1, None, 2, 2, None, 0]
    assert [rb.reconboost_schedule(t, 2, 3, 0) for t in range(7)] == [0, 0, 0, 1, 1, 1, 0]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), K=st.integers(1, 3), m=st.integers(1, 3),
       n=st.integers(1, 6), form=st.sampled_from(("symmetric", "class_banks")),
       w1=st.floats(0.5, 6.0), frac=st.floats(0.0, 1.0))
def test_reconboost_gradient_is_the_boosted_loss_with_q_held(seed, K, m, n, form, w1, frac):
    """The boosting coefficient is the gradient of sum_j omega_j (w1 - w2 q_j)/2 l(u_{j,rs})
    with q the rest of the ensemble's (detached) true-class probability."""
    X, y, omega, W = problem(seed, K, m, n, form)
    w2 = frac * w1
    rs = seed % K
    enc = [ref.encoder(Xr, Wr, form, 3.0, 1.0) for Xr, Wr in zip(X, W)]
    phi = np.stack([e[3] for e in enc], axis=1)
    D, k, q = rb.reconboost_coef(phi, y, omega, rs, w1, w2)
    assert k[rs] == 1.0 and k.sum() == 1.0 and np.all(D[:, np.arange(K) != rs] == 0)
    got = ref.chain(X[rs], W[rs], enc[rs][2], D[:, rs])
    want = fd(lambda V: rb.reconboost_loss(ref.encoder(X[rs], V, form, 3.0, 1.0)[3], y, omega,
                                           q, w1, w2), W[rs])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(1.0, np.abs(want).max()))


def test_reconboost_moves_only_the_boosted_encoder():
    X, y, omega, W = problem(3, 3, 2, 9, "class_banks", 0.5)
    res = rb.train(X, y, omega, W, method="reconboost", params={"boost_steps": 2,
                   "correct_steps": 1}, form="class_banks", steps=2)
    assert np.array_equal(res["W"][1], W[1]) and np.array_equal(res["W"][2], W[2])
    assert np.abs(res["W"][0] - W[0]).max() > 1e-6
    np.testing.assert_array_equal(res["scale"], [[1, 0, 0], [1, 0, 0]])
    assert np.isfinite(res["score"][:, 0]).all() and np.isnan(res["score"][:, 1:]).all()
    # a correcting step is plain joint training
    res3 = rb.train(X, y, omega, W, method="reconboost", params={"boost_steps": 2,
                    "correct_steps": 1}, form="class_banks", steps=3)
    plain = ref.train(X, y, omega, res["W"], form="class_banks", steps=1)
    for a, b in zip(res3["W"], plain["W"]):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


# --------------------------------------------------------------------------- greedy


def test_greedy_controller_sequence():
    ctl = rb.GreedyController(epsilon=0.1, window=3, start=2)
    flat, skew = np.array([0.5, 0.5]), np.array([0.6, 0.2])
    utils = [skew, skew, flat, skew, skew, skew, skew, flat, flat, skew, skew]
    got = [ctl.step(t, u) for t, u in enumerate(utils)]
    # t=0,1 before start; t=2 flat; t=3 triggers (caring 1 from t=4, 3 steps); t=7 measures flat;
    # t=8 flat, t=9 triggers again
    assert got == [-1, -1, -1, -1, 1, 1, 1, -1, -1, -1, 1]
    tie = rb.GreedyController(0.0, 1, 0)
    assert tie.step(0, np.array([0.1, 0.3, 0.1])) == -1 and tie.step(1, flat) == 0  # first on ties


def test_greedy_util_is_the_relative_gain_of_adding_the_modality():
    phi = np.array([[2.0, 0.1], [-1.0, 0.3], [0.5, -0.2]])
    y = np.array([1.0, -1.0, 1.0])
    om = np.array([0.5, 0.3, 0.2])
    S = lambda g: np.sum(om / (1 + np.exp(-y * g)))  # noqa: E731
    util = rb.greedy_util(phi, y, om)
    f = phi.sum(axis=1)
    np.testing.assert_allclose(util, [(S(f) - S(phi[:, 1])) / S(f), (S(f) - S(phi[:, 0])) / S(f)],
                               rtol=1e-14)


@pytest.mark.parametrize("K", [2, 3])
def test_greedy_rebalancing_step_is_unimodal_for_the_symmetric_learner_in_population(K):
    """docs/theory.md 15.5: mbar_s = 0 on population data at any alignments, so the cared
    modality's coefficient is its uni-modal one."""
    y, s, w = population_patterns([0.8, 1.0, 0.6][:K])
    pat = rb.Patterns([2.0, 1.2, 1.5][:K], y, s, w, "symmetric")
    a = 0.4 * np.random.default_rng(K).standard_normal((K, 1, 3)) + 0.3
    phi = pat.units(a)[2]
    mbar = pat.w @ phi  # what the previous step measured, here at the same alignments
    np.testing.assert_allclose(mbar, 0.0, atol=1e-15)
    for c in range(K):
        D = rb.greedy_coef(phi, pat.y, pat.w, c, mbar)
        np.testing.assert_allclose(D[:, c], pat.w * pat.y * ref.lprime(pat.y * phi[:, c]),
                                   rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- relearning


def test_purity_hand_examples():
    X = np.array([[0.0], [0.1], [0.9], [1.0]])
    y = np.array([-1.0, -1.0, 1.0, 1.0])
    om = np.full(4, 0.25)
    assert rb.purity(X, y, om) == 1.0
    assert rb.purity(X, np.array([-1.0, 1.0, -1.0, 1.0]), om) == 0.5
    # one mislabelled heavy point: clusters {0, 0.1} and {0.9, 1}, majority weights 0.3 + 0.45
    y2 = np.array([-1.0, 1.0, 1.0, 1.0])
    om2 = np.array([0.3, 0.2, 0.25, 0.25])
    assert rb.purity(X, y2, om2) == pytest.approx(0.3 + 0.5)
    # a constant column is ignored (scaled to 0); scaling makes the units irrelevant
    X3 = np.hstack([X, np.full((4, 1), 7.0)])
    assert rb.purity(X3, y2, om2) == rb.purity(1e3 * X, y2, om2) == rb.purity(X, y2, om2)
    # rows of zero weight do not set the min-max range
    X4 = np.vstack([X, [[100.0]]])
    assert rb.purity(X4, np.append(y, 1.0), np.append(om, 0.0)) == 1.0
    # Lloyd iterates: starting from the class means, the overlapping classes re-cluster
    X5 = np.array([[0.0], [0.2], [0.4], [1.0], [1.1]])
    y5 = np.array([-1.0, 1.0, -1.0, 1.0, 1.0])
    om5 = np.full(5, 0.2)
    assert rb.purity(X5, y5, om5) == pytest.approx(0.8)


def test_relearning_without_a_generalisation_gap_or_with_no_strength_is_plain():
    X, y, omega, W = problem(5, 2, 3, 12, "class_banks", 0.6)
    plain = ref.train(X, y, omega, W, form="class_banks", steps=25)["W"]
    for params, hold in (({"every": 5}, (X, y, omega)),
                         ({"every": 5, "reset_scale": 0.0}, (X, y[::-1], omega)),
                         ({"every": 5, "count": 0}, (X, y[::-1], omega))):
        res = rb.train(X, y, omega, W, method="relearning", params=params, form="class_banks",
                       steps=25, holdout=hold)
        for a, b in zip(res["W"], plain):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)
    res = rb.train(X, y, omega, W, method="relearning", params={"every": 5, "count": 2},
                   form="class_banks", steps=25, holdout=(X, y[::-1], omega))
    assert [t for t, _ in res["resets"]] == [5, 10]
    assert all((w > 0).any() for _, w in res["resets"])


# --------------------------------------------------------------------------- gblending


def test_gblending_weights():
    wts, G, O = rb.gblending_weights([1.0, 1.0, 1.0], [1.2, 1.1, 1.0], [0.5, 0.8, 0.6],
                                     [0.9, 1.05, 0.7])
    np.testing.assert_allclose(G, [-0.3, -0.05, -0.3])
    np.testing.assert_allclose(O, [0.4 - 0.2, 0.25 - 0.1, 0.1 - 0.0])
    w = np.abs(G) / O**2
    np.testing.assert_allclose(wts, w / w.sum())
    wts0, _, _ = rb.gblending_weights([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0])
    np.testing.assert_array_equal(wts0, [0.5, 0.5])  # nothing moved: equal weights
    wpop, G, O = rb.gblending_weights([1.0, 2.0], [1.0, 2.0], [0.5, 1.9], [0.5, 1.9])
    assert np.all(O == 0.0)
    np.testing.assert_allclose(wpop, np.abs(G) / np.abs(G).sum())  # the floor cancels


@pytest.mark.parametrize("form", FORMS)
def test_gblending_in_population_weights_each_head_by_its_loss_decrease(form):
    y, s, w = population_patterns([0.8, 1.0])
    a0 = 0.3 * np.random.default_rng(1).standard_normal((2, 1 if form == "symmetric" else 2, 3))
    res = rb.dynamics(a0, [2.0, 1.2], y, s, w, method="gblending", params={"every": 7,
                      "probe_steps": 4}, form=form, steps=15)
    wts = res["wts"]
    np.testing.assert_allclose(wts.sum(axis=1), 1.0, rtol=1e-14)
    # recomputed at 0, 7 and 14 only
    changes = [t for t in range(1, 15) if not np.array_equal(wts[t], wts[t - 1])]
    assert changes == [7, 14]
    pat = rb.Patterns([2.0, 1.2], y, s, w, form)
    L = rb._gblending_probe_pat(pat, a0, w, 1.0, 4)
    _, G, O = rb.gblending_weights(*L)
    assert np.all(O == 0.0)
    np.testing.assert_allclose(wts[0], np.abs(G) / np.abs(G).sum(), rtol=1e-14)
    once = rb.dynamics(a0, [2.0, 1.2], y, s, w, method="gblending", params={"every": 0,
                       "probe_steps": 4}, form=form, steps=15)
    assert np.all(once["wts"] == once["wts"][0])


# --------------------------------------------------------------------------- two transcriptions


CASES = {
    "reconboost": {"boost_steps": 3, "correct_steps": 2, "boost_weight": 5.0,
                   "ensemble_weight": 1.5},
    "greedy": {"epsilon": 0.002, "window": 3, "start": 1},
    "relearning": {"reset_scale": 3.0, "every": 6, "count": 2},
    "gblending": {"every": 8, "probe_steps": 3},
}


def noise_free_samples(K, form, seed, presence=(0.8, 1.0, 0.6), beta=(2.0, 1.2, 1.5)):
    """The population patterns as samples X_j = y s_r beta_r v_r (random unit v_r, d = 4)."""
    rng = np.random.default_rng(seed)
    y, s, w = population_patterns(presence[:K])
    B = 1 if form == "symmetric" else 2
    v = [rng.standard_normal(4) for _ in range(K)]
    v = [x / np.linalg.norm(x) for x in v]
    X = [(y * s[:, r] * beta[r])[:, None] * v[r][None, :] for r in range(K)]
    W0 = [0.25 * rng.standard_normal((B, 3, 4)) for _ in range(K)]
    c = np.array([1.0, -1.0])[:B]
    a0 = np.stack([c[:, None] * np.einsum("bid,d->bi", Wr, vr) for Wr, vr in zip(W0, v)])
    w_hold = rng.dirichlet(np.ones(y.size)) * 0.5 + 0.5 * w  # another sample's weights
    return X, y, s, w, W0, v, a0, np.array(beta[:K]), w_hold


@pytest.mark.parametrize("method", list(CASES))
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("K", [2, 3])
def test_weight_space_equals_the_pattern_recursion(method, form, K):
    X, y, s, w, W0, v, a0, beta, w_hold = noise_free_samples(K, form, seed=K)
    params = CASES[method]
    kw = dict(method=method, params=params, form=form, eta=1.3, steps=30)
    res = rb.train(X, y, w, W0, holdout=(X, y, w_hold), signals=v, **kw)
    dyn = rb.dynamics(a0, beta, y, s, w, w_holdout=w_hold, **kw)
    scale = np.abs(dyn["alignment"]).max()
    np.testing.assert_allclose(res["alignment"], dyn["alignment"], rtol=1e-10, atol=1e-10 * scale)
    for key in ("score", "ratio", "scale", "wts"):
        np.testing.assert_allclose(res[key], dyn[key], rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(res["cared"], dyn["cared"])
    assert [t for t, _ in res["resets"]] == [t for t, _ in dyn["resets"]]
    # the case exercises the method
    if method == "greedy":
        assert (dyn["cared"] >= 0).any()
    if method == "relearning":
        assert len(dyn["resets"]) == 2 and max(x.max() for _, x in dyn["resets"]) > 1e-3
    if method == "gblending":
        assert np.ptp(dyn["wts"][0]) > 1e-3
    assert np.abs(dyn["alignment"][-1] - a0).max() > 1e-2


@pytest.mark.parametrize("form", FORMS)
def test_relearning_in_population_is_plain_training(form):
    """docs/theory.md 15.7: with the population as its own held-out set every purity gap is 0."""
    X, y, s, w, W0, v, a0, beta, _ = noise_free_samples(2, form, seed=7)
    res = rb.dynamics(a0, beta, y, s, w, method="relearning", params={"every": 4}, form=form,
                      steps=20)
    assert len(res["resets"]) == 3 and all(np.all(x == 0.0) for _, x in res["resets"])
    plain = ref.train(X, y, w, W0, form=form, steps=20, signals=v)
    np.testing.assert_allclose(res["alignment"], plain["alignment"], rtol=1e-10,
                               atol=1e-12)
