"""Training methods on the fusion engine: lr_scale, aux and alternating against a plain-NumPy
GD loop; the methods it does not run are refused with their name and the architecture."""

import numpy as np
import pytest

import simcomp
from simcomp.fusion_train import learning_rate_scale, prepare, train_fusion
from reference_fusion import act, loss_grad, unpack

BASE = {"model.head": "trainable", "data.kind": "gaussian", "train.mode": "joint",
        "data.modality.0.dim": 2, "data.modality.1.dim": 3, "model.width": 2,
        "data.modality.0.noise": 0.0, "data.modality.1.noise": 0.0, "data.n_train": 32,
        "train.steps": 25, "train.trace_every": 5, "model.init_scale": 0.3, "train.lr": 0.05,
        "data.modality.0.std": 2.0, "model.activation": "relu"}
ARCHS = {
    "late": {},
    "early": {"model.architecture": "early_fusion"},
    "deep": {"model.architecture": "deep_fusion", "model.depth": 4, "model.fusion_layer": 3},
}


def reference_factors(dims, m, L, Lf, c):
    """Each weight's step factor, from the documented layout: modality r's encoder
    matrices and the fusion layer's columns reading r get c_r, shared layers 1."""
    parts = []
    for r, d in enumerate(dims):
        for e in range(Lf - 1):
            parts.append(np.full(m * (d if e == 0 else m), c[r]))
    rows = 1 if Lf == L else m
    col_owner = np.concatenate([np.full(d if Lf == 1 else m, c[r]) for r, d in enumerate(dims)])
    parts.append(np.tile(col_owner, rows))
    for l in range(Lf + 1, L + 1):
        parts.append(np.ones((1 if l == L else m) * m))
    return np.concatenate(parts)


def numpy_gd(theta, X, y, dims, m, L, Lf, kind, loss, lr, steps, factors):
    theta = theta.copy()
    for _ in range(steps):
        _, g = loss_grad(theta, X, y, dims, m, L, Lf, kind, loss)
        theta -= lr * factors * g
    return theta


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_lr_scale_matches_the_numpy_reference(arch, loss):
    c = (0.25, 3.0)
    cfg = simcomp.build_config(overrides={**BASE, **ARCHS[arch], "train.loss": loss,
                                          "method.name": "lr_scale", "method.lr_scale": list(c)})
    run = prepare(cfg)
    assert run.route == "samples"
    X, y = run.data[0], run.data[1]
    net = run.net
    dims, m, L, Lf = [2, 3], 2, net.depth, net.fusion_layer
    factors = reference_factors(dims, m, L, Lf, c)
    np.testing.assert_array_equal(learning_rate_scale(cfg, net), factors)
    want = numpy_gd(run.theta0, X, y, dims, m, L, Lf, "relu", loss, cfg.train.lr,
                    cfg.train.steps, factors)
    got = train_fusion([cfg], [run])[0]["theta"]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    # and the factors matter: plain GD ends elsewhere
    plain = numpy_gd(run.theta0, X, y, dims, m, L, Lf, "relu", loss, cfg.train.lr,
                     cfg.train.steps, np.ones_like(factors))
    assert np.max(np.abs(plain - want)) > 1e-6


def test_lr_scale_of_ones_is_plain_training_and_batches_keep_their_factors():
    plain = simcomp.build_config(overrides=BASE)
    ones = simcomp.build_config(overrides={**BASE, "method.name": "lr_scale",
                                           "method.lr_scale": [1.0, 1.0]})
    scaled = simcomp.build_config(overrides={**BASE, "method.name": "lr_scale",
                                             "method.lr_scale": [4.0, 0.5]})
    a, b, c = train_fusion([plain, ones, scaled])
    np.testing.assert_array_equal(a["theta"], b["theta"])
    alone = train_fusion([scaled])[0]
    np.testing.assert_array_equal(c["theta"], alone["theta"])  # not trained with ones' mask


def test_lr_scale_has_no_closed_form_prediction():
    cfg = simcomp.build_config(overrides={**BASE, "model.activation": "linear",
                                          "train.loss": "mse", "data.modality.0.dim": 1,
                                          "data.modality.1.dim": 1, "model.width": 1,
                                          "method.name": "lr_scale",
                                          "method.lr_scale": [1.0, 2.0]})
    run = simcomp.simulate(cfg).summary["runs"]["joint"]
    assert run["predicted_half_step"] == {"A": None, "B": None}
    assert "lr_scale" in run["theory_formula"]


@pytest.mark.parametrize("method", ["ogm_ge", "dropout", "mmpareto", "umt", "ume"])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_other_methods_are_refused_naming_method_and_architecture(method, arch):
    with pytest.raises(simcomp.ConfigError) as err:
        simcomp.build_config(overrides={**BASE, **ARCHS[arch], "method.name": method})
    text = str(err.value)
    assert f"method.name = {method!r}" in text and "model.architecture" in text
    for valid in ("lr_scale", "aux", "alternating", "ogm", "agm"):
        assert f"'{valid}'" in text


@pytest.mark.parametrize("method", ["ogm", "agm"])
def test_score_methods_need_the_logistic_loss(method):
    with pytest.raises(simcomp.ConfigError) as err:
        simcomp.build_config(overrides={**BASE, "train.loss": "mse", "method.name": method})
    text = str(err.value)
    assert f"method.name = {method!r}" in text and "train.loss = 'logistic'" in text
    assert "model.architecture" in text


def numpy_rule_gd(theta, X, y, dims, m, L, Lf, kind, lr, steps, method, alpha, start, stop):
    """ogm / agm written from docs/methods.md: scores of each modality's own output (the
    network on that modality alone), k_r on the weights r owns, the fused loss's gradient."""
    theta = theta.copy()
    K = len(dims)
    sbar = np.zeros(K)
    for t in range(steps):
        p = [1.0 / (1.0 + np.exp(-y * outputs_of(theta, masked(X, dims, r), dims, m, L, Lf,
                                                 kind))) for r in range(K)]
        s0 = np.array([pr.mean() for pr in p])
        s1 = np.array([np.mean(-np.log(np.maximum(pr, 1e-8))) for pr in p])
        active = start <= t < stop
        k = np.ones(K)
        for r in range(K):
            other = [q for q in range(K) if q != r]
            if method == "ogm":
                ratio = s0[r] / s0[other].mean()
                k[r] = 1.0 - np.tanh(alpha * ratio) if active and ratio > 1.0 else 1.0
            else:
                ratio = np.exp(s1[other].mean() - s1[r])
                target = np.exp(sbar[other].mean() - sbar[r])
                k[r] = np.exp(alpha * min(target - ratio, 10.0)) if active else 1.0
        sbar = (t * sbar + s1) / (t + 1.0)
        g = loss_grad(theta, X, y, dims, m, L, Lf, kind, "logistic")[1]
        theta -= lr * reference_factors(dims, m, L, Lf, k) * g
    return theta


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("method,keys", [
    ("ogm", {"method.alpha": 0.8}), ("ogm", {"method.alpha": 0.5, "method.start": 5,
                                             "method.stop": 15}),
    ("agm", {"method.alpha": 1.0}), ("agm", {"method.alpha": 2.0, "method.start": 3})])
def test_score_methods_match_the_numpy_reference(arch, method, keys):
    cfg = simcomp.build_config(overrides={**BASE, **ARCHS[arch], "train.loss": "logistic",
                                          "method.name": method, **keys})
    run = prepare(cfg)
    X, y = run.data[0], run.data[1]
    net = run.net
    dims, m, L, Lf = [2, 3], 2, net.depth, net.fusion_layer
    mcfg = cfg.method
    stop = 10 ** 9 if mcfg.stop is None else mcfg.stop
    want = numpy_rule_gd(run.theta0, X, y, dims, m, L, Lf, "relu", cfg.train.lr,
                         cfg.train.steps, method, mcfg.alpha, mcfg.start, stop)
    got = train_fusion([cfg], [run])[0]["theta"]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    plain = numpy_gd(run.theta0, X, y, dims, m, L, Lf, "relu", "logistic", cfg.train.lr,
                     cfg.train.steps, np.ones(net.n_params))
    assert np.max(np.abs(plain - want)) > 1e-8  # the factors moved the weights


def masked(X, dims, r):
    """X with every column but modality r's set to zero."""
    cols = np.concatenate([[0], np.cumsum(dims)])
    out = np.zeros_like(X)
    out[:, cols[r]:cols[r + 1]] = X[:, cols[r]:cols[r + 1]]
    return out


def numpy_views_gd(theta, X, y, dims, m, L, Lf, kind, loss, lr, steps, weights):
    """GD on sum_v weights[v] * loss(view v): view 0 the whole input, view r + 1 modality r
    alone -- written from docs/methods.md, with the reference's gradient."""
    theta = theta.copy()
    views = [X] + [masked(X, dims, r) for r in range(len(dims))]
    for _ in range(steps):
        g = sum(wv * loss_grad(theta, V, y, dims, m, L, Lf, kind, loss)[1]
                for wv, V in zip(weights, views) if wv != 0.0)
        theta -= lr * g
    return theta


VIEW_CASES = [
    ("aux", {"method.fused_weight": 0.5, "method.aux_weight": [2.0, 0.25]}, [0.5, 2.0, 0.25]),
    ("aux", {}, [1.0, 1.0, 1.0]),
    ("alternating", {}, [0.0, 1.0, 1.0]),
]


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("loss", ["mse", "logistic"])
@pytest.mark.parametrize("method,keys,weights", VIEW_CASES)
def test_view_methods_match_the_numpy_reference(arch, loss, method, keys, weights):
    # alternating needs an additive network: linear where the fusion is not at the end
    kind = "relu" if method == "aux" or arch == "late" else "linear"
    cfg = simcomp.build_config(overrides={**BASE, **ARCHS[arch], "train.loss": loss,
                                          "model.activation": kind, "method.name": method,
                                          **keys})
    run = prepare(cfg)
    if run.route != "samples":
        pytest.skip("the moment route is checked below")
    X, y = run.data[0], run.data[1]
    net = run.net
    dims, m, L, Lf = [2, 3], 2, net.depth, net.fusion_layer
    want = numpy_views_gd(run.theta0, X, y, dims, m, L, Lf, kind, loss, cfg.train.lr,
                          cfg.train.steps, weights)
    res = train_fusion([cfg], [run])[0]
    np.testing.assert_allclose(res["theta"], want, rtol=1e-10, atol=1e-13)
    plain = numpy_views_gd(run.theta0, X, y, dims, m, L, Lf, kind, loss, cfg.train.lr,
                           cfg.train.steps, [1.0, 0.0, 0.0])
    assert np.max(np.abs(plain - want)) > 1e-6  # the method changed the path
    # the recorded loss is the predictor's: the fused output for aux, sum_r a_r f_r for
    # alternating (mix all ones here)
    if method == "aux":
        value = loss_grad(want, X, y, dims, m, L, Lf, kind, loss)[0]
    else:
        pred = sum(outputs_of(want, masked(X, dims, r), dims, m, L, Lf, kind) for r in (0, 1))
        value = np.mean(0.5 * (pred - y) ** 2 if loss == "mse"
                        else np.logaddexp(0.0, -y * pred))
    assert res["trace"]["loss"][-1] == pytest.approx(value, rel=1e-9)


def outputs_of(theta, X, dims, m, L, Lf, kind):
    """The reference network's outputs (plain NumPy, the documented weight order)."""
    enc, fuse, shared = unpack(theta, dims, m, L, Lf)
    cols = np.concatenate([[0], np.cumsum(dims)])
    codes = []
    for r, layers in enumerate(enc):
        h = X[:, cols[r]:cols[r + 1]]
        for W in layers:
            h = act(h @ W.T, kind)[0]
        codes.append(h)
    z = (X if Lf == 1 else np.concatenate(codes, axis=1)) @ fuse.T
    for W in shared:
        z = act(z, kind)[0] @ W.T
    return z[:, 0]


@pytest.mark.parametrize("method,keys,weights", VIEW_CASES + [
    ("alternating", {"method.mix": [0.55, 0.45]}, [0.0, 1.0, 1.0])])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_view_methods_on_the_moment_route(arch, method, keys, weights):
    """Linear, squared loss: the moment route's masked moments against the reference on the
    same training set, and the recorded total weights of the method's predictor."""
    from simcomp.fusion_train import _STREAM_GAUSS, _rng, gaussian_covariance

    cfg = simcomp.build_config(overrides={**BASE, **ARCHS[arch], "train.loss": "mse",
                                          "model.activation": "linear", "method.name": method,
                                          **keys})
    run = prepare(cfg)
    assert run.route == "moments"
    cov, target = gaussian_covariance(cfg)
    rng = _rng(cfg.seed, _STREAM_GAUSS)
    X = rng.standard_normal((cfg.data.n_train, cov.shape[0])) @ np.linalg.cholesky(cov).T
    y = X @ target
    net = run.net
    dims, m, L, Lf = [2, 3], 2, net.depth, net.fusion_layer
    want = numpy_views_gd(run.theta0, X, y, dims, m, L, Lf, "linear", "mse", cfg.train.lr,
                          cfg.train.steps, weights)
    res = train_fusion([cfg], [run])[0]
    np.testing.assert_allclose(res["theta"], want, rtol=1e-9, atol=1e-12)
    # total weight of modality r: its coefficients in the predictor, projected on ones / |1|^2
    mix = keys.get("method.mix", [1.0, 1.0]) if method == "alternating" else [1.0, 1.0]
    cols = np.concatenate([[0], np.cumsum(dims)])
    for r in range(2):
        coef = np.array([outputs_of(want, np.eye(5)[[k]], dims, m, L, Lf, "linear")[0]
                         for k in range(cols[r], cols[r + 1])])
        assert res["trace"]["total_weight"][-1, r] == pytest.approx(
            mix[r] * coef.sum() / dims[r], rel=1e-9, abs=1e-12)


def test_alternating_is_refused_where_the_output_is_not_a_sum_over_modalities():
    for arch in ("early", "deep"):
        with pytest.raises(simcomp.ConfigError) as err:
            simcomp.build_config(overrides={**BASE, **ARCHS[arch], "method.name": "alternating"})
        text = str(err.value)
        assert "method.name = 'alternating'" in text and "model.architecture" in text
        assert "'linear'" in text
    # late fusion (fused at the last layer) and linear networks take it
    simcomp.build_config(overrides={**BASE, "method.name": "alternating"})
    simcomp.build_config(overrides={**BASE, **ARCHS["deep"], "model.activation": "linear",
                                    "method.name": "alternating"})
