"""The closed forms of simcomp.theory.fusion."""

import math

import numpy as np

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp.theory.fusion import (depth_ratio, early_fusion_ratio, late_fusion_ratio,
                                   misattribution, predicted_half_steps)

ratios = st.floats(1.0, 4.0)
rhos = st.floats(-0.9, 0.9)


@settings(deadline=None, max_examples=30)
@given(r=ratios, rho=rhos, u0=st.sampled_from([1e-12, 1e-6, 1e-3]))
def test_depth_formula_reduces_to_the_two_layer_ratio(r, rho, u0):
    # L = L_f = 2: I = ln(1/u0) / w_a and the lag gives 1 + (r^2 - 1) / (1 - rho^2)
    if r * r + rho * r <= 1.0 + rho * r:  # w_a > w_b is the formula's regime (A first)
        return
    assert depth_ratio(r, rho, 2, 2, u0) == pytest.approx(late_fusion_ratio(r, rho), rel=1e-6)


def test_published_values():
    assert late_fusion_ratio(2.0, 0.0) == pytest.approx(4.0)
    assert late_fusion_ratio(3.0, 0.9) == pytest.approx(1 + 8 / 0.19)
    assert early_fusion_ratio(3.0, 0.5) == 1.0
    assert misattribution(2.0, -0.5) == pytest.approx(-0.25)
    assert depth_ratio(2.0, 0.3, 6, 1, 0.1) == 1.0


def test_later_fusion_means_a_longer_unimodal_phase():
    values = [depth_ratio(2.0, 0.45, 6, lf, 0.1) for lf in (1, 2, 3, 4)]
    assert values == sorted(values) and values[-1] > values[0]


@pytest.mark.parametrize("rho", [1.0, -1.0, 1.5])
def test_correlation_out_of_range_is_refused(rho):
    with pytest.raises(ValueError, match="correlation"):
        late_fusion_ratio(2.0, rho)


def test_predicted_half_steps_flow_limit():
    # With a tiny learning rate the discrete rates become the flow rates, and the
    # ratio of the predicted half steps approaches the closed form as u0 -> 0.
    pred = predicted_half_steps(["A", "B"], [2.0, 1.0], 0.3, 1e-4, "late_fusion", 2, 2,
                                [1e-200, 1e-200], 1e-100)
    t = pred["predicted_half_step"]
    assert t["B"] / t["A"] == pytest.approx(late_fusion_ratio(2.0, 0.3), rel=0.01)
    # A's half step in flow time: ln(1/u0) / (2 g_A), g_A = 4 + 0.6
    assert t["A"] * 1e-4 == pytest.approx(math.log(1e200) / (2 * 4.6), rel=0.01)


def test_no_formula_for_nonlinear_or_fixed_heads():
    for kwargs in ({"activation": "relu"}, {"head": "fixed"}):
        pred = predicted_half_steps(["A", "B"], [2.0, 1.0], 0.3, 0.04, "late_fusion", 2, 2,
                                    [1e-24, 1e-24], 1e-12, **kwargs)
        assert pred["predicted_half_step"] == {"A": None, "B": None}
        assert pred["ratio"] is None



@pytest.mark.parametrize("r, rho, depth, lf, u0", [
    (1.0, 0.5, 4, 3, 1e-3),      # equal variances: no lag (was 0.0 ** negative)
    (2.0, 0.5, 64, 32, 1e-12),   # u0^(2 - L_f) beyond the float range (was OverflowError)
    (2.0, 0.5, 64, 64, 1e-12),
])
def test_depth_ratio_never_raises_on_valid_inputs(r, rho, depth, lf, u0):
    with np.errstate(all="ignore"):
        ratio = depth_ratio(r, rho, depth, lf, u0)
    assert ratio >= 1.0 or math.isnan(ratio)


def test_equal_variances_have_no_lag_at_any_depth():
    assert depth_ratio(1.0, 0.3, 5, 3, 1e-2) == pytest.approx(1.0)


def test_out_of_range_deep_prediction_is_none_not_inf():
    from simcomp.theory.fusion import predicted_half_steps

    with np.errstate(all="ignore"):
        pred = predicted_half_steps(["A", "B"], [2.0, 1.0], 0.5, 0.04, "deep_fusion", 64, 64,
                                    [1e-24, 1e-24], 1e-12)
    for value in list(pred["predicted_half_step"].values()) + [pred["ratio"]]:
        assert value is None or math.isfinite(value)
    assert pred["formula"] is not None
