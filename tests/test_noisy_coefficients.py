"""The vectorised loss coefficients of the noise-aware dynamics against the scalar code.

``simcomp.theory.coefficients.loss_coefficients`` computes
-omega y sigmoid(-y f) with its own vector exponential; the scalar code
(``noisy_dynamics._sigmoid_neg``, the C library's exp) is the reference:
within 4 ulp over the whole range of y f (both branches of the sigmoid,
down to the subnormals and 0), exactly equal on 0, +-inf, nan and values
past the underflow.
"""

import numpy as np
import pytest
from numba import njit

from simcomp.theory.coefficients import WIDTH, loss_coefficients
from simcomp.theory.noisy_dynamics import _sigmoid_neg


@njit(error_model="numpy")
def vector(y, f, omega):
    out = np.full(y.size, 7.0)
    loss_coefficients(out, y, f, omega, y.size - y.size % WIDTH)
    return out


@njit(error_model="numpy")
def scalar(y, f, omega):
    out = np.empty(y.size)
    for k in range(y.size):
        out[k] = -omega[k] * y[k] * _sigmoid_neg(y[k] * f[k])
    return out


def ulps(a, b):
    tiny = np.finfo(float).smallest_subnormal
    return np.abs(a - b) / np.maximum(np.spacing(np.abs(b)), tiny)


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_within_four_ulp_of_the_scalar_code(side):
    rng = np.random.default_rng(5)
    n = 400_000
    mag = np.concatenate([rng.exponential(3.0, n // 2), rng.uniform(0.0, 760.0, n // 2)])
    y = rng.choice([-1.0, 1.0], n)
    f = side * y * mag  # y f = side |y f|: one branch of the sigmoid at a time
    omega = rng.uniform(0.5, 2.0, n) / n
    got, want = vector(y, f, omega), scalar(y, f, omega)
    assert ulps(got, want).max() <= 4.0
    if side > 0:  # e / (1 + e) down to the subnormals: the exponential is really exercised
        assert (want != 0).sum() > n // 4 and (np.abs(want) < 1e-300).any()


def test_special_values_exactly_as_the_scalar_code():
    f = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 745.0, -745.0,
                  709.0, -709.0, 36.0, -36.0, 800.0, -800.0, 1e300])
    y = np.ones(f.size)
    y[8:] = -1.0
    omega = np.full(f.size, 0.25)
    got, want = vector(y, f, omega), scalar(y, f, omega)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])


def test_only_whole_vectors_are_written():
    n = 2 * WIDTH + 3
    out = vector(np.ones(n), np.linspace(-3, 3, n), np.ones(n))
    assert np.all(out[2 * WIDTH:] == 7.0) and np.all(out[: 2 * WIDTH] != 7.0)
