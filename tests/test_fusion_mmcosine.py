"""Method mmcosine on the fusion engine (two-layer late fusion, trainable head): the compiled
forward/backward pass against central finite differences and a plain-NumPy reference, the
GD loop against a NumPy GD loop, the (a, u) recursion of docs/theory.md 15.10 against the
engine, and the refusals where the method is not defined."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simcomp
from simcomp.cli import main
from simcomp.fusion_result import cosine_prediction
from simcomp.fusion_train import half_steps, prepare, train_fusion
from simcomp.kernels import fusion_net as fn
from simcomp.models.registry import architecture
from simcomp.theory.fusion_cosine import cosine_dynamics, cosine_total_weights

from reference_fusion import cosine_loss_grad

ACTS = ("linear", "relu", "srelu")
BASE = {"model.head": "trainable", "train.mode": "joint", "method.name": "mmcosine",
        "model.width": 3, "data.n_train": 48, "train.steps": 60, "train.trace_every": 3,
        "model.init_scale": 0.5, "train.lr": 0.05, "method.scaling": 2.0,
        "data.modality.0.noise": 0.0, "data.modality.1.noise": 0.0,
        "data.modality.0.dim": 4, "data.modality.1.dim": 6}


def _problem(seed, dims, width, absent=False):
    net = architecture("late_fusion").network(dims, width, 2, 0)
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(net.n_params) * 0.8
    X = rng.standard_normal((7, sum(dims)))
    if absent:  # a sample without modality 0 (its encoding is 0 under ReLU/srelu)
        X[0, :dims[0]] = 0.0
    y = np.where(rng.standard_normal(7) > 0, 1.0, -1.0)
    w = rng.uniform(0.5, 1.5, 7) / 7
    return net, theta, X, y, w


def _kernel(net, theta, X, y, w, act, scale, q=3.0, rho=0.7):
    return fn.cosine_gradient(theta, net.layout, net.concat, net.col0, X, y, w, 0,
                              fn.ACT_CODES[act], scale, q, rho)


@pytest.mark.parametrize("act", ACTS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6), d0=st.integers(1, 3), d1=st.integers(1, 3),
       width=st.integers(1, 3), scale=st.floats(0.5, 20.0))
def test_gradient_matches_finite_differences(act, seed, d0, d1, width, scale):
    net, theta, X, y, w = _problem(seed, [d0, d1], width)
    _, grad, _ = _kernel(net, theta, X, y, w, act, scale)
    eps = 1e-6
    fd = np.empty_like(theta)
    for p in range(theta.size):
        e = np.zeros_like(theta)
        e[p] = eps
        fd[p] = (_kernel(net, theta + e, X, y, w, act, scale)[0]
                 - _kernel(net, theta - e, X, y, w, act, scale)[0]) / (2 * eps)
    # ReLU's kink and a ReLU encoding that is exactly 0 on a sample: the pre-activations are
    # continuous random draws, so one within eps of a kink has probability ~1e-5
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("seed, dims, width, absent", [
    (0, [1, 1], 1, False), (1, [2, 3], 2, True), (2, [3, 1, 2], 3, True), (3, [2, 2], 4, False)])
def test_kernel_matches_numpy_reference(act, seed, dims, width, absent):
    net, theta, X, y, w = _problem(seed, dims, width, absent)
    for scale in (1.0, 10.0, 15.0):
        value, grad, f = _kernel(net, theta, X, y, w, act, scale)
        ref_value, ref_grad, ref_f = cosine_loss_grad(theta, X, y, w, dims, width, scale, act,
                                                      3.0, 0.7)
        np.testing.assert_allclose(f, ref_f, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-13)
        assert np.all(np.abs(f) <= 2.0 * scale * len(dims) + 1e-12)  # cosines are bounded


def test_an_absent_modality_gives_no_gradient_and_a_zero_logit():
    net, theta, X, y, w = _problem(5, [2, 2], 3)
    X[:, :2] = 0.0  # modality 0 absent everywhere: h_0 = 0 under ReLU
    _, grad, f = _kernel(net, theta, X, y, w, "relu", 10.0)
    assert np.all(grad[:6] == 0.0)  # its encoder
    assert np.all(grad[net.head][:3] == 0.0)  # its head block
    assert np.any(grad[6:12] != 0.0)


def numpy_gd(run, act, scale, lr, steps, dims, width, q, rho):
    X, y, w = run.data[0], run.data[1], run.data[2]
    theta = run.theta0.copy()
    for _ in range(steps):
        theta = theta - lr * cosine_loss_grad(theta, X, y, w, dims, width, scale, act, q, rho)[1]
    return theta


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("K", [2, 3])
def test_gd_loop_matches_the_numpy_reference(act, K):
    over = {**BASE, "model.activation": act, "data.modality.0.noise": 0.1,
            "data.modality.1.noise": 0.1, "train.steps": 25, "train.trace_every": 5}
    if K == 3:
        over.update({"data.modality.2.dim": 5, "data.modality.2.beta": 1.5,
                     "data.modality.2.presence": 0.7})
    cfg = simcomp.build_config(overrides=over)
    run = prepare(cfg)
    assert run.route == "samples" and run.extra["views"] == ("cosine", 2.0)
    dims = [mod.dim for mod in cfg.data.modality]
    want = numpy_gd(run, act, 2.0, cfg.train.lr, cfg.train.steps, dims, 3, cfg.model.q,
                    cfg.model.rho)
    res = train_fusion([cfg], [run])[0]
    np.testing.assert_allclose(res["theta"], want, rtol=1e-10, atol=1e-13)
    # the recorded loss is the cosine network's
    ref = cosine_loss_grad(want, run.data[0], run.data[1], run.data[2], dims, 3, 2.0, act,
                           cfg.model.q, cfg.model.rho)[0]
    assert res["trace"]["loss"][-1] == pytest.approx(ref, rel=1e-10)
    # and the method is not plain training
    plain_over = {k: v for k, v in over.items() if k != "method.scaling"}
    plain = train_fusion([simcomp.build_config(overrides={**plain_over,
                                                          "method.name": "none"})])[0]
    assert np.max(np.abs(plain["theta"] - res["theta"])) > 1e-3


def test_scaling_is_a_setting_of_the_run_and_batches_keep_it():
    cfgs = [simcomp.build_config(overrides={**BASE, "method.scaling": s}) for s in (2.0, 5.0)]
    both = train_fusion(cfgs)
    for cfg, res in zip(cfgs, both):
        np.testing.assert_array_equal(res["theta"], train_fusion([cfg])[0]["theta"])
    assert np.max(np.abs(both[0]["theta"] - both[1]["theta"])) > 1e-3


@pytest.mark.parametrize("act, dictionary", [(a, "identity") for a in ACTS] + [("relu", "random")])
@pytest.mark.parametrize("population", [False, True])
def test_the_engine_is_the_recursion_on_noise_free_data(act, dictionary, population):
    """docs/theory.md 15.10: on noise-free data the (a, u) recursion on the patterns is the
    engine's run; with data.population = true it is GD on the distribution."""
    cfg = simcomp.build_config(overrides={**BASE, "model.activation": act,
                                          "data.population": population,
                                          "data.modality.0.dictionary": dictionary,
                                          "data.modality.1.dictionary": dictionary})
    run = prepare(cfg)
    res = train_fusion([cfg], [run])[0]
    pred = cosine_prediction(cfg, run)
    assert pred["formula"].startswith("mmcosine") and "exact" in pred["formula"]
    tw = res["trace"]["total_weight"]
    np.testing.assert_allclose(pred["predicted_total_weight"], tw, rtol=1e-10, atol=1e-12 * np.abs(tw).max())
    for name in cfg.names:
        got, want = res["half_step"][name], pred["predicted_half_step"][name]
        assert (got is None) == (want is None)
        if got is not None:
            assert want == pytest.approx(got, rel=1e-10, abs=1e-9)
    assert any(v is not None and v > 0 for v in res["half_step"].values())
    # the recursion's own loss is the engine's recorded loss
    y, s, w = run.extra["patterns"]
    offsets = np.concatenate([[0], np.cumsum([3 * m.dim for m in cfg.data.modality])])
    a0 = np.stack([run.theta0[offsets[r]:offsets[r + 1]].reshape(3, -1) @ v
                   for r, v in enumerate(run.extra["signals"])])
    u0 = run.theta0[run.net.head].reshape(2, 3)
    dyn = cosine_dynamics(a0, u0, [m.beta for m in cfg.data.modality], y, s, w, 2.0,
                          cfg.train.lr, cfg.train.steps, cfg.train.trace_every, act,
                          cfg.model.q, cfg.model.rho)
    np.testing.assert_allclose(dyn["loss"], res["trace"]["loss"], rtol=1e-10)
    if population:
        from simcomp.theory.patterns import population_patterns

        yp, sp, wp = population_patterns([m.presence for m in cfg.data.modality])
        np.testing.assert_array_equal(yp, y), np.testing.assert_array_equal(sp, s)
        np.testing.assert_allclose(wp, w, rtol=1e-15)


def test_the_total_weight_read_out_matches_a_direct_least_squares():
    """cosine_total_weights against the engine's definition computed on samples."""
    rng = np.random.default_rng(0)
    y = np.array([-1.0, -1, -1, 1, 1, 1])
    s = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [1, 1], [0, 1]])
    w = rng.uniform(0.5, 1.0, 6)
    beta = np.array([2.0, 0.7])
    f = rng.standard_normal((3, 6))
    V = [np.linalg.qr(rng.standard_normal((3, 3)))[0][:, 0], np.array([0.0, 1.0])]
    X = np.hstack([(y * s[:, r] * beta[r])[:, None] * V[r][None] for r in range(2)])
    a = X.T @ (w * y)
    want = np.empty((3, 2))
    for k in range(3):
        coef = np.linalg.pinv(X.T @ (w[:, None] * X)) @ (X.T @ (w * f[k]))
        for r, sl in enumerate((slice(0, 3), slice(3, 5))):
            want[k, r] = coef[sl] @ a[sl] / (a[sl] @ a[sl])
    np.testing.assert_allclose(cosine_total_weights(f, beta, y, s, w), want, rtol=1e-10)


def test_prediction_is_in_the_simulate_summary():
    res = simcomp.simulate(simcomp.build_config(overrides=BASE))
    run = res.summary["runs"]["joint"]
    assert "mmcosine" in run["theory_formula"] or run["predicted_half_step_ratio"] is not None
    assert set(run["predicted_half_step"]) == {"A", "B"}
    assert any(v is not None for v in run["predicted_half_step"].values())


def test_gaussian_data_have_no_recursion():
    cfg = simcomp.build_config(overrides={**BASE, "data.kind": "gaussian",
                                          "data.modality.0.noise": 0.0})
    pred = cosine_prediction(cfg, prepare(cfg))
    assert pred["predicted_half_step"] == {"A": None, "B": None}
    assert "sparse_coding" in pred["formula"]


@pytest.mark.parametrize("over, words", [
    ({}, ['model.head = "trainable"', "model.head = 'fixed'"]),
    ({"model.head": "trainable", "model.architecture": "early_fusion", "train.mode": "joint"},
     ["model.architecture = 'early_fusion'"]),
    ({"model.head": "trainable", "model.architecture": "deep_fusion", "model.depth": 3,
      "model.fusion_layer": 2, "train.mode": "joint"}, ["model.architecture = 'deep_fusion'"]),
    ({"model.architecture": "early_fusion", "train.mode": "joint"}, ["model.head = 'fixed'"]),
])
def test_refused_without_a_trainable_late_fusion_head(over, words):
    with pytest.raises(simcomp.ConfigError) as err:
        simcomp.build_config(overrides={**over, "method.name": "mmcosine"})
    text = str(err.value)
    assert "method.name = 'mmcosine' needs a trainable fusion head" in text
    assert "\n" not in text
    for word in words:
        assert word in text


def test_the_command_line_refuses_it_on_the_fixed_head(capsys):
    assert main(["simulate", "--set", "method.name=mmcosine"]) == 2
    err = capsys.readouterr().err
    assert "mmcosine needs a trainable fusion head" in err.replace("'mmcosine'", "mmcosine")
    assert "Traceback" not in err


@pytest.mark.parametrize("bad, word", [
    ({"train.loss": "mse"}, "train.loss = 'logistic'"),
    ({"method.scaling": 0.0}, "method.scaling"), ({"method.scaling": -1.0}, "method.scaling"),
    ({"method.alpha": 0.5}, "method.alpha"),
    ({"data.population": True, "data.modality.0.noise": 0.1}, "noise = 0")])
def test_bad_settings_are_refused(bad, word):
    with pytest.raises(simcomp.ConfigError, match=None) as err:
        simcomp.build_config(overrides={**BASE, **bad})
    assert word in str(err.value)


def test_scaling_is_sweepable_and_each_row_carries_its_prediction(tmp_path):
    from simcomp.sweep import plan_sweep, run_sweep

    base = simcomp.build_config(overrides={**BASE, "train.steps": 30})
    plan = plan_sweep(base, ["method.scaling=1.0,4.0"], 1)
    out = run_sweep(plan, tmp_path / "s", workers=1)
    assert out.not_ok == 0 and len(out.rows) == 2
    for row, run in zip(out.rows, plan.runs):
        assert row["method.scaling"] == run.cfg.method.scaling
        want = cosine_prediction(run.cfg, prepare(run.cfg))["predicted_half_step"]
        for name in ("A", "B"):
            got = row[f"predicted_half_step_joint_{name}"]
            assert (got is None and want[name] is None) or got == pytest.approx(want[name])
