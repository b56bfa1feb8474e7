"""Training methods on the fusion engine: lr_scale against a plain-NumPy GD loop; the
methods it does not run are refused with their name and the architecture."""

import numpy as np
import pytest

import simcomp
from simcomp.fusion_train import learning_rate_scale, prepare, train_fusion
from reference_fusion import loss_grad

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


@pytest.mark.parametrize("method", ["ogm", "aux", "alternating", "dropout", "umt"])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_other_methods_are_refused_naming_method_and_architecture(method, arch):
    with pytest.raises(simcomp.ConfigError) as err:
        simcomp.build_config(overrides={**BASE, **ARCHS[arch], "method.name": method})
    text = str(err.value)
    assert f"method.name = {method!r}" in text and "model.architecture" in text
    assert "'lr_scale'" in text
