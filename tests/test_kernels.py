"""Tests of the compiled kernels against finite differences and a NumPy reference."""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simcomp import kernels as kern
from simcomp.kernels.gd import _gd_serial
from simcomp.kernels.units import _exp_nonpos

import reference as ref  # tests/ is on sys.path under pytest's default import mode

KINDS = (0, 1, 2)
KIND_NAMES = {0: "symmetric", 1: "banks-srelu", 2: "banks-relu"}

# Tolerances relative to the scale (max |.|) of the compared array. float64
# results agree with the reference to rounding (observed <= 2e-15). float32
# kernels are compared with the float64 reference evaluated on the same
# float32 inputs; observed errors are <= 2e-7, so 1e-5 leaves a wide margin
# while still catching any real mistake.
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


# --------------------------------------------------------------------------
# Problem builders
# --------------------------------------------------------------------------


def n_banks(kind):
    return 1 if kind == 0 else 2


def random_problem(seed, kind, dims, m, n, rho=1.0, dtype=np.float64, spread=(0.1, 4.0)):
    """Gaussian inputs and weights whose pre-activations cover all srelu pieces.

    Each neuron gets its own scale, log-uniform in ``spread`` times rho, so
    the pre-activations of one problem are negative, small (polynomial
    piece), around rho and well beyond it (linear piece).
    """
    rng = np.random.default_rng(seed)
    K, D, B = len(dims), max(dims), n_banks(kind)
    X = np.zeros((K, n, D))
    W = np.zeros((K, B, m, D))
    for r, d in enumerate(dims):
        X[r, :, :d] = rng.standard_normal((n, d))
        scale = rho * np.exp(rng.uniform(np.log(spread[0]), np.log(spread[1]), (B, m, 1)))
        W[r, :, :, :d] = scale * rng.standard_normal((B, m, d)) / np.sqrt(d)
    y = rng.choice([-1.0, 1.0], n)
    omega = rng.uniform(0.5, 1.5, n)
    omega /= omega.sum()
    return (X.astype(dtype), np.array(dims, np.int64), y.astype(dtype), omega.astype(dtype),
            W.astype(dtype))


def signal_problem(seed, kind, dims=(5, 9), m=3, n=40, noise=0.1, w0=0.1, dtype=np.float64):
    """Small version of docs/model.md section 1's data: signal on coordinate 0, Gaussian noise.

    Modality r has beta = (2, 1, 1.5)[r] and presence probability
    p = (0.8, 1, 0.9)[r].
    """
    rng = np.random.default_rng(seed)
    K, D, B = len(dims), max(dims), n_banks(kind)
    beta = (2.0, 1.0, 1.5)[:K]
    p = (0.8, 1.0, 0.9)[:K]
    y = rng.choice([-1.0, 1.0], n)
    X = np.zeros((K, n, D))
    W = np.zeros((K, B, m, D))
    for r, d in enumerate(dims):
        s = rng.random(n) < p[r]
        X[r, :, :d] = noise * rng.standard_normal((n, d))
        X[r, :, 0] += y * beta[r] * s
        W[r, :, :, :d] = w0 * rng.standard_normal((B, m, d))
    signal = np.zeros((K, D))
    signal[:, 0] = 1.0
    return dict(X=X.astype(dtype), dims=np.array(dims, np.int64), y=y.astype(dtype),
                omega=np.full(n, 1.0 / n, dtype), W=W.astype(dtype), signal=signal.astype(dtype),
                beta=np.array(beta, np.float64))


# Learning rates and thresholds giving learned steps inside 20 steps for some
# banks and none for others (checked by test_gd_problem_has_learned_steps).
GD_SETTINGS = {0: (2.0, 1.0), 1: (2.0, 1.0), 2: (1.0, 1.0)}


def run_gd(P, kind, eta, threshold, n_steps, t_start=0, stop_loss=0.0, parallel=False,
           learned=None, q=3.0, rho=1.0):
    """Run the kernel on copies; return (status, t_stop, loss, W, learned, grad)."""
    W = P["W"].copy()
    if learned is None:
        learned = -np.ones((W.shape[0], W.shape[1]), np.int64)
    learned = learned.copy()
    g = np.zeros_like(W)
    status, t_stop, last = kern.gd_segment(
        P["X"], P["dims"], P["y"], P["omega"], W, kind, q, rho, eta, P["signal"], P["beta"],
        threshold, learned, t_start, n_steps, stop_loss, parallel, g)
    return status, t_stop, last, W, learned, g


def run_ref_gd(P, kind, eta, threshold, n_steps, t_start=0, stop_loss=0.0, q=3.0, rho=1.0):
    learned = -np.ones((P["W"].shape[0], P["W"].shape[1]), np.int64)
    return ref.gd_segment(P["X"], P["dims"], P["y"], P["omega"], P["W"], kind, q, rho, eta,
                          P["signal"], P["beta"], threshold, learned, t_start, n_steps, stop_loss)


def kernel_loss_grad(X, dims, y, omega, W, kind, q, rho, parallel=False):
    g = np.zeros_like(W)
    fn = kern.loss_and_grad_parallel if parallel else kern.loss_and_grad
    return fn(X, dims, y, omega, W, kind, q, rho, g), g


def assert_close(actual, desired, rtol, what):
    """Elementwise |a - d| <= rtol * max|d| (tolerance relative to the array's scale)."""
    actual = np.asarray(actual, np.float64)
    desired = np.asarray(desired, np.float64)
    scale = max(np.max(np.abs(desired)), 1e-300)
    err = np.max(np.abs(actual - desired))
    assert err <= rtol * scale, f"{what}: max error {err:.3e} > {rtol:.1e} * scale {scale:.3e}"


# --------------------------------------------------------------------------
# Gradients against finite differences (property based)
# --------------------------------------------------------------------------


@st.composite
def fd_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    K = draw(st.integers(1, 3))
    dims = draw(st.lists(st.integers(1, 6), min_size=K, max_size=K))
    m = draw(st.integers(1, 3))
    n = draw(st.integers(1, 8))
    q = draw(st.one_of(st.sampled_from([2.0, 3.0, 4.0, 5.0]),
                       st.floats(2.0, 5.0, allow_nan=False)))
    rho = draw(st.floats(0.2, 2.0, allow_nan=False))
    seed = draw(st.integers(0, 2**32 - 1))
    return kind, tuple(dims), m, n, q, rho, seed


@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(fd_cases())
def test_gradient_matches_finite_differences(case):
    kind, dims, m, n, q, rho, seed = case
    X, dims_a, y, omega, W = random_problem(seed, kind, dims, m, n, rho=rho)
    Z = np.concatenate([z.ravel() for z in ref.preactivations(X, dims_a, W)])
    if kind == 2:
        # Central differences are meaningless across the ReLU kink.
        assume(np.min(np.abs(Z)) > 1e-4)
    loss, g = kernel_loss_grad(X, dims_a, y, omega, W, kind, q, rho)
    h = 1e-6
    fd = np.zeros_like(W)
    for r, d in enumerate(dims):
        for idx in np.ndindex(W.shape[1], W.shape[2], d):
            Wp = W.copy()
            Wm = W.copy()
            Wp[(r,) + idx] += h
            Wm[(r,) + idx] -= h
            lp, _ = kernel_loss_grad(X, dims_a, y, omega, Wp, kind, q, rho)
            lm, _ = kernel_loss_grad(X, dims_a, y, omega, Wm, kind, q, rho)
            fd[(r,) + idx] = (lp - lm) / (2 * h)
    scale = np.max(np.abs(g))
    # Rounding of the loss differences: about eps * L / h, L = O(1) here.
    floor = 100 * np.finfo(np.float64).eps * max(abs(loss), 1.0) / h
    err = np.abs(fd - g)
    assert np.max(err) <= 1e-5 * scale + floor, (np.max(err), scale)
    assert np.mean(err) <= 1e-6 * scale + floor / 10, (np.mean(err), scale)
    for r, d in enumerate(dims):
        assert not np.any(g[r, :, :, d:]), "gradient must be zero in padded columns"
    assert np.isfinite(loss)


def test_random_problem_covers_all_srelu_pieces():
    """The reference-comparison problems exercise every piece of srelu."""
    for kind in KINDS:
        X, dims, y, omega, W = random_problem(1, kind, (7, 3, 13), 3, 300, rho=0.7)
        Z = np.concatenate([z.ravel() for z in ref.preactivations(X, dims, W)])
        rho = 0.7
        pieces = [Z <= 0, (Z > 0) & (Z <= rho / 4), np.abs(Z - rho) < 0.1 * rho, Z > 2 * rho]
        assert all(np.mean(p) > 0.01 for p in pieces), [np.mean(p) for p in pieces]


# --------------------------------------------------------------------------
# Kernels against the NumPy reference
# --------------------------------------------------------------------------

# (dims, m, n): unequal and odd dims (remainder of the unrolled k loop),
# neuron counts that are and are not multiples of 4, n spanning several blocks
# with a remainder of samples, and (float64 only, the layout does not depend
# on the dtype) an n with several blocks per chunk.
SHAPES = {"small": ((7, 3, 13), 3, 300), "default": ((128, 128), 8, 701),
          "multiblock": ((9,), 5, 4500)}
REFERENCE_CASES = [
    pytest.param(shape, kind, parallel, dtype,
                 id=f"{shape}-{KIND_NAMES[kind]}-{'parallel' if parallel else 'serial'}-"
                    f"{np.dtype(dtype).name}",
                 marks=[pytest.mark.slow] if dtype == np.float32 else [])
    for shape in SHAPES
    for kind in KINDS
    for parallel in (False, True)
    for dtype in ((np.float64, np.float32) if shape != "multiblock" else (np.float64,))
]


@pytest.mark.parametrize("shape, kind, parallel, dtype", REFERENCE_CASES)
def test_loss_grad_forward_match_reference(shape, kind, parallel, dtype):
    dims, m, n = SHAPES[shape]
    q, rho = (2.5, 0.7) if kind == 1 else (3.0, 0.7)
    X, dims_a, y, omega, W = random_problem(2, kind, dims, m, n, rho=rho, dtype=dtype)
    loss, g = kernel_loss_grad(X, dims_a, y, omega, W, kind, q, rho, parallel=parallel)
    assert g.dtype == dtype
    rtol = RTOL[dtype]
    assert loss == pytest.approx(ref.loss(X, dims_a, y, omega, W, kind, q, rho), rel=rtol)
    assert_close(g, ref.grad(X, dims_a, y, omega, W, kind, q, rho), rtol, "gradient")

    f = np.zeros(n, dtype)
    phi = np.zeros((n, len(dims)), dtype)
    kern.forward(X, dims_a, W, kind, q, rho, f, phi)
    f_ref, phi_ref = ref.forward(X, dims_a, W, kind, q, rho)
    assert_close(f, f_ref, rtol, "f")
    assert_close(phi, phi_ref, rtol, "phi")


def test_integer_q_fast_paths_match_pow():
    """q = 2..5 use multiplication; compare with the pow path just beside them."""
    X, dims, y, omega, W = random_problem(3, 1, (6, 4), 4, 50)
    for q in (2.0, 3.0, 4.0, 5.0):
        l_fast, g_fast = kernel_loss_grad(X, dims, y, omega, W, 1, q, 1.0)
        l_pow, g_pow = kernel_loss_grad(X, dims, y, omega, W, 1, q * (1 + 1e-13), 1.0)
        assert l_fast == pytest.approx(l_pow, rel=1e-11)
        assert_close(g_fast, g_pow, 1e-11, f"q={q}")


def test_alignments_match_reference():
    for kind in KINDS:
        P = signal_problem(4, kind, dims=(5, 9, 2))
        W = P["W"]
        A = kern.alignments(W, P["signal"])
        assert A.shape == W.shape[:3]
        assert_close(A, ref.alignments(W, P["signal"]), 1e-14, "alignments")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_gd_problem_has_learned_steps(kind):
    """Guard for the next test: some banks are learned inside 20 steps, some not."""
    P = signal_problem(0, kind)
    eta, thr = GD_SETTINGS[kind]
    *_, learned = run_ref_gd(P, kind, eta, thr, 20)
    assert np.any((learned > 0) & (learned < 20)), learned
    if kind != 2:
        assert np.any(learned < 0), learned


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)], ids=["f64", "f32"])
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_gd_segment_matches_reference(kind, parallel, dtype):
    P = signal_problem(0, kind, dtype=dtype)
    eta, thr = GD_SETTINGS[kind]
    status, t_stop, last, W, learned, _ = run_gd(P, kind, eta, thr, 20, t_start=7,
                                                 parallel=parallel)
    r_status, r_t, r_last, r_W, r_learned = run_ref_gd(P, kind, eta, thr, 20, t_start=7)
    assert (status, t_stop) == (r_status, r_t) == (kern.STATUS_OK, 27)
    np.testing.assert_array_equal(learned, r_learned)
    rtol = RTOL[dtype]
    assert last == pytest.approx(r_last, rel=rtol)
    assert_close(W, r_W, rtol, "W after 20 steps")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_gd_segments_compose(kind):
    """Two segments of 8 and 12 steps are bit-identical to one of 20."""
    P = signal_problem(0, kind)
    eta, thr = GD_SETTINGS[kind]
    s20 = run_gd(P, kind, eta, thr, 20)
    s8 = run_gd(P, kind, eta, thr, 8)
    P2 = dict(P, W=s8[3])
    s12 = run_gd(P2, kind, eta, thr, 12, t_start=8, learned=s8[4])
    assert s12[:3] == s20[:3]
    np.testing.assert_array_equal(s12[3], s20[3])
    np.testing.assert_array_equal(s12[4], s20[4])


# --------------------------------------------------------------------------
# Determinism of the parallel reduction
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_parallel_is_deterministic_and_equals_serial(kind):
    X, dims, y, omega, W = random_problem(5, kind, (128, 40), 8, 1500)
    l1, g1 = kernel_loss_grad(X, dims, y, omega, W, kind, 3.0, 1.0, parallel=True)
    l2, g2 = kernel_loss_grad(X, dims, y, omega, W, kind, 3.0, 1.0, parallel=True)
    ls, gs = kernel_loss_grad(X, dims, y, omega, W, kind, 3.0, 1.0, parallel=False)
    assert l1 == l2 and np.array_equal(g1, g2)
    # Same chunks added in the same order: bit-identical, not just close.
    assert l1 == ls and np.array_equal(g1, gs)
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        l3, g3 = kernel_loss_grad(X, dims, y, omega, W, kind, 3.0, 1.0, parallel=True)
    finally:
        numba.set_num_threads(saved)
    assert l3 == l1 and np.array_equal(g3, g1)


def test_gd_segment_parallel_equals_serial():
    P = signal_problem(6, 0, dims=(64, 30), m=8, n=600)
    ser = run_gd(P, 0, 2.0, 1.0, 15, parallel=False)
    par = run_gd(P, 0, 2.0, 1.0, 15, parallel=True)
    assert ser[:3] == par[:3]
    np.testing.assert_array_equal(ser[3], par[3])
    np.testing.assert_array_equal(ser[4], par[4])


def test_chunk_layout():
    for n in (0, 1, kern.BLOCK, kern.BLOCK + 1, 10 * kern.BLOCK, 1000 * kern.BLOCK + 3):
        nblocks, nchunks = kern.chunk_layout(n)
        assert nblocks == -(-n // kern.BLOCK)
        assert 1 <= nchunks <= kern.MAX_CHUNKS
        bounds = [c * nblocks // nchunks for c in range(nchunks + 1)]
        assert bounds[0] == 0 and bounds[-1] == nblocks
        assert all(b1 >= b0 for b0, b1 in zip(bounds, bounds[1:]))


# --------------------------------------------------------------------------
# Edge cases and guards
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_eta_zero_leaves_weights_unchanged(kind):
    P = signal_problem(0, kind)
    status, t_stop, _, W, _, g = run_gd(P, kind, 0.0, 1.0, 5, t_start=3)
    assert (status, t_stop) == (kern.STATUS_OK, 8)
    np.testing.assert_array_equal(W, P["W"])
    assert np.any(g)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_padding_is_never_read_and_stays_zero(kind):
    P = signal_problem(0, kind, dims=(5, 9, 2))
    eta, thr = GD_SETTINGS[kind]
    clean = run_gd(P, kind, eta, thr, 10)
    dirty_X = P["X"].copy()
    for r, d in enumerate(P["dims"]):
        dirty_X[r, :, d:] = np.nan
    dirty = run_gd(dict(P, X=dirty_X), kind, eta, thr, 10)
    assert clean[:3] == dirty[:3]
    np.testing.assert_array_equal(clean[3], dirty[3])
    for r, d in enumerate(P["dims"]):
        assert not np.any(dirty[3][r, :, :, d:]), "padded weights must stay zero"
        assert not np.any(dirty[5][r, :, :, d:]), "padded gradient must be zero"


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_stop_loss(parallel):
    kind = 0
    P = signal_problem(0, kind)
    eta, thr = GD_SETTINGS[kind]
    losses = [ref.loss(P["X"], P["dims"], P["y"], P["omega"],
                       run_ref_gd(P, kind, eta, thr, t)[3], kind, 3.0, 1.0) for t in range(20)]
    t_hit = 12
    stop = 0.5 * (losses[t_hit - 1] + losses[t_hit])
    assert losses[t_hit] < stop < min(losses[:t_hit])
    status, t_stop, last, W, _, _ = run_gd(P, kind, eta, thr, 20, t_start=100, stop_loss=stop,
                                           parallel=parallel)
    assert (status, t_stop) == (kern.STATUS_STOP_LOSS, 100 + t_hit)
    assert last == pytest.approx(losses[t_hit], rel=1e-12)
    # W is left at W(t_stop), not updated by the stopping step.
    assert_close(W, run_ref_gd(P, kind, eta, thr, t_hit)[3], 1e-11, "W at stop")


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_nonfinite_input_stops_at_first_step(bad, parallel):
    P = signal_problem(0, 0)
    P["X"][1, 3, 2] = bad
    status, t_stop, last, W, _, _ = run_gd(P, 0, 1.0, 1.0, 10, t_start=4, parallel=parallel)
    assert (status, t_stop) == (kern.STATUS_NONFINITE, 4)
    assert not np.isfinite(last)
    np.testing.assert_array_equal(W, P["W"])


@pytest.mark.parametrize("eta, x_scale, kinds", [
    (np.inf, 1.0, KINDS),
    # Gradients are bounded, so a finite rate overflows only when eta * |x|^2
    # does; the class-bank learners then simply fit the data (loss 0).
    (1e306, 1e3, (0,)),
])
def test_huge_learning_rate_reports_nonfinite(eta, x_scale, kinds):
    for kind in kinds:
        P = signal_problem(0, kind)
        P["X"] = P["X"] * x_scale
        status, t_stop, last, W, *_ = run_gd(P, kind, eta, 1.0, 50, t_start=2)
        assert (status, t_stop) == (kern.STATUS_NONFINITE, 3)
        assert not np.isfinite(last)
        with np.errstate(all="ignore"):
            assert run_ref_gd(P, kind, eta, 1.0, 50, t_start=2)[:2] == (status, t_stop)


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_loss_is_stable_for_huge_outputs(kind, dtype):
    """One sample, one neuron, f = +-1e4: loss ~ exp(-1e4) = 0 or 1e4 + tiny."""
    B = n_banks(kind)
    X = np.ones((1, 2, 1), dtype)
    y = np.array([1.0, 1.0], dtype)
    omega = np.array([0.25, 0.75], dtype)
    dims = np.array([1], np.int64)
    for big in (1e4, -1e4):
        W = np.zeros((1, B, 1, 1), dtype)
        if kind == 0 or big > 0:
            W[0, 0, 0, 0] = big
        else:
            W[0, 1, 0, 0] = -big  # f = -act(w) from the c = -1 bank
        f = np.zeros(2, dtype)
        phi = np.zeros((2, 1), dtype)
        kern.forward(X, dims, W, kind, 3.0, 1.0, f, phi)
        f_expected = big - np.sign(big) * (2.0 / 3.0) * (kind != 2)
        np.testing.assert_allclose(f, f_expected, rtol=1e-6)
        loss, g = kernel_loss_grad(X, dims, y, omega, W, kind, 3.0, 1.0)
        assert np.isfinite(loss) and np.all(np.isfinite(g))
        if big > 0:
            assert loss == 0.0 and not np.any(g)  # exp(-1e4) underflows
        else:
            # softplus(-f) = -f + log1p(exp(f)); dL/dw = -sum omega * c_b * x.
            assert loss == pytest.approx(float(-f_expected), rel=1e-7)
            expected = np.zeros_like(g)
            expected[0, 0 if kind == 0 else 1, 0, 0] = -1.0 if kind == 0 else 1.0
            np.testing.assert_allclose(g, expected, rtol=1e-7)


def test_zero_steps_checks_learned_at_t_start():
    P = signal_problem(0, 0, w0=1.0)
    status, t_stop, last, W, learned, _ = run_gd(P, 0, 1.0, 0.1, 0, t_start=5)
    assert (status, t_stop) == (kern.STATUS_OK, 5)
    assert np.isnan(last)
    np.testing.assert_array_equal(W, P["W"])
    lead = P["beta"] * kern.alignments(P["W"], P["signal"])[:, 0].max(axis=1)
    np.testing.assert_array_equal(learned[:, 0], np.where(lead >= 0.1, 5, -1))


def test_learned_entries_are_never_overwritten():
    kind = 1
    P = signal_problem(0, kind)
    eta, thr = GD_SETTINGS[kind]
    fresh = run_gd(P, kind, eta, thr, 20)[4]
    preset = np.array([[-1, 99], [-1, -1]], np.int64)
    kept = run_gd(P, kind, eta, thr, 20, learned=preset)[4]
    assert kept[0, 1] == 99
    assert kept[0, 0] == fresh[0, 0] and np.array_equal(kept[1], fresh[1])


def test_invalid_inputs_raise():
    X, dims, y, omega, W = random_problem(0, 1, (3, 2), 2, 5)
    g = np.zeros_like(W)
    with pytest.raises(ValueError):
        kern.loss_and_grad(X, dims, y, omega, W, 0, 3.0, 1.0, g)  # B = 2 with kind 0
    with pytest.raises(ValueError):
        kern.loss_and_grad(X, dims, y, omega, W, 7, 3.0, 1.0, g)
    with pytest.raises(ValueError):
        kern.loss_and_grad(X, np.array([3, 4]), y, omega, W, 1, 3.0, 1.0, g)  # dims > D
    with pytest.raises(ValueError):
        kern.loss_and_grad(X, dims, y, omega, W, 1, 1.5, 1.0, g)  # q < 2


# --------------------------------------------------------------------------
# The packed copies, the loss-free steps, the kernels' own exp
# --------------------------------------------------------------------------


def test_packed_samples_layout_use_and_checks():
    kind = 1
    P = signal_problem(2, kind, dims=(5, 9, 2), n=300)
    X = P["X"]
    K, n, D = X.shape
    Xf, Xb = kern.pack_samples(X)
    T = kern.tile_width(X.dtype)
    assert T == 16 and kern.tile_width(np.float32) == 32
    nblocks = -(-n // kern.BLOCK)
    assert Xf.shape == (K, nblocks, kern.BLOCK // T, D, T) and Xf.flags.c_contiguous
    assert Xb.shape == (K, nblocks, 1, kern.BLOCK, T) and Xb.flags.c_contiguous
    # Unpacked again, both copies are X with zero samples beyond n (and
    # zero coordinates beyond D in the backward copy).
    full = np.zeros((K, nblocks * kern.BLOCK, T))
    full[:, :n, :D] = X
    np.testing.assert_array_equal(
        Xf.transpose(0, 1, 2, 4, 3).reshape(K, nblocks * kern.BLOCK, D), full[:, :, :D])
    np.testing.assert_array_equal(
        Xb.transpose(0, 1, 3, 2, 4).reshape(K, nblocks * kern.BLOCK, T), full)

    args = (X, P["dims"], P["y"], P["omega"], P["W"], kind, 3.0, 1.0)
    g1, g2 = np.zeros_like(P["W"]), np.zeros_like(P["W"])
    assert kern.loss_and_grad(*args, g1) == kern.loss_and_grad(*args, g2, packed=(Xf, Xb))
    np.testing.assert_array_equal(g1, g2)
    f1, f2, p1, p2 = np.zeros(n), np.zeros(n), np.zeros((n, 3)), np.zeros((n, 3))
    kern.forward(X, P["dims"], P["W"], kind, 3.0, 1.0, f1, p1)
    kern.forward(X, P["dims"], P["W"], kind, 3.0, 1.0, f2, p2, packed=(Xf, Xb))
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)
    with pytest.raises(ValueError):  # packed copies of another X
        kern.loss_and_grad(*args, g1, packed=kern.pack_samples(X[:, :200]))
    with pytest.raises(ValueError):
        kern.forward(X, P["dims"], P["W"], kind, 3.0, 1.0, f1, p1, packed=(Xf[:2], Xb[:2]))
    with pytest.raises(ValueError):  # in/out arrays must be C-contiguous
        kern.loss_and_grad(*args[:4], np.asfortranarray(P["W"]), kind, 3.0, 1.0, g1)
    forward_only = kern.pack_samples(X, backward=False)
    assert forward_only[1] is None and np.array_equal(forward_only[0], Xf)
    kern.forward(X, P["dims"], P["W"], kind, 3.0, 1.0, f2, p2, packed=forward_only)
    np.testing.assert_array_equal(f1, f2)
    with pytest.raises(ValueError):  # the gradient needs the backward copy
        kern.loss_and_grad(*args, g1, packed=forward_only)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("n_steps", [1, 6])
def test_infinite_loss_with_finite_gradient_stops(n_steps, parallel):
    """f = -inf on a y = +1 sample: the loss is inf, the gradient finite.

    With n_steps = 6 the first step is one whose loss is not otherwise
    evaluated, so this checks the bound that stands in for it (module notes).
    """
    kind = 2
    X = np.full((1, 4, 1), 1.0)
    W = np.zeros((1, 2, 2, 1))
    W[0, 1, :, 0] = 1e308  # bank c = -1: f = -(1e308 + 1e308) = -inf
    P = dict(X=X, dims=np.array([1]), y=np.ones(4), omega=np.full(4, 0.25), W=W,
             signal=np.ones((1, 1)), beta=np.ones(1))
    g = np.zeros_like(W)
    loss = kern.loss_and_grad(X, P["dims"], P["y"], P["omega"], W, kind, 3.0, 1.0, g)
    assert loss == np.inf and np.all(np.isfinite(g))
    status, t_stop, last, W2, *_ = run_gd(P, kind, 1.0, 1.0, n_steps, t_start=3,
                                          parallel=parallel)
    assert (status, t_stop, last) == (kern.STATUS_NONFINITE, 3, np.inf)
    np.testing.assert_array_equal(W2, W)
    with np.errstate(all="ignore"):
        assert run_ref_gd(P, kind, 1.0, 1.0, n_steps, t_start=3)[:3] == (status, t_stop, last)


def test_scalar_types_do_not_add_compiled_versions():
    """Python and NumPy ints and floats for the scalar arguments share one compiled version."""
    P = signal_problem(0, 0)
    run_gd(P, 0, 2.0, 1.0, 2)
    before = len(_gd_serial.signatures)
    W, g, learned = P["W"].copy(), np.zeros_like(P["W"]), -np.ones((2, 1), np.int64)
    kern.gd_segment(P["X"], P["dims"], P["y"], P["omega"], W, np.int32(0), 3, np.float32(1),
                    2, P["signal"], P["beta"], np.float64(1), learned, np.int64(0), 2.0, 0,
                    np.bool_(False), g)
    assert len(_gd_serial.signatures) == before


def test_vectorisable_exp_matches_math_exp():
    """The kernels' own exp (x <= 0) is within 3 ulp of math.exp, 0 below its range, nan for nan."""
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.exponential(5.0, 200_000), -rng.uniform(0.0, 745.2, 200_000),
                        -rng.uniform(700.0, 760.0, 20_000),
                        [0.0, -0.0, -1e-300, -708.39, -708.4, -745.13, -745.14, -800.0, -np.inf]])
    ours = exp_nonpos_many(x)
    exact = np.exp(x)
    normal = exact >= np.finfo(np.float64).tiny
    ulps = np.abs(ours[normal] - exact[normal]) / np.spacing(exact[normal])
    assert ulps.max() <= 3.0, ulps.max()
    sub = ~normal
    assert np.all(np.abs(ours[sub] - exact[sub]) <= 4 * np.spacing(exact[sub])), "subnormal range"
    assert np.isnan(exp_nonpos_many(np.array([np.nan]))[0])


@numba.njit
def _exp_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = _exp_nonpos(x[i])


def exp_nonpos_many(x):
    out = np.empty_like(x)
    _exp_loop(x, out)
    return out
