"""Mini-batch SGD (train.batch_size): config, batches, gradient, training paths, competition."""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from simcomp import kernels as K
from simcomp.batches import MiniBatches
from simcomp.cli import main
from simcomp.config import ConfigError, config_from_dict
from simcomp.config_file import build_config, config_to_toml
from simcomp.data import _STREAM_BATCH, batch_seed_sequence, make_experiment_data
from simcomp.kernels import make_rule
from simcomp.train import _pad, train_batch, train_run

SMALL = ["data.n_train=96", "data.n_test=64", "data.modality.0.dim=8", "data.modality.1.dim=6",
         "model.width=3", "train.steps=40", "train.trace_every=10", "train.threads=1"]


def small(*extra):
    return build_config(None, SMALL + list(extra))


def same_run(a, b):
    """Bit-identical runs: trace records, learned steps, final weights, status."""
    assert a.status == b.status and a.steps_run == b.steps_run
    assert np.array_equal(a.learned_step_bank, b.learned_step_bank)
    for wa, wb in zip(a.final_weights, b.final_weights):
        assert np.array_equal(wa, wb)
    da, db = a.trace.arrays(), b.trace.arrays()
    assert da.keys() == db.keys()
    for key in da:
        assert np.array_equal(da[key], db[key], equal_nan=True), key


# --------------------------------------------------------------------------- config


def test_default_is_full_batch_and_the_config_records_batch_size():
    cfg = small()
    assert cfg.train.batch_size == 0
    assert cfg.to_dict()["train"]["batch_size"] == 0
    sgd = small("train.batch_size=32")
    assert sgd.train.batch_size == 32
    assert "batch_size = 32" in config_to_toml(sgd)
    import tomllib
    assert config_from_dict(tomllib.loads(config_to_toml(sgd))) == sgd


@pytest.mark.parametrize("value, message", [
    ("97", "train.batch_size must be 0 (full batch) or between 1 and data.n_train = 96, got 97"),
    ("-1", "train.batch_size must be >= 0"),
    ("1.5", "train.batch_size must be an integer"),
    ("true", "train.batch_size must be an integer"),
])
def test_batch_size_out_of_range_is_refused_naming_key_and_range(value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        small(f"train.batch_size={value}")


def test_population_mode_refuses_mini_batches():
    with pytest.raises(ConfigError, match="train.batch_size = 4 needs a sampled training set"):
        build_config(None, ["data.population=true", "data.modality.0.noise=0",
                            "data.modality.1.noise=0", "train.batch_size=4"])


def test_simulate_records_batch_size_in_summary_and_config(tmp_path):
    import json
    import tomllib
    args = ["simulate", "--quiet", "--out", str(tmp_path / "run")]
    for item in SMALL + ["train.batch_size=16"]:
        args += ["--set", item]
    assert main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["train"]["batch_size"] == 16
    written = [p for p in (tmp_path / "run").iterdir() if p.suffix == ".toml"]
    assert written and tomllib.loads(written[0].read_text())["train"]["batch_size"] == 16


def test_cli_exit_2_on_a_bad_batch_size(tmp_path, capsys):
    args = ["simulate", "--quiet", "--out", str(tmp_path / "run")]
    for item in SMALL + ["train.batch_size=1000"]:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.batch_size" in err and "data.n_train = 96" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- batches


def test_batch_stream_is_child_5_of_the_seed():
    assert _STREAM_BATCH == 5
    seq = batch_seed_sequence(7)
    assert seq.spawn_key == (5,) and seq.entropy == 7
    # Does not move any other stream: the data of a run do not depend on batch_size.
    a, b = make_experiment_data(small()), make_experiment_data(small("train.batch_size=8"))
    for xa, xb in zip(a.train.X + a.test.X + a.init, b.train.X + b.test.X + b.init):
        assert np.array_equal(xa, xb)


@pytest.mark.parametrize("n, b", [(12, 4), (12, 5), (12, 12), (7, 1)])
def test_each_epoch_is_a_permutation_cut_in_order(n, b):
    mb = MiniBatches(batch_seed_sequence(3), np.full(n, 1.0 / n), b)
    assert mb.per_epoch == n // b
    for epoch in range(3):
        perm = mb.permutation(epoch).copy()
        assert sorted(perm) == list(range(n))
        for k in range(n // b):
            t = epoch * (n // b) + k
            assert np.array_equal(mb.indices(t), perm[k * b:(k + 1) * b])
    # A function of the step: asking again (even an earlier epoch) gives the same batches.
    fresh = MiniBatches(batch_seed_sequence(3), np.full(n, 1.0 / n), b)
    for t in (5, 0, 3, 9, 1):
        assert np.array_equal(mb.indices(t), fresh.indices(t))
    other = MiniBatches(batch_seed_sequence(4), np.full(n, 1.0 / n), b)
    assert any(not np.array_equal(mb.indices(t), other.indices(t)) for t in range(6)) or b == n


def test_weights_are_omega_times_n_over_b_inside_the_batch():
    rng = np.random.default_rng(0)
    omega = rng.random(10)
    omega /= omega.sum()
    mb = MiniBatches(batch_seed_sequence(0), omega, 4)
    out = np.full(10, np.nan)
    for t in range(7):
        idx = mb.indices(t)
        mb.fill(t, out)
        expected = np.zeros(10)
        expected[idx] = omega[idx] * 2.5
        assert np.array_equal(out, expected)
        assert np.array_equal(mb.weights(t), expected)
    out32 = np.zeros(10, np.float32)
    mb.fill(3, out32)
    assert np.array_equal(out32, mb.weights(3).astype(np.float32))
    # Uniform weights: the plain mean over the batch (1/b each).
    uni = MiniBatches(batch_seed_sequence(0), np.full(96, 1.0 / 96), 32)
    w = uni.weights(0)
    assert np.count_nonzero(w) == 32 and np.allclose(w[w > 0], 1.0 / 32, rtol=1e-15)
    # b = n: omega itself, bit for bit, whatever the order of the permutation.
    full = MiniBatches(batch_seed_sequence(0), omega, 10)
    assert np.array_equal(full.weights(0), omega) and np.array_equal(full.weights(5), omega)


def test_bad_batch_size_for_the_sampler():
    with pytest.raises(ValueError, match="batch_size must be between 1 and n = 5, got 6"):
        MiniBatches(batch_seed_sequence(0), np.full(5, 0.2), 6)


def _grad(cfg, data, omega):
    """The kernels' full gradient of the joint run for sample weights ``omega``."""
    X = _pad(data.train.X, max(m.dim for m in cfg.data.modality), np.float64)
    W = _pad(data.init, X.shape[2], np.float64) * 30.0  # away from the tiny initial scale
    dims = np.array([m.dim for m in cfg.data.modality], np.int64)
    G = np.zeros_like(W)
    K.loss_and_grad(X, dims, data.train.y, np.ascontiguousarray(omega, np.float64), W, 0, 3.0,
                    1.0, G)
    return G, (X, dims, W)


@pytest.mark.parametrize("b", [1, 8, 32, 96])
@pytest.mark.parametrize("uniform", [True, False])
def test_mean_minibatch_gradient_over_an_epoch_is_the_full_gradient(b, uniform):
    """With b | n the batches of one permutation partition the set: the mean of their
    gradients (weights omega_j n / b) is the full gradient, for any omega."""
    cfg = small()
    data = make_experiment_data(cfg)
    omega = data.train.weight
    if not uniform:
        omega = np.random.default_rng(1).random(data.train.n)
        omega /= omega.sum()
    full, (X, dims, W) = _grad(cfg, data, omega)
    mb = MiniBatches(batch_seed_sequence(cfg.seed), omega, b)
    total = np.zeros_like(full)
    for t in range(mb.per_epoch):
        g, _ = _grad(cfg, data, mb.weights(t))
        total += g
    mean = total / mb.per_epoch
    assert np.allclose(mean, full, rtol=1e-12, atol=1e-14 * np.abs(full).max())
    # and the kernels' batch gradient is the reference gradient of the batch's weights
    w = mb.weights(0)
    g0, _ = _grad(cfg, data, w)
    assert np.allclose(g0, ref.grad(X, dims, data.train.y, w, W, 0, 3.0, 1.0), rtol=1e-10,
                       atol=1e-14)


def test_every_sample_is_in_a_step_batch_with_probability_b_over_n():
    """Unbiasedness when b does not divide n: inclusion frequency b/n over many epochs."""
    n, b, epochs = 10, 3, 4000
    mb = MiniBatches(batch_seed_sequence(11), np.full(n, 0.1), b)
    counts = np.zeros((mb.per_epoch, n))
    for e in range(epochs):
        for k in range(mb.per_epoch):
            counts[k, mb.indices(e * mb.per_epoch + k)] += 1
    freq = counts / epochs
    # binomial sd sqrt(0.3 * 0.7 / 4000) = 0.0072: 5 sd
    assert np.all(np.abs(freq - b / n) < 0.036), freq


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("sets", [
    [],
    # slow: the only float32 run of the default tier would compile the float32 loop for it
    pytest.param(["model.learner=class_banks", "train.dtype=float32"], marks=pytest.mark.slow),
    ["model.learner=class_banks", "model.activation=relu", "train.stop_loss=0.69"],
])
def test_batch_size_n_train_is_full_batch_gd_bit_for_bit(sets):
    gd = small(*sets)
    sgd = small(*sets, "train.batch_size=96")
    data = make_experiment_data(gd)
    for name, trained in (("joint", [0, 1]), ("unimodal-B", [1])):
        same_run(train_run(gd, data, name, trained), train_run(sgd, data, name, trained))


def test_sgd_matches_a_numpy_reference():
    cfg = small("train.batch_size=16", "train.steps=12", "model.init_scale=0.3")
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1])
    X = _pad(data.train.X, 8, np.float64)
    W = _pad(data.init, 8, np.float64)
    dims = np.array([8, 6], np.int64)
    mb = MiniBatches(batch_seed_sequence(cfg.seed), data.train.weight, 16)
    for t in range(12):
        W = W - cfg.train.lr * ref.grad(X, dims, data.train.y, mb.weights(t), W, 0, 3.0, 1.0)
    for k, d in enumerate((8, 6)):
        assert np.allclose(run.final_weights[k], W[k, :, :, :d], rtol=1e-10, atol=1e-14)
    # and it is not full-batch GD
    gd = train_run(small("train.steps=12", "model.init_scale=0.3"), data, "joint", [0, 1])
    assert not np.allclose(gd.final_weights[0], run.final_weights[0], rtol=1e-6)


def test_batches_depend_on_the_seed_only():
    cfg = small("train.batch_size=10")
    data = make_experiment_data(cfg)
    a = train_run(cfg, data, "joint", [0, 1])
    same_run(a, train_run(cfg, data, "joint", [0, 1]))
    same_run(a, train_run(cfg.replace(**{"train.threads": 2}), data, "joint", [0, 1]))
    # the batched path (with runs of other seeds in the batch) gives the same run
    other = cfg.replace(seed=5)
    got = train_batch([cfg, other, cfg.replace(**{"train.batch_size": 20})],
                      [data, make_experiment_data(other), data],
                      plan=[[("joint", [0, 1])]] * 3, threads=2)
    same_run(a, got[0][0])
    same_run(train_run(other, make_experiment_data(other), "joint", [0, 1]), got[1][0])
    assert not np.array_equal(got[2][0].final_weights[0], a.final_weights[0])
    # without records, the batched path still ends where train_run does
    quiet = train_batch([cfg, cfg], [data, data], plan=[[("joint", [0, 1])]] * 2, record=False)
    for wa, wb in zip(a.final_weights, quiet[0][0].final_weights):
        assert np.array_equal(wa, wb)
    assert np.array_equal(quiet[0][0].learned_step_bank, a.learned_step_bank)


def test_parallel_gradient_path_gives_the_same_sgd_run(monkeypatch):
    from simcomp import train as T
    cfg = small("train.batch_size=24", "train.threads=2", "data.n_train=600",
                "train.steps=15", "train.trace_every=5")
    data = make_experiment_data(cfg)
    serial = train_run(cfg.replace(**{"train.threads": 1}), data, "joint", [0, 1])
    monkeypatch.setattr(T, "_PARALLEL_MIN_WORK", 0)  # let the chooser use the parallel gradient
    parallel = train_run(cfg, data, "joint", [0, 1])
    same_run(serial, parallel)
    assert parallel.parallel and not serial.parallel


RULES = [("ogm", {}), ("ogm_ge", {}), ("agm", {}), ("dropout", {"drop": [0.3, 0.2]}),
         ("aux", {}), ("alternating", {}), ("mmpareto", {}), ("lr_scale", {"lr_scale": [2, 1]}),
         ("ogm_boost", {"start": 2}), ("opm", {"start": 2}), ("pmr", {"alpha": 1.0}),
         ("inforeg", {"prox_weight": 0.2, "every": 4})]


@pytest.mark.parametrize("name, kwargs", RULES)
def test_every_rule_trains_with_mini_batches(name, kwargs):
    gd = small()
    data = make_experiment_data(gd)

    def rule():  # (B, m, n, D) of the runs: pmr's and inforeg's state have these sizes
        return make_rule(name, 2, key=99, shape=(1, 3, 96, 8), **kwargs)

    full = train_run(gd, data, "joint", [0, 1], rule=rule())
    same_run(full, train_run(small("train.batch_size=96"), data, "joint", [0, 1], rule=rule()))
    sgd_cfg = small("train.batch_size=12")
    sgd = train_run(sgd_cfg, data, "joint", [0, 1], rule=rule())
    assert sgd.status == "ok" and np.all(np.isfinite(sgd.final_weights[0]))
    assert not np.array_equal(sgd.final_weights[0], full.final_weights[0])
    batched = train_batch([sgd_cfg, sgd_cfg], [data, data], plan=[[("joint", [0, 1])]] * 2,
                          rules=[[rule()], [rule()]])
    same_run(sgd, batched[0][0])
    same_run(sgd, batched[1][0])


def test_umt_trains_with_mini_batches():
    cfg = small("train.batch_size=32")
    data = make_experiment_data(cfg)
    teacher = np.random.default_rng(0).random((2, 1, 3, 96))
    run = train_run(cfg, data, "joint", [0, 1],
                    rule=make_rule("umt", 2, teacher_units=teacher, key=1))
    full = train_run(small("train.batch_size=96"), data, "joint", [0, 1],
                     rule=make_rule("umt", 2, teacher_units=teacher, key=1))
    same_run(full, train_run(small(), data, "joint", [0, 1],
                             rule=make_rule("umt", 2, teacher_units=teacher, key=1)))
    assert run.status == "ok" and not np.array_equal(run.final_weights[0], full.final_weights[0])


def test_early_stop_compares_the_mini_batch_loss():
    """stop_loss under SGD: the run stops at the first step whose batch loss is below it."""
    cfg = small("train.batch_size=8", "train.steps=200", "model.init_scale=0.3")
    data = make_experiment_data(cfg)
    free = train_run(cfg, data, "joint", [0, 1])
    X = _pad(data.train.X, 8, np.float64)
    dims = np.array([8, 6], np.int64)
    mb = MiniBatches(batch_seed_sequence(cfg.seed), data.train.weight, 8)
    # the batch losses along the free trajectory, recomputed step by step
    losses, W = [], _pad(data.init, 8, np.float64)
    for t in range(60):
        w = mb.weights(t)
        losses.append(ref.loss(X, dims, data.train.y, w, W, 0, 3.0, 1.0))
        W = W - ref.grad(X, dims, data.train.y, w, W, 0, 3.0, 1.0)
    level = float(np.quantile(losses[5:], 0.3))
    first = next(t for t, v in enumerate(losses) if v < level)
    stopped = train_run(cfg.replace(**{"train.stop_loss": level}), data, "joint", [0, 1])
    assert stopped.status == "stop_loss" and stopped.steps_run == first
    assert free.status == "ok"


def test_progress_counts_every_sgd_step():
    cfg = small("train.batch_size=32")
    data = make_experiment_data(cfg)
    done = []
    train_run(cfg, data, "joint", [0, 1], progress=done.append)
    assert sum(done) == cfg.train.steps


def test_competition_survives_sgd_on_the_default_config():
    """The default regime under SGD (b = 32), seeds 0-3: B is learned later in the joint
    run than alone (or never) in at least 3 seeds, and which modalities the joint run
    learns by the horizon is the same as under full-batch GD in at least 3 seeds."""
    never = np.iinfo(np.int64).max
    delayed, agree = 0, 0
    for seed in range(4):
        base = ["train.threads=1", "data.n_test=256", f"seed={seed}"]
        gd, sgd = build_config(None, base), build_config(None, base + ["train.batch_size=32"])
        data = make_experiment_data(gd)
        joint = train_run(sgd, data, "joint", [0, 1], record=False)
        alone = train_run(sgd, data, "unimodal-B", [1], record=False)
        joint_gd = train_run(gd, data, "joint", [0, 1], record=False)
        b_joint = never if joint.learned_step[1] < 0 else joint.learned_step[1]
        b_alone = never if alone.learned_step[0] < 0 else alone.learned_step[0]
        delayed += joint.learned_step[0] >= 0 and b_joint > b_alone
        agree += np.array_equal(joint.learned_step >= 0, joint_gd.learned_step >= 0)
    assert delayed >= 3 and agree >= 3, (delayed, agree)
