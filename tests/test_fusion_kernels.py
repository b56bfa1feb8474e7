"""The fusion engine's compiled gradients against central finite differences and the
plain-NumPy reference, for every architecture x activation x loss."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp.kernels import fusion_net as fn
from simcomp.models.registry import ARCHITECTURE_MODULES, architecture

from reference_fusion import loss_grad

ACTS = ("linear", "relu", "srelu")
LOSSES = ("logistic", "mse")
SHAPES = {"late_fusion": (2, 0), "early_fusion": (2, 0), "deep_fusion": (4, 3)}


def _problem(arch, seed, dims, width, depth=None, lf=0):
    mod = architecture(arch)
    L, requested = SHAPES[arch] if depth is None else (depth, lf)
    net = mod.network(dims, width, L, requested)
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(net.n_params) * 0.8
    X = rng.standard_normal((9, sum(dims)))
    y = np.where(rng.standard_normal(9) > 0, 1.0, -1.0)
    return net, theta, X, y


def _kernel(net, theta, X, y, act, loss, q=3.0, rho=0.7):
    w = np.full(X.shape[0], 1.0 / X.shape[0])
    return fn.sample_gradient(theta, net.layout, net.concat, net.col0, X, y, w,
                              fn.LOSS_CODES[loss], fn.ACT_CODES[act], q, rho)


@pytest.mark.parametrize("arch", list(ARCHITECTURE_MODULES))
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss", LOSSES)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6), d0=st.integers(1, 3), d1=st.integers(1, 3),
       width=st.integers(1, 3))
def test_gradient_matches_finite_differences(arch, act, loss, seed, d0, d1, width):
    net, theta, X, y = _problem(arch, seed, [d0, d1], width)
    value, grad = _kernel(net, theta, X, y, act, loss)
    eps = 1e-6
    fd = np.empty_like(theta)
    for p in range(theta.size):
        e = np.zeros_like(theta)
        e[p] = eps
        fd[p] = (_kernel(net, theta + e, X, y, act, loss)[0]
                 - _kernel(net, theta - e, X, y, act, loss)[0]) / (2 * eps)
    # ReLU has a kink at 0: the pre-activations are continuous random draws, so one
    # within eps of it (which would spoil the difference) has probability ~1e-5.
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", list(ARCHITECTURE_MODULES))
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss", LOSSES)
def test_kernel_matches_numpy_reference(arch, act, loss):
    for seed, dims, width in ((0, [1, 1], 1), (1, [2, 3], 2), (2, [3, 1], 3)):
        net, theta, X, y = _problem(arch, seed, dims, width)
        value, grad = _kernel(net, theta, X, y, act, loss)
        ref_value, ref_grad = loss_grad(theta, X, y, dims, width, net.depth, net.fusion_layer,
                                        act, loss, q=3.0, rho=0.7)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("depth, lf", [(3, 1), (3, 2), (3, 3), (5, 2), (6, 4)])
def test_deep_shapes_match_reference(depth, lf):
    net, theta, X, y = _problem("deep_fusion", 3, [2, 1], 2, depth, lf)
    for act in ACTS:
        value, grad = _kernel(net, theta, X, y, act, "mse")
        ref_value, ref_grad = loss_grad(theta, X, y, [2, 1], 2, depth, lf, act, "mse", 3.0, 0.7)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("arch", list(ARCHITECTURE_MODULES))
def test_moment_route_equals_per_sample_for_linear_networks(arch):
    net, theta, X, _ = _problem(arch, 4, [1, 2], 2)
    y = X.sum(axis=1) + 0.3 * np.random.default_rng(5).standard_normal(X.shape[0])
    value, grad = _kernel(net, theta, X, y, "linear", "mse")
    n = X.shape[0]
    mvalue, mgrad = fn.moment_gradient(theta, net.layout, net.concat, net.col0, np.eye(3),
                                       X.T @ X / n, X.T @ y / n, y @ y / n, 0)
    np.testing.assert_allclose(mvalue, value, rtol=1e-12)
    np.testing.assert_allclose(mgrad, grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("depth", [2, 4])
def test_moment_route_equals_per_sample_for_relu_fused_at_the_end(depth):
    from simcomp.fusion_train import _relu_features, _relu_probes

    net = architecture("deep_fusion").network([1, 1], 3, depth, depth)
    rng = np.random.default_rng(6)
    theta = rng.standard_normal(net.n_params)
    X = rng.standard_normal((40, 2))
    y = X.sum(axis=1)
    value, grad = _kernel(net, theta, X, y, "relu", "mse")
    phi = _relu_features(X)
    mvalue, mgrad = fn.moment_gradient(theta, net.layout, net.concat, net.col0,
                                       _relu_probes([1, 1]), phi.T @ phi / 40, phi.T @ y / 40,
                                       y @ y / 40, 1)
    np.testing.assert_allclose(mvalue, value, rtol=1e-12)
    np.testing.assert_allclose(mgrad, grad, rtol=1e-10, atol=1e-14)
