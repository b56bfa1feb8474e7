"""Batched training: one compiled call for many runs, bit-identical to each run alone."""

import numba
import numpy as np
import pytest

from simcomp import kernels as kern
from simcomp.config_file import build_config
from simcomp.data import make_experiment_data
from simcomp.train import run_plan, train_batch, train_run

from support import poisoned_data
from test_kernels import GD_SETTINGS, KINDS, KIND_NAMES, signal_problem

# --------------------------------------------------------------------------
# The kernel: gd_segment_batch against gd_segment, run by run
# --------------------------------------------------------------------------


def stack_problems(kind, seeds, dtype):
    """Problems of one shape with different data, learning rates and thresholds."""
    probs = [signal_problem(seed, kind, dtype=dtype) for seed in seeds]
    R = len(probs)
    eta0, thr0 = GD_SETTINGS[kind]
    batch = {key: np.stack([p[key] for p in probs]) for key in
             ("X", "dims", "y", "omega", "W", "signal", "beta")}
    packed = [kern.pack_samples(p["X"]) for p in probs]
    batch["Xf"] = np.stack([pk[0] for pk in packed])
    batch["Xb"] = np.stack([pk[1] for pk in packed])
    batch["eta"] = eta0 * np.linspace(0.5, 1.5, R)
    batch["threshold"] = thr0 * np.linspace(0.8, 1.2, R)
    batch["learned"] = -np.ones((R,) + probs[0]["W"].shape[:2], np.int64)
    return probs, batch


def run_batch_kernel(batch, kind, t_start, n_steps, stop_loss):
    R = batch["X"].shape[0]
    W, learned = batch["W"].copy(), batch["learned"].copy()
    status, t_stop, loss = np.zeros(R, np.int64), np.zeros(R, np.int64), np.zeros(R)
    kern.gd_segment_batch(batch["Xf"], batch["Xb"], batch["dims"], batch["y"], batch["omega"], W,
                          kind, 3.0, 1.0, batch["eta"], batch["signal"], batch["beta"],
                          batch["threshold"], learned, np.asarray(t_start, np.int64),
                          np.asarray(n_steps, np.int64), np.asarray(stop_loss, np.float64),
                          status, t_stop, loss)
    return status, t_stop, loss, W, learned


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES.get)
def test_batch_kernel_equals_each_run_alone(kind, dtype):
    probs, batch = stack_problems(kind, [0, 1, 2, 3, 4], dtype)
    t_start = [0, 3, 7, 0, 5]
    n_steps = [20, 0, 13, 20, -1]  # a zero-step run, a skipped run
    stop_loss = [0.0, 0.0, 0.0, 0.0, 0.0]
    # Run 3 stops early: its stop level lies between two of its own losses.
    alone = kern.gd_segment(probs[3]["X"], probs[3]["dims"], probs[3]["y"], probs[3]["omega"],
                            probs[3]["W"].copy(), kind, 3.0, 1.0, batch["eta"][3],
                            probs[3]["signal"], probs[3]["beta"], batch["threshold"][3],
                            batch["learned"][3].copy(), 0, 6, 0.0, False,
                            np.zeros_like(probs[3]["W"]))
    stop_loss[3] = alone[2] * (1 + 1e-6)  # the loss at W(5) is just below it
    status, t_stop, loss, W, learned = run_batch_kernel(batch, kind, t_start, n_steps, stop_loss)
    for i, p in enumerate(probs):
        if n_steps[i] < 0:
            np.testing.assert_array_equal(W[i], p["W"])  # skipped: untouched
            assert np.all(learned[i] == -1)
            continue
        Wi, li, g = p["W"].copy(), batch["learned"][i].copy(), np.zeros_like(p["W"])
        ref = kern.gd_segment(p["X"], p["dims"], p["y"], p["omega"], Wi, kind, 3.0, 1.0,
                              batch["eta"][i], p["signal"], p["beta"], batch["threshold"][i], li,
                              t_start[i], n_steps[i], stop_loss[i], False, g)
        assert (status[i], t_stop[i]) == ref[:2], i
        assert loss[i] == ref[2] or (np.isnan(loss[i]) and np.isnan(ref[2])), i
        np.testing.assert_array_equal(W[i], Wi)
        np.testing.assert_array_equal(learned[i], li)
    assert status[3] == kern.STATUS_STOP_LOSS and t_stop[3] <= 5


def test_batch_kernel_does_not_depend_on_threads_or_batch():
    kind = 0
    probs, batch = stack_problems(kind, list(range(6)), np.float64)
    args = (kind, [0] * 6, [15] * 6, [0.0] * 6)
    full = run_batch_kernel(batch, *args)
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_batch_kernel(batch, *args)
    finally:
        numba.set_num_threads(saved)
    sub = {key: value[2:4] for key, value in batch.items()}
    part = run_batch_kernel(sub, kind, [0, 0], [15, 15], [0.0, 0.0])
    for a, b in zip(full, one):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(full, part):
        np.testing.assert_array_equal(a[2:4], b)


def test_batch_kernel_reports_nonfinite_like_gd_segment():
    kind = 0
    probs, batch = stack_problems(kind, [0, 1], np.float64)
    batch["X"][1, 1, 3, 2] = np.nan
    batch["Xf"][1], batch["Xb"][1] = kern.pack_samples(batch["X"][1])
    status, t_stop, loss, W, _ = run_batch_kernel(batch, kind, [2, 2], [10, 10], [0.0, 0.0])
    assert (status[1], t_stop[1]) == (kern.STATUS_NONFINITE, 2) and np.isnan(loss[1])
    np.testing.assert_array_equal(W[1], probs[1]["W"])
    assert (status[0], t_stop[0]) == (kern.STATUS_OK, 12)


def test_batch_kernel_checks_shapes():
    _, batch = stack_problems(0, [0, 1], np.float64)
    with pytest.raises(ValueError):
        run_batch_kernel(batch, 0, [0, 0, 0], [1, 1, 1], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        run_batch_kernel(batch, 1, [0, 0], [1, 1], [0.0, 0.0])  # B = 1 with class banks


# --------------------------------------------------------------------------
# train_batch against train_run
# --------------------------------------------------------------------------

SMALL = ["data.n_train=96", "data.n_test=64", "data.modality.0.dim=10", "data.modality.1.dim=7",
         "model.width=3", "train.steps=60", "train.trace_every=7"]


def small(*overrides):
    return build_config(None, SMALL + list(overrides))


def assert_same_run(a, b):
    assert (a.name, a.trained, a.status, a.steps_run, a.failed_step) == \
        (b.name, b.trained, b.status, b.steps_run, b.failed_step)
    np.testing.assert_array_equal(a.learned_step_bank, b.learned_step_bank)
    np.testing.assert_array_equal(a.learned_step, b.learned_step)
    np.testing.assert_array_equal(a.initial_alignment, b.initial_alignment)
    for wa, wb in zip(a.final_weights, b.final_weights, strict=True):
        np.testing.assert_array_equal(wa, wb)
    ta, tb = a.trace.arrays(), b.trace.arrays()
    assert ta.keys() == tb.keys()
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)


def mixed_batch():
    """Experiments whose runs share shapes but not seeds, rates, horizons or stops."""
    cfgs = [
        small(),
        small("seed=1", "train.lr=2.0", "data.modality.0.presence=0.6"),
        small("seed=2", "train.steps=45", "train.trace_every=5", "data.modality.0.beta=3.0"),
        small("seed=3", "train.stop_loss=0.6", "train.steps=400", "data.modality.0.beta=3.0"),
        small("seed=4", "train.mode=joint"),
        small("seed=5", "model.learned_threshold=0.5", "data.modality.1.beta=1.5"),
        small("seed=6", "train.mode=joint", "train.trace_every=1"),  # poisoned below
        small("seed=7", "model.learner=class_banks"),  # its runs form groups of one
        small("seed=8", "data.modality.0.dim=12"),  # joint and unimodal-A alone
    ]
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    datas[6] = poisoned_data(cfgs[6])
    return cfgs, datas


@pytest.fixture(scope="module")
def mixed():
    cfgs, datas = mixed_batch()
    return cfgs, datas, train_batch(cfgs, datas)


def test_train_batch_is_bit_identical_to_train_run(mixed):
    cfgs, datas, batched = mixed
    assert [len(runs) for runs in batched] == [len(run_plan(cfg)) for cfg in cfgs]
    for cfg, data, runs in zip(cfgs, datas, batched):
        for (name, trained), run in zip(run_plan(cfg), runs):
            assert_same_run(run, train_run(cfg, data, name, trained))
    statuses = {run.status for runs in batched for run in runs}
    assert statuses == {"ok", "stop_loss", "nonfinite"}  # every way a run can end


def test_train_batch_record_false_keeps_only_the_ends(mixed):
    cfgs, datas, batched = mixed
    ends = train_batch(cfgs, datas, record=False)
    for cfg, full, short in zip(cfgs, batched, ends):
        for a, b in zip(full, short):
            assert b.trace.arrays()["steps"].tolist() == (
                [0, a.steps_run] if a.status != "nonfinite" else [0])
            for key, value in b.trace.arrays().items():
                np.testing.assert_array_equal(value[-1], a.trace.arrays()[key][-1], err_msg=key)
            np.testing.assert_array_equal(a.learned_step_bank, b.learned_step_bank)
            for wa, wb in zip(a.final_weights, b.final_weights):
                np.testing.assert_array_equal(wa, wb)
        # ... which is train_run with one segment.
        data = datas[cfgs.index(cfg)]
        name, trained = run_plan(cfg)[0]
        assert_same_run(short[0], train_run(cfg, data, name, trained, record=False))


@pytest.mark.slow
def test_train_batch_float32_and_threads():
    cfgs = [small("train.dtype=float32", f"seed={s}", "train.mode=joint") for s in range(3)]
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    one = train_batch(cfgs, datas, threads=1)
    two = train_batch(cfgs, datas, threads=2)
    for cfg, data, a, b in zip(cfgs, datas, one, two):
        assert_same_run(a[0], b[0])
        assert_same_run(a[0], train_run(cfg, data, "joint", [0, 1]))


def test_train_batch_progress_and_plan():
    cfgs = [small(f"seed={s}") for s in range(3)]
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    done = []
    plan = [[("unimodal-B", [1])]] * 3
    out = train_batch(cfgs, datas, plan, progress=done.append, record=False)
    assert [[run.name for run in runs] for runs in out] == [["unimodal-B"]] * 3
    assert sum(done) == 3 * 60
    assert train_batch([], []) == []
    with pytest.raises(ValueError):
        train_batch(cfgs, datas[:2])


def test_train_run_switching_between_serial_and_parallel_changes_nothing(monkeypatch):
    """train_run times both gradient paths and may switch at any call: same results."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    from simcomp import train

    cfg = small("data.n_train=300", "train.threads=2", "train.trace_every=9")
    data = make_experiment_data(cfg)
    monkeypatch.setattr(train, "_PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(train, "_PROBE_CALL_WORK", 1)  # one step per call: many switches
    switched = train_run(cfg, data, "joint", [0, 1])
    assert switched.parallel
    monkeypatch.setattr(train, "_PARALLEL_MIN_WORK", 1 << 62)
    plain = train_run(cfg, data, "joint", [0, 1])
    assert not plain.parallel
    assert_same_run(switched, plain)
    assert_same_run(plain, train_batch([cfg, cfg], [data, data], [[("joint", [0, 1])]] * 2)[0][0])


def test_end_point_runs_give_the_same_summaries_as_run_experiment():
    """What a sweep row is made of is the same through train_batch(record=False)."""
    from simcomp.experiment import predict_run, run_experiment, run_summary

    cfgs = [small(f"seed={s}", "train.steps=80") for s in range(3)]
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    batched = train_batch(cfgs, datas, record=False)
    for cfg, data, runs in zip(cfgs, datas, batched):
        exp = run_experiment(cfg, data=data)
        for run, ref in zip(runs, exp.runs, strict=True):
            pred = predict_run(cfg, data, run.trained, run.initial_alignment)
            a = run_summary(cfg, data, run, pred)
            b = run_summary(cfg, data, ref, exp.predictions[ref.name])
            for key in ("seconds", "threads", "parallel"):
                a.pop(key), b.pop(key)
            assert a == b
