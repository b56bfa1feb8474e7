"""The lane sums of simcomp.kernels.lanes against their documented order (exact fma emulated
with fractions), and pmr (their user) against the NumPy reference on blocks whose sample
counts are not multiples of the lane width."""

from fractions import Fraction

import numpy as np
import pytest
from numba import njit

import reference_methods as ref
from simcomp import kernels as kern
from simcomp.kernels import make_rule
from simcomp.kernels.lanes import LANES, _lane_dot, _lane_sum
from test_kernels import signal_problem


@njit
def _dot(a, a_off, b, b_off, count):
    return _lane_dot(a, a_off, b, b_off, count)


@njit
def _sum(a, a_off, count):
    return _lane_sum(a, a_off, count)


def _fma(x, y, z):
    """x y + z rounded once (Fraction -> float rounds to nearest)."""
    return float(Fraction(x) * Fraction(y) + Fraction(z))


def _lanes_then_tree(lanes):
    s4 = [lanes[i] + lanes[i + 4] for i in range(4)]
    s2 = [s4[i] + s4[i + 2] for i in range(2)]
    return s2[0] + s2[1]


def _expected_dot(a, b, count):
    lanes = [0.0] * LANES
    for g in range(count):
        for lane in range(LANES):
            lanes[lane] = _fma(a[g * LANES + lane], b[g * LANES + lane], lanes[lane])
    return _lanes_then_tree(lanes)


def _expected_sum(a, count):
    lanes = [0.0] * LANES
    for g in range(count):
        for lane in range(LANES):
            lanes[lane] = lanes[lane] + float(a[g * LANES + lane])
    return _lanes_then_tree(lanes)


@pytest.mark.parametrize("count", [0, 1, 3, 16])
def test_lane_sums_follow_their_documented_order_bit_for_bit(count):
    rng = np.random.default_rng(count)
    # magnitudes over many binades, so that a different order or a separate rounding of the
    # product would show in the last bits
    a = rng.standard_normal(8 * count + 11) * 10.0 ** rng.integers(-8, 8, 8 * count + 11)
    b = rng.standard_normal(8 * count + 13) * 10.0 ** rng.integers(-8, 8, 8 * count + 13)
    for a_off, b_off in ((0, 0), (3, 5)):
        got = _dot(a, a_off, b, b_off, count)
        assert got == _expected_dot(a[a_off:], b[b_off:], count)
        assert _sum(a, a_off, count) == _expected_sum(a[a_off:], count)
    if count:
        np.testing.assert_allclose(_dot(a, 0, b, 0, count), a[:8 * count] @ b[:8 * count],
                                   rtol=1e-12, atol=1e-12 * np.abs(a * b[:a.size]).sum())
    else:
        assert _dot(a, 0, b, 0, 0) == 0.0 and _sum(a, 0, 0) == 0.0


def test_lane_sums_refuse_other_types():
    with pytest.raises(Exception, match="(?i)lane_dot|typing"):
        _dot(np.ones(8, np.float32), 0, np.ones(8, np.float32), 0, 1)


@pytest.mark.parametrize("kind", [0, 1])
def test_pmr_kernel_equals_the_reference_on_partial_lane_groups(kind):
    """n = 139: a whole block and one of 11 samples (one lane group and a tail of 3), with
    unequal sample weights, against the reference trainer to 1e-10 (the lane sums' order
    differs from the reference's, so agreement is to rounding)."""
    K, dims, n = 2, (5, 9), 139
    P = signal_problem(3, kind, dims=dims, m=3, n=n, w0=0.3)
    w = np.random.default_rng(1).random(n) + 0.5
    P["omega"] = w / w.sum()
    params = {"alpha": 0.8, "momentum": 0.3, "proto_every": 2}
    X = [P["X"][r, :, :d] for r, d in enumerate(dims)]
    W0 = [P["W"][r, :, :, :d] for r, d in enumerate(dims)]
    form = ("symmetric", "class_banks")[kind]
    res = ref.train(X, P["y"], P["omega"], W0, form=form, eta=0.8, steps=6, method="pmr",
                    params=params)
    rule = make_rule("pmr", K, shape=P["W"].shape[1:3] + (n, P["W"].shape[3]), **params)
    W = P["W"].copy()
    status, _, _ = kern.gd_segment(P["X"], P["dims"], P["y"], P["omega"], W, kind, 3.0, 1.0,
                                   0.8, P["signal"], P["beta"], 100.0,
                                   -np.ones(W.shape[:2], np.int64), 0, 6, 0.0, False,
                                   np.zeros_like(W), rule=rule)
    assert status == kern.STATUS_OK
    stats = rule.method_stats()
    assert np.all(stats["method_scale"] >= 0) and np.any(stats["method_scale"] > 0)  # pulled
    for r, d in enumerate(dims):
        scale = np.abs(res["W"][r]).max()
        np.testing.assert_allclose(W[r, :, :, :d], res["W"][r], rtol=1e-10, atol=1e-10 * scale)
    for key in ("score", "ratio", "scale"):
        np.testing.assert_allclose(stats[f"method_{key}"], res[key][-1], rtol=1e-10, atol=1e-14,
                                   equal_nan=True)
