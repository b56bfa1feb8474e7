"""The NumPy reference of the methods: hand-written gradients against finite differences,
and the identities that tie the methods to plain training."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_methods as ref

FORMS_SMOOTH = ("symmetric", "class_banks")  # srelu is C^1: central differences converge


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


def fd_grad(loss_of, W, h=1e-6):
    """Central differences of loss_of(W) over every entry of every W_r."""
    out = []
    for r in range(len(W)):
        g = np.zeros_like(W[r])
        for idx in np.ndindex(W[r].shape):
            Wp = [w.copy() for w in W]
            Wm = [w.copy() for w in W]
            Wp[r][idx] += h
            Wm[r][idx] -= h
            g[idx] = (loss_of(Wp) - loss_of(Wm)) / (2 * h)
        out.append(g)
    return out


def assert_grad_close(got, want):
    for g, w in zip(got, want):
        scale = max(1.0, np.abs(w).max())
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-6 * scale)


shapes = dict(
    seed=st.integers(0, 2**31 - 1),
    K=st.integers(1, 3),
    m=st.integers(1, 3),
    n=st.integers(1, 6),
    form=st.sampled_from(FORMS_SMOOTH),
    scale=st.floats(0.1, 2.0),
)


@settings(max_examples=25, deadline=None)
@given(**shapes, w0=st.floats(0.0, 3.0), lam=st.lists(st.floats(0.0, 3.0), min_size=3, max_size=3))
def test_aux_gradient_matches_finite_differences(seed, K, m, n, form, scale, w0, lam):
    X, y, omega, W = problem(seed, K, m, n, form, scale)
    lam = lam[:K]
    got = ref.aux_grad(X, y, omega, W, form, 3.0, 1.0, w0, lam)
    want = fd_grad(lambda V: ref.aux_loss(X, y, omega, V, form, 3.0, 1.0, w0, lam), W)
    assert_grad_close(got, want)


@settings(max_examples=25, deadline=None)
@given(**shapes, lam=st.floats(0.0, 20.0), tseed=st.integers(0, 1000))
def test_umt_gradient_matches_finite_differences(seed, K, m, n, form, scale, lam, tseed):
    X, y, omega, W = problem(seed, K, m, n, form, scale)
    rng = np.random.default_rng(tseed)
    teacher = [ref.encoder(Xr, rng.normal(size=Wr.shape), form, 3.0, 1.0)[1] for Xr, Wr in zip(X, W)]
    got = ref.umt_grad(X, y, omega, W, form, 3.0, 1.0, lam, teacher)
    want = fd_grad(lambda V: ref.umt_loss(X, y, omega, V, form, 3.0, 1.0, lam, teacher), W)
    assert_grad_close(got, want)


@settings(max_examples=25, deadline=None)
@given(**shapes)
def test_mmpareto_gradients_match_finite_differences(seed, K, m, n, form, scale):
    X, y, omega, W = problem(seed, K, m, n, form, scale)
    pairs = ref.mmpareto_grads(X, y, omega, W, form, 3.0, 1.0)
    want_m = fd_grad(lambda V: ref.fused_loss(X, y, omega, V, form, 3.0, 1.0), W)
    assert_grad_close([g for g, _ in pairs], want_m)
    for r in range(K):
        want_u = fd_grad(lambda V: ref.unimodal_loss(X[r], y, omega, V[0], form, 3.0, 1.0), [W[r]])
        assert_grad_close([pairs[r][1]], want_u)


@settings(max_examples=25, deadline=None)
@given(**shapes)
def test_one_step_of_none_is_the_fused_gradient(seed, K, m, n, form, scale):
    X, y, omega, W = problem(seed, K, m, n, form, scale)
    res = ref.train(X, y, omega, W, form=form, eta=0.7, steps=1, method="none")
    want = fd_grad(lambda V: ref.fused_loss(X, y, omega, V, form, 3.0, 1.0), W)
    for r in range(K):
        np.testing.assert_allclose((W[r] - res["W"][r]) / 0.7, want[r], rtol=0,
                                   atol=2e-6 * max(1.0, np.abs(want[r]).max()))


def test_mmpareto_combination_cases():
    g = np.array([[1.0, 2.0]])
    step, cos, scale = ref.mmpareto_combine(g, g)
    assert cos == pytest.approx(1.0) and scale == 1.5
    np.testing.assert_allclose(step, 3.0 * g)
    g_m, g_u = np.array([1.0, 0.0]), np.array([-1.0, 1.0])
    step, cos, scale = ref.mmpareto_combine(g_m, g_u)
    assert cos < 0
    k0 = (2.0 - (-1.0)) / 5.0  # (<g_u,g_u> - <g_m,g_u>) / |g_m - g_u|^2
    new = 2 * k0 * g_m + 2 * (1 - k0) * g_u
    assert scale == pytest.approx(1.5 * max(1.0, np.linalg.norm(g_m + g_u) / np.linalg.norm(new)))
    np.testing.assert_allclose(step, scale * new)
    # the min-norm point of the segment is orthogonal-ish: <new, g_m - g_u> = 0 before clipping
    assert new @ (g_m - g_u) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- identities

FORMS = ("symmetric", "class_banks", "relu")
STEPS = 15


def run(X, y, omega, W, form, method, **params):
    return ref.train(X, y, omega, W, form=form, q=3.0, rho=1.0, eta=0.9, steps=STEPS,
                     method=method, params=params)


@pytest.fixture(params=[(form, K) for form in FORMS for K in (1, 2, 3)], ids=str)
def prob(request):
    form, K = request.param
    X, y, omega, W = problem(11 + K, K, 3, 12, form, scale=0.6)
    return X, y, omega, W, form


def same(a, b, rtol=0.0):
    for x, z in zip(a["W"], b["W"]):
        np.testing.assert_allclose(x, z, rtol=rtol, atol=0)


def test_neutral_settings_equal_plain_training(prob):
    X, y, omega, W, form = prob
    K = len(X)
    plain = run(X, y, omega, W, form, "none")
    same(run(X, y, omega, W, form, "lr_scale", lr_scale=[1.0] * K), plain)
    same(run(X, y, omega, W, form, "ogm", alpha=0.0), plain)
    same(run(X, y, omega, W, form, "agm", alpha=0.0), plain)
    same(run(X, y, omega, W, form, "ogm", alpha=0.5, start=STEPS), plain)
    same(run(X, y, omega, W, form, "dropout", drop=[0.0] * K), plain)
    same(run(X, y, omega, W, form, "aux", fused_weight=1.0, aux_weight=[0.0] * K), plain, 1e-15)
    teacher = [np.zeros((W[r].shape[0], W[r].shape[1], y.size)) for r in range(K)]
    plain_umt = ref.train(X, y, omega, W, form=form, eta=0.9, steps=STEPS, method="umt",
                          params={"distill_weight": 0.0}, teacher_units=teacher)
    same(plain_umt, plain, 1e-15)
    # ogm_ge without noise is ogm
    ogm = run(X, y, omega, W, form, "ogm", alpha=0.8)
    quiet = ref.train(X, y, omega, W, form=form, eta=0.9, steps=STEPS, method="ogm_ge",
                      params={"alpha": 0.8}, noise=lambda t, r, shape: np.zeros(shape))
    same(quiet, ogm)


def test_alternating_is_independent_unimodal_training(prob):
    X, y, omega, W, form = prob
    alt = run(X, y, omega, W, form, "alternating")
    for r in range(len(X)):
        alone = ref.train([X[r]], y, omega, [W[r]], form=form, eta=0.9, steps=STEPS)
        np.testing.assert_allclose(alt["W"][r], alone["W"][0], rtol=1e-12, atol=0)


def test_lr_scale_scales_the_step(prob):
    X, y, omega, W, form = prob
    K = len(X)
    c = [0.5 + r for r in range(K)]
    one = ref.train(X, y, omega, W, form=form, eta=0.9, steps=1, method="lr_scale",
                    params={"lr_scale": c})
    plain = ref.train(X, y, omega, W, form=form, eta=0.9, steps=1)
    for r in range(K):
        np.testing.assert_allclose(W[r] - one["W"][r], c[r] * (W[r] - plain["W"][r]), rtol=1e-12,
                                   atol=1e-300)


def test_mmpareto_with_one_modality_triples_the_step(prob):
    X, y, omega, W, form = prob
    a = ref.train(X[:1], y, omega, W[:1], form=form, eta=0.3, steps=STEPS, method="mmpareto")
    b = ref.train(X[:1], y, omega, W[:1], form=form, eta=0.9, steps=STEPS)
    np.testing.assert_allclose(a["W"][0], b["W"][0], rtol=1e-12, atol=1e-15)
    assert np.all(a["scale"][:, 0] == 1.5)


def test_dropout_mask_freezes_the_dropped_encoder(prob):
    X, y, omega, W, form = prob
    K = len(X)
    mask = np.ones((y.size, K))
    mask[:, 0] = 0.0
    res = ref.train(X, y, omega, W, form=form, steps=3, method="dropout",
                    params={"drop": [0.5] * K}, masks=lambda t: mask)
    np.testing.assert_array_equal(res["W"][0], W[0])
    if K > 1:
        # The others train as if modality 0 were absent.
        alone = ref.train(X[1:], y, omega, W[1:], form=form, steps=3)
        for r in range(1, K):
            np.testing.assert_allclose(res["W"][r], alone["W"][r - 1], rtol=1e-13, atol=0)


def test_ogm_and_agm_statistics(prob):
    X, y, omega, W, form = prob
    K = len(X)
    res = run(X, y, omega, W, form, "ogm", alpha=0.3)
    if K == 1:
        assert np.all(np.isnan(res["ratio"])) and np.all(res["scale"] == 1.0)
        return
    assert np.all((res["score"] > 0) & (res["score"] < 1))
    if K == 2:
        np.testing.assert_allclose(res["ratio"][:, 0] * res["ratio"][:, 1], 1.0, rtol=1e-14)
    k_expected = np.where(res["ratio"] > 1, 1 - np.tanh(0.3 * res["ratio"]), 1.0)
    np.testing.assert_array_equal(res["scale"], k_expected)
    res = run(X, y, omega, W, form, "agm", alpha=1.0)
    # at t = 0 the running mean is 0, so optimal = 1 and k = exp(min(1 - ratio, 10))
    np.testing.assert_allclose(res["scale"][0], np.exp(np.minimum(1 - res["ratio"][0], 10)), rtol=1e-14)
    assert np.all(np.isnan(res["cosine"]))


def test_trainer_steps_use_the_checked_gradients(prob):
    X, y, omega, W, form = prob
    K = len(X)
    lam = [0.5 + r for r in range(K)]
    one = ref.train(X, y, omega, W, form=form, eta=0.4, steps=1, method="aux",
                    params={"fused_weight": 0.7, "aux_weight": lam})
    for r, g in enumerate(ref.aux_grad(X, y, omega, W, form, 3.0, 1.0, 0.7, lam)):
        np.testing.assert_allclose(one["W"][r], W[r] - 0.4 * g, rtol=1e-13, atol=1e-15)
    rng = np.random.default_rng(3)
    teacher = [ref.encoder(Xr, rng.normal(size=Wr.shape), form, 3.0, 1.0)[1] for Xr, Wr in zip(X, W)]
    one = ref.train(X, y, omega, W, form=form, eta=0.4, steps=1, method="umt",
                    params={"distill_weight": 3.0}, teacher_units=teacher)
    for r, g in enumerate(ref.umt_grad(X, y, omega, W, form, 3.0, 1.0, 3.0, teacher)):
        np.testing.assert_allclose(one["W"][r], W[r] - 0.4 * g, rtol=1e-13, atol=1e-15)
    one = ref.train(X, y, omega, W, form=form, eta=0.4, steps=1, method="mmpareto")
    for r, (g_m, g_u) in enumerate(ref.mmpareto_grads(X, y, omega, W, form, 3.0, 1.0)):
        step, cos, scale = ref.mmpareto_combine(g_m, g_u)
        np.testing.assert_allclose(one["W"][r], W[r] - 0.4 * step, rtol=1e-13, atol=1e-15)
        assert one["cosine"][0, r] == cos and one["scale"][0, r] == scale
