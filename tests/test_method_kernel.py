"""The compiled method dynamics against the Python implementation it replaced.

``tests/reference_method_dynamics.py`` is the vectorised NumPy version of
``method_dynamics`` (a Python loop over the steps); the compiled kernel must
give the same trajectory, learned steps and per-step statistics to rounding,
for every method, both learners (and ReLU banks), K = 2 and 3.
"""

import numpy as np
import pytest

import test_methods_more_b as more_b
from reference_method_dynamics import ref_method_dynamics
from simcomp.theory import population_patterns
from simcomp.theory.mitigation import _ALL, method_dynamics

PARAMS = {
    "none": {},
    "lr_scale": {"lr_scale": [1.7, 0.4, 1.1]},
    "ogm": {"alpha": 0.5, "start": 3, "stop": 30},
    "ogm_ge": {"alpha": 0.9},
    "agm": {"alpha": 1.0},
    "aux": {"fused_weight": 0.8, "aux_weight": [1.0, 2.0, 0.5]},
    "alternating": {},
    "ume": {},
    "mmpareto": {},
    "umt": {"distill_weight": 1.5},
    "dropout": {"drop": [0.3, 0.5, 0.1], "rescale": True},
    "ogm_boost": {"boost": 2.5, "start": 3, "stop": 40},
    "pmr": {"alpha": 0.9, "momentum": 0.3, "proto_every": 2, "start": 2},
    "inforeg": {"prox_weight": 0.3, "every": 5, "trace_window": 3, "threshold": -1.0,
                "gap_scale": 10.0, "aux_weight": [1.0, 0.5, 2.0]},
    "opm": {"q_base": 0.6, "alpha": 0.8, "execute_prob": 0.7, "start": 2},
    # checked against tests/reference_methods_more_b.py (test_methods_more_b.check_dynamics)
    "reconboost": {"boost_steps": 3, "correct_steps": 2, "boost_weight": 5.0,
                   "ensemble_weight": 1.5},
    "greedy": {"epsilon": 0.002, "window": 3, "start": 1},
    "relearning": {"reset_scale": 3.0, "every": 6, "count": 2},
    "gblending": {"every": 8, "probe_steps": 3},
}
FORMS = [("symmetric", "srelu"), ("class_banks", "srelu"), ("class_banks", "relu")]
STEPS = 60


def case(learner, K, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    B = 1 if learner == "symmetric" else 2
    beta = np.array([2.0, 1.2, 1.5][:K])
    y, s, w = population_patterns(np.array([0.8, 1.0, 0.6][:K]))
    a0 = scale * rng.standard_normal((K, B, 4))
    teacher = 1.5 * np.abs(rng.standard_normal((K, B, 4)))
    return a0, beta, y, s, w, teacher


def params_for(method, K):
    return {k: (v[:K] if isinstance(v, list) else v) for k, v in PARAMS[method].items()}


def test_every_method_is_covered():
    assert set(PARAMS) == set(_ALL)


@pytest.mark.parametrize("method", list(PARAMS))
@pytest.mark.parametrize("learner, activation", FORMS)
@pytest.mark.parametrize("K", [2, 3])
def test_compiled_method_dynamics_equals_the_python_reference(method, learner, activation, K):
    if method in more_b.rb.METHODS:  # their own reference recursion (held-out weights too)
        more_b.check_dynamics(method, learner, activation, K, params_for(method, K))
        return
    a0, beta, y, s, w, teacher = case(learner, K, seed=K)
    kw = dict(method=method, params=params_for(method, K), learner=learner,
              activation=activation, threshold=0.9, record_every=7,
              teacher_alignment=teacher if method == "umt" else None)
    got = method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 0.8, STEPS, **kw)
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref_method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 0.8, STEPS, **kw)
    assert got.method == want.method
    np.testing.assert_array_equal(got.steps, want.steps)
    np.testing.assert_allclose(got.alignment, want.alignment, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got.final_alignment, want.final_alignment, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got.leading_alignment, want.leading_alignment, rtol=1e-12,
                               atol=1e-13)
    np.testing.assert_array_equal(got.learned_step, want.learned_step)
    np.testing.assert_array_equal(got.learned_step_bank, want.learned_step_bank)
    for key in ("score", "ratio", "scale", "cosine"):
        g, r = getattr(got, key), getattr(want, key)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=key)
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13, err_msg=key)
    # the case is not trivial: the alignments moved and (for most) something was learned
    assert np.abs(got.final_alignment - a0).max() > 1e-3


@pytest.mark.parametrize("learner, activation", FORMS)
def test_statistics_are_recorded_where_the_method_defines_them(learner, activation):
    a0, beta, y, s, w, _ = case(learner, 2)
    args = (a0, beta, y, s, w, 3.0, 1.0, 0.8, 20)
    ogm = method_dynamics(*args, method="ogm", params={"alpha": 0.5, "start": 3},
                          learner=learner, activation=activation)
    assert np.isnan(ogm.cosine).all() and np.isfinite(ogm.score).all()
    assert (ogm.scale[:3] == 1.0).all()  # before the window opens k = 1
    mmp = method_dynamics(*args, method="mmpareto", learner=learner, activation=activation)
    assert np.isfinite(mmp.cosine).all() and (mmp.scale >= 1.5).all()
    assert np.isnan(mmp.score).all()


def test_diverging_umt_overflows_as_the_reference_does():
    a0, beta, y, s, w, teacher = case("symmetric", 2, seed=4)
    kw = dict(method="umt", params={"distill_weight": 400.0}, teacher_alignment=3 * teacher)
    got = method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 1.0, 120, **kw)
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref_method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 1.0, 120, **kw)
    assert not np.isfinite(want.final_alignment).all()
    np.testing.assert_array_equal(np.isfinite(got.alignment), np.isfinite(want.alignment))
    fin = np.isfinite(want.alignment)
    np.testing.assert_allclose(got.alignment[fin], want.alignment[fin], rtol=1e-10)


def test_bad_arguments_are_refused():
    a0, beta, y, s, w, _ = case("symmetric", 2)
    with pytest.raises(ValueError, match="umt needs teacher_alignment"):
        method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 1.0, 5, method="umt")
    with pytest.raises(ValueError, match="unknown method"):
        method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 1.0, 5, method="nope")
    with pytest.raises(ValueError, match="steps >= 0"):
        method_dynamics(a0, beta, y, s, w, 3.0, 1.0, 1.0, -1)
