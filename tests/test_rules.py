"""Training rules in the compiled loop: gradients, special cases and determinism.

The gradients of the methods' losses (aux, alternating, umt) are checked
against central finite differences of a plain-NumPy loss; mmpareto's
combination against its formula applied to the two NumPy gradients; the
rules that reduce to plain training (lr_scale with c = 1, ogm with
alpha = 0) are bit-identical to it; every rule gives bit-identical results
through the serial, the parallel and the batched path.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import reference as ref
from simcomp import kernels as kern
from simcomp.kernels import METHOD_NAMES, make_rule
from test_kernels import signal_problem


def n_banks(kind):
    return 1 if kind == 0 else 2


def one_step(P, kind, rule, eta=0.0, parallel=False, n_steps=1):
    """gd_segment with ``rule``; returns (W, grad_buf, status) after ``n_steps``."""
    W, g = P["W"].copy(), np.zeros_like(P["W"])
    learned = -np.ones(P["W"].shape[:2], np.int64)
    status, _, _ = kern.gd_segment(P["X"], P["dims"], P["y"], P["omega"], W, kind, 3.0, 1.0, eta,
                                   P["signal"], P["beta"], 1.0, learned, 0, n_steps, 0.0,
                                   parallel, g, rule=rule)
    return W, g, status


def logistic(u):
    return np.logaddexp(0.0, -u)


def units(P, W, kind):
    """Per-neuron unit values act(z), (K, B, m, n)."""
    Z = ref.preactivations(P["X"], P["dims"], W)
    return np.stack([ref.act(z, kind, 3.0, 1.0) for z in Z])


def method_loss(P, W, kind, name, **kw):
    f, phi = ref.forward(P["X"], P["dims"], W, kind, 3.0, 1.0)
    y, om = P["y"], P["omega"]
    fused = np.sum(om * logistic(y * f))
    if name == "aux":
        lam = kw["aux_weight"]
        return kw["fused_weight"] * fused + sum(lam[r] * np.sum(om * logistic(y * phi[:, r]))
                                                for r in range(phi.shape[1]))
    if name == "alternating":
        return sum(np.sum(om * logistic(y * phi[:, r])) for r in range(phi.shape[1]))
    if name == "umt":
        U = units(P, W, kind)
        BM = U.shape[1] * U.shape[2]
        dist = np.sum(om * (U - kw["teacher_units"]) ** 2 / BM)
        return fused + kw["distill_weight"] * dist
    raise ValueError(name)


def fd_grad(P, kind, name, h=1e-6, **kw):
    W = P["W"].astype(np.float64)
    G = np.zeros_like(W)
    for r, d in enumerate(P["dims"]):
        for idx in np.ndindex(W.shape[1], W.shape[2], int(d)):
            full = (r,) + idx
            Wp, Wm = W.copy(), W.copy()
            Wp[full] += h
            Wm[full] -= h
            G[full] = (method_loss(P, Wp, kind, name, **kw)
                       - method_loss(P, Wm, kind, name, **kw)) / (2 * h)
    return G


def method_kw(name, P, kind, seed):
    rng = np.random.default_rng(seed)
    K = P["W"].shape[0]
    if name == "aux":
        return dict(aux_weight=list(rng.uniform(0.0, 2.0, K)), fused_weight=rng.uniform(0.5, 2))
    if name == "umt":
        T = P["W"] + 0.05 * rng.standard_normal(P["W"].shape) * (P["W"] != 0)
        return dict(teacher_units=units(P, T, kind), distill_weight=rng.uniform(0.5, 10.0))
    return {}


@pytest.mark.parametrize("name", ["aux", "alternating", "umt"])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from([0, 1]), K=st.sampled_from([2, 3]))
def test_method_gradient_matches_finite_differences(name, seed, kind, K):
    dims = (5, 9, 4)[:K]
    P = signal_problem(seed, kind, dims=dims, n=40, w0=0.4)
    kw = method_kw(name, P, kind, seed)
    _, g, status = one_step(P, kind, make_rule(name, K, **kw))
    assert status == kern.STATUS_OK
    G = fd_grad(P, kind, name, **kw)
    np.testing.assert_allclose(g, G, rtol=1e-5, atol=1e-8)


def uni_grad(P, kind):
    """Gradient of sum_r L(phi_r) (each encoder's own uni-modal loss)."""
    G = np.zeros(P["W"].shape)
    for r in range(P["W"].shape[0]):
        G[r:r + 1] = ref.grad(P["X"][r:r + 1], P["dims"][r:r + 1], P["y"], P["omega"],
                              P["W"][r:r + 1], kind, 3.0, 1.0)
    return G


def pareto_reference(gm, gu):
    out = np.empty_like(gm)
    cos = np.empty(gm.shape[0])
    for r in range(gm.shape[0]):
        a, b = gm[r].ravel(), gu[r].ravel()
        cos[r] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        if cos[r] > 0:
            k0 = 0.5
        else:
            k0 = np.clip((b @ b - a @ b) / np.sum((a - b) ** 2), 0.001, 0.999)
        new = 2 * k0 * a + 2 * (1 - k0) * b
        out[r] = (1.5 * max(1.0, np.linalg.norm(a + b) / np.linalg.norm(new)) * new).reshape(
            gm[r].shape)
    return out, cos


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from([0, 1, 2]), K=st.sampled_from([2, 3]))
def test_mmpareto_combines_the_two_gradients(seed, kind, K):
    P = signal_problem(seed, kind, dims=(5, 9, 4)[:K], n=40, w0=0.4)
    rule = make_rule("mmpareto", K)
    _, g, _ = one_step(P, kind, rule)
    gm = ref.grad(P["X"], P["dims"], P["y"], P["omega"], P["W"], kind, 3.0, 1.0)
    want, cos = pareto_reference(gm, uni_grad(P, kind))
    np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(rule.stats[3], cos, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("B", [1, 2])
def test_mmpareto_weights_conflicting_gradients_by_the_min_norm_point(B):
    """Hand-made gradients: encoder 0's two gradients conflict (cosine < 0, so the
    min-norm weights k0 = (<u,u> - <m,u>) / |m - u|^2 apply, unclipped here), encoder 1's
    agree (k0 = 1/2).  The compiled rule against :func:`pareto_reference` (NumPy)."""
    from simcomp.kernels.rules import _mmpareto

    rng = np.random.default_rng(B)
    dims = np.array([4, 3], np.int64)
    gm = np.zeros((2, B, 2, 5))
    gm[:, :, :, :4] = rng.standard_normal((2, B, 2, 4))
    gm[1, :, :, 3] = 0.0  # encoder 1 has 3 columns; the padding stays zero
    gu = np.zeros_like(gm)
    gu[0] = -0.6 * gm[0]  # opposed to g_m, |g_u| != |g_m| (k0 then differs from 1 - k0) ...
    gu[0, :, :, :4] += 0.4 * rng.standard_normal((B, 2, 4))  # ... and not parallel
    gu[1] = gm[1] + 0.3 * rng.standard_normal((B, 2, 5))
    gu[1, :, :, 3:] = 0.0
    want, cos = pareto_reference(gm, gu)
    assert cos[0] < -0.2 and cos[1] > 0.2
    a, b = gm[0].ravel(), gu[0].ravel()
    k0 = (b @ b - a @ b) / ((a - b) @ (a - b))
    assert 0.001 < k0 < 0.999 and abs(k0 - 0.5) > 0.05  # the clip and the midpoint do not hide it
    G, G2 = gm.copy(), gu.copy()
    for r in range(2):
        got_cos, got_scale = _mmpareto(dims, G, G2, r)
        assert got_cos == pytest.approx(cos[r], rel=1e-12)
        assert got_scale >= 1.5
    np.testing.assert_allclose(G, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_lr_scale_one_and_ogm_alpha_zero_are_plain_training_bit_for_bit(kind):
    P = signal_problem(3, kind, dims=(5, 9, 4), n=300)
    W0, g0, _ = one_step(P, kind, None, eta=1.5, n_steps=6)
    for rule in (make_rule("lr_scale", 3, lr_scale=[1, 1, 1]), make_rule("ogm", 3, alpha=0.0),
                 make_rule("none", 3)):
        W, g, _ = one_step(P, kind, rule, eta=1.5, n_steps=6)
        assert np.array_equal(W, W0) and np.array_equal(g, g0), rule.name


def test_lr_scale_scales_each_encoder_step():
    P = signal_problem(1, 0, dims=(5, 9), n=60)
    W0 = P["W"]
    W1, g, _ = one_step(P, 0, None, eta=0.5)
    W2, _, _ = one_step(P, 0, make_rule("lr_scale", 2, lr_scale=[2.0, 0.25]), eta=0.5)
    np.testing.assert_allclose(W2[0] - W0[0], 2.0 * (W1[0] - W0[0]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(W2[1] - W0[1], 0.25 * (W1[1] - W0[1]), rtol=1e-12, atol=1e-15)


def test_alternating_trains_each_encoder_as_alone():
    """Every encoder follows its uni-modal trajectory (to rounding)."""
    P = signal_problem(5, 1, dims=(5, 9, 4), n=300)
    W, _, _ = one_step(P, 1, make_rule("alternating", 3), eta=2.0, n_steps=15)
    for r in range(3):
        Q = {key: P[key] for key in P}
        Q.update(X=np.ascontiguousarray(P["X"][r:r + 1]), W=np.ascontiguousarray(P["W"][r:r + 1]),
                 dims=P["dims"][r:r + 1], signal=P["signal"][r:r + 1], beta=P["beta"][r:r + 1])
        Wr, _, _ = one_step(Q, 1, None, eta=2.0, n_steps=15)
        np.testing.assert_allclose(W[r], Wr[0], rtol=1e-12, atol=1e-14)


def ogm_reference(P, kind, alpha, W=None):
    _, phi = ref.forward(P["X"], P["dims"], P["W"] if W is None else W, kind, 3.0, 1.0)
    p = 1.0 / (1.0 + np.exp(-P["y"][:, None] * phi))
    score = P["omega"] @ p
    K = score.shape[0]
    ratio = np.array([score[r] / np.mean(np.delete(score, r)) for r in range(K)])
    k = np.where(ratio > 1, 1 - np.tanh(alpha * ratio), 1.0)
    return score, ratio, k


@pytest.mark.parametrize("K", [2, 3])
def test_ogm_scores_ratios_and_scales(K):
    P = signal_problem(2, 0, dims=(5, 9, 4)[:K], n=200, w0=0.5)
    rule = make_rule("ogm", K, alpha=0.8)
    W, g, _ = one_step(P, 0, rule, eta=1.0)
    score, ratio, k = ogm_reference(P, 0, 0.8)
    np.testing.assert_allclose(rule.stats[0], score, rtol=1e-12)
    np.testing.assert_allclose(rule.stats[1], ratio, rtol=1e-12)
    np.testing.assert_allclose(rule.stats[2], k, rtol=1e-12)
    np.testing.assert_allclose(P["W"] - W, k[:, None, None, None] * g, rtol=1e-12, atol=1e-16)
    assert np.all(np.isnan(rule.stats[3]))


def test_ogm_start_stop_window():
    P = signal_problem(2, 0, dims=(5, 9), n=200, w0=0.5)
    rule = make_rule("ogm", 2, alpha=0.8, start=1)
    one_step(P, 0, rule, eta=1.0)
    assert np.all(rule.stats[2] == 1.0)  # t = 0 is before start


def test_agm_first_step():
    P = signal_problem(4, 1, dims=(5, 9), n=200, w0=0.5)
    rule = make_rule("agm", 2)
    one_step(P, 1, rule, eta=1.0)
    _, phi = ref.forward(P["X"], P["dims"], P["W"], 1, 3.0, 1.0)
    p = 1.0 / (1.0 + np.exp(-P["y"][:, None] * phi))
    s = P["omega"] @ (-np.log(np.maximum(p, 1e-8)))
    ratio = np.exp(s[::-1] - s)
    k = np.exp(1.0 * np.minimum(1.0 - ratio, 10.0))  # optimal = 1 from the zero running mean
    np.testing.assert_allclose(rule.stats[0], s, rtol=1e-12)
    np.testing.assert_allclose(rule.stats[1], ratio, rtol=1e-12)
    np.testing.assert_allclose(rule.stats[2], k, rtol=1e-12)
    np.testing.assert_allclose(rule.state[0], s, rtol=1e-12)  # running mean after step 0


def test_dropout_zero_rate_is_plain_training_to_rounding():
    P = signal_problem(6, 0, dims=(5, 9), n=200)
    W0, _, _ = one_step(P, 0, None, eta=1.0, n_steps=5)
    W1, _, _ = one_step(P, 0, make_rule("dropout", 2, drop=[0.0, 0.0]), eta=1.0, n_steps=5)
    np.testing.assert_allclose(W1, W0, rtol=1e-12, atol=1e-15)


def test_dropout_masks_follow_the_key_and_the_rate():
    P = signal_problem(6, 0, dims=(5, 9), n=300)
    a, _, _ = one_step(P, 0, make_rule("dropout", 2, drop=[0.5, 0.0], key=1), eta=1.0)
    b, _, _ = one_step(P, 0, make_rule("dropout", 2, drop=[0.5, 0.0], key=1), eta=1.0)
    c, _, _ = one_step(P, 0, make_rule("dropout", 2, drop=[0.5, 0.0], key=2), eta=1.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    full, _, _ = one_step(P, 0, make_rule("dropout", 2, drop=[0.999999, 0.0], key=1), eta=1.0)
    np.testing.assert_array_equal(full[0], P["W"][0])  # every sample drops modality 0


def test_dropout_rescale_uses_each_modalitys_own_rate():
    """Modality B (rate 0.5) is rescaled by 1 / (1 - 0.5) even when A's rate is 0: the
    rescaled and the plain dropout steps differ; with B's rate 0 too they are equal."""
    P = signal_problem(6, 0, dims=(5, 9), n=300)

    def step(drop, rescale):
        return one_step(P, 0, make_rule("dropout", 2, drop=drop, rescale=rescale, key=1),
                        eta=1.0)[0]

    assert not np.array_equal(step([0.0, 0.5], True), step([0.0, 0.5], False))
    np.testing.assert_array_equal(step([0.0, 0.0], True), step([0.0, 0.0], False))


ALL = list(METHOD_NAMES)  # every compiled rule of the registry


def rule_for(name, P, kind, K):
    kw = dict(key=7, shape=P["W"].shape[1:3] + (P["y"].size, P["W"].shape[3]))
    if name == "umt":
        kw.update(teacher_units=units(P, 1.1 * P["W"], kind))
    if name == "dropout":
        kw.update(drop=[0.3] * K)
    if name == "opm":
        kw.update(start=0, execute_prob=1.0)
    if name == "lr_scale":
        kw.update(lr_scale=[0.5 + r for r in range(K)])
    return make_rule(name, K, **kw)


@pytest.mark.parametrize("name", ALL)
def test_serial_parallel_and_batched_paths_agree_bit_for_bit(name):
    kind, K = 1, 2
    probs = [signal_problem(s, kind, dims=(5, 9), n=300) for s in (0, 1)]
    serial = [one_step(P, kind, rule_for(name, P, kind, K), eta=1.0, n_steps=5) for P in probs]
    par_rules = [rule_for(name, P, kind, K) for P in probs]
    parallel = [one_step(P, kind, r, eta=1.0, n_steps=5, parallel=True)
                for P, r in zip(probs, par_rules)]
    for (a, ga, _), (b, gb, _) in zip(serial, parallel):
        assert np.array_equal(a, b) and np.array_equal(ga, gb)
    rules = kern.stack_rules([rule_for(name, P, kind, K) for P in probs], K)
    packed = [kern.pack_samples(P["X"]) for P in probs]
    W = np.stack([P["W"] for P in probs])
    R = 2
    status, t_stop, loss = np.zeros(R, np.int64), np.zeros(R, np.int64), np.zeros(R)
    kern.gd_segment_batch(np.stack([p[0] for p in packed]), np.stack([p[1] for p in packed]),
                          np.stack([P["dims"] for P in probs]), np.stack([P["y"] for P in probs]),
                          np.stack([P["omega"] for P in probs]), W, kind, 3.0, 1.0,
                          np.ones(R), np.stack([P["signal"] for P in probs]),
                          np.stack([P["beta"] for P in probs]), np.ones(R),
                          -np.ones((R, K, 2), np.int64), np.zeros(R, np.int64),
                          np.full(R, 5, np.int64), np.zeros(R), status, t_stop, loss,
                          rules=rules)
    for i in range(R):
        assert np.array_equal(W[i], serial[i][0]), i
    if name != "none":
        np.testing.assert_array_equal(rules[6][0], par_rules[0].stats)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_float32_runs_stay_float32_and_finite(name):
    kind, K = 0, 2
    P = signal_problem(0, kind, dims=(5, 9), n=200, dtype=np.float32)
    W, g, status = one_step(P, kind, rule_for(name, P, kind, K), eta=1.0, n_steps=4)
    assert W.dtype == np.float32 and status == kern.STATUS_OK
    assert np.all(np.isfinite(W))


def test_ogm_ge_noise_has_the_gradient_std():
    P = signal_problem(0, 0, dims=(5, 9), n=200, w0=0.3)
    rule = make_rule("ogm_ge", 2, alpha=0.0, key=3)
    W, g, _ = one_step(P, 0, rule, eta=1.0)
    noise = (P["W"] - W) - g  # k = 1 at alpha = 0
    for r, d in enumerate(P["dims"]):
        entries = g[r, :, :, :d].ravel()
        std = np.std(entries, ddof=1) + 1e-8
        xi = noise[r, :, :, :d].ravel()
        assert np.all(noise[r, :, :, d:] == 0)
        assert 0.5 * std < np.std(xi) < 1.5 * std  # 15 or 27 draws of N(0, std^2)


def test_make_rule_refuses_bad_arguments():
    with pytest.raises(ValueError, match="method 'bogus'"):
        make_rule("bogus", 2)
    with pytest.raises(ValueError, match="lr_scale needs 2 values"):
        make_rule("lr_scale", 2, lr_scale=[1.0])
    with pytest.raises(ValueError, match="drop must be < 1"):
        make_rule("dropout", 2, drop=[1.0, 0.0])
    with pytest.raises(ValueError, match="umt needs teacher_units"):
        make_rule("umt", 2)
    with pytest.raises(ValueError, match="start <= stop"):
        make_rule("ogm", 2, start=5, stop=3)


def test_ogm_ge_normals_are_standard_normal_and_counter_based():
    """The ziggurat's numbers (fixed streams, so not flaky): moments, tails and the
    distribution function of the standard normal; a stream is a pure function of its key."""
    from math import erf, erfc, sqrt

    from simcomp.kernels.rng import normals

    x = np.concatenate([normals(key, 7, 1, 2, 250_000) for key in (1, 2)])
    n = x.size
    assert abs(x.mean()) < 4 / sqrt(n)
    assert abs(x.var() - 1.0) < 4 * sqrt(2 / n)
    assert abs(np.mean(x**3)) < 4 * sqrt(15 / n)
    assert abs(np.mean(x**4) - 3.0) < 4 * sqrt(96 / n)
    for c in (1.0, 2.0, 3.0, 3.5):  # 3.5 is beyond the ziggurat's base strip (3.44)
        p = erfc(c / sqrt(2))
        assert abs(np.mean(np.abs(x) > c) - p) < 4 * sqrt(p / n)
    xs = np.sort(x)[::50]
    cdf = 0.5 * (1.0 + np.vectorize(erf)(xs / sqrt(2)))
    assert np.max(np.abs(cdf - (np.arange(0, n, 50) + 0.5) / n)) < 2.0 / sqrt(n)  # KS, ~p 1e-3
    np.testing.assert_array_equal(normals(1, 7, 1, 2, 1000), x[:1000])
    assert not np.array_equal(normals(1, 8, 1, 2, 1000), x[:1000])
