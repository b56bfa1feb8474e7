"""The vector drive of the noise-aware dynamics (simcomp.theory.drive) against NumPy.

One neuron's update in the diagonal limit: the element-wise update of its
noise pre-activations must be exactly NumPy's (the same IEEE operations), the
drive exactly a NumPy emulation of its fixed order (32 interleaved partial
sums, a fixed tree, then the samples past the last multiple of 32 in index
order) -- both computed here, on this host -- and within rounding of a plain
sum, for n with no full block, whole blocks and a tail; nan and inf propagate.
"""

import numpy as np
import pytest

from simcomp.theory import drive
from simcomp.theory.noisy_dynamics import _drive_and_update


def emulate(nu, dact, coef, b, diag, eta):
    """(new nu, drive) in the documented order, with NumPy's element-wise operations."""
    g = coef * dact
    new_nu = nu - eta * (g * diag)
    prods = g * b
    n = prods.size
    full = n - n % drive.LANES
    acc = np.zeros(drive.LANES)
    for row in prods[:full].reshape(-1, drive.LANES):
        acc = acc + row
    v = acc.reshape(drive.UNROLL, drive.WIDTH)
    tot = (v[0] + v[1]) + (v[2] + v[3])
    s = (((tot[0] + tot[1]) + (tot[2] + tot[3])) + ((tot[4] + tot[5]) + (tot[6] + tot[7])))
    for k in range(full, n):
        s = s + prods[k]
    return new_nu, float(s)


def draw(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.1, n), rng.normal(0, 1, n), rng.normal(0, 1e-3, n),
            rng.normal(0, 2, n), rng.random(n) + 0.5)


@pytest.mark.parametrize("n", [0, 5, 31, 32, 33, 64, 517])
def test_drive_is_numpy_in_its_fixed_order(n):
    nu, dact, coef, b, diag = draw(n, n)
    eta = 0.7
    want_nu, want = emulate(nu, dact, coef, b, diag, eta)
    got_nu = nu.copy()
    got = _drive_and_update(got_nu, dact, coef, b, diag, eta)
    np.testing.assert_array_equal(got_nu, want_nu)
    assert got == want
    plain = float(np.sum((coef * dact) * b, dtype=np.longdouble))
    assert abs(got - plain) <= 1e-13 * max(np.abs(coef * dact * b).sum(), 1e-300)


def test_drive_lanes_differ_from_one_running_sum_only_by_rounding():
    # a sum whose index-order rounding differs from the lanes' (the order is really changed)
    n = 4096
    nu, dact, coef, b, diag = draw(n, 11)
    coef[::7] *= 1e6
    got = _drive_and_update(nu.copy(), dact, coef, b, diag, 0.1)
    running = 0.0
    for p in (coef * dact) * b:
        running += p
    assert got == emulate(nu, dact, coef, b, diag, 0.1)[1]
    assert got != running
    assert abs(got - running) <= 1e-12 * np.abs(coef * dact * b).sum()


def test_non_finite_values_propagate():
    n = 70
    nu, dact, coef, b, diag = draw(n, 3)
    coef[3], coef[40], dact[66] = np.inf, np.nan, np.inf
    want_nu, want = emulate(nu, dact, coef, b, diag, 0.5)
    got_nu = nu.copy()
    got = _drive_and_update(got_nu, dact, coef, b, diag, 0.5)
    np.testing.assert_array_equal(got_nu, want_nu)  # nan compares equal in this check
    assert np.isnan(got) and np.isnan(want)
