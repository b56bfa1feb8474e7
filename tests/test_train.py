"""Training loop: reproducibility, modes, learned steps, population mode against theory."""

import numpy as np
import pytest

from simcomp import theory
from simcomp.config_file import build_config
from simcomp.data import make_experiment_data
from simcomp.experiment import run_experiment, summarize
from simcomp.train import run_plan, train_run
from support import poisoned_data

SMALL = ["data.n_train=96", "data.n_test=64", "data.modality.0.dim=10", "data.modality.1.dim=7",
         "model.width=3", "train.steps=60", "train.trace_every=7"]


def small(*overrides):
    return build_config(None, SMALL + list(overrides))


def test_same_seed_gives_bit_identical_trace():
    cfg = small()
    a, b = run_experiment(cfg), run_experiment(cfg)
    for ra, rb in zip(a.runs, b.runs):
        ta, tb = ra.trace.arrays(), rb.trace.arrays()
        for key in ta:
            assert np.array_equal(ta[key], tb[key]), key
        assert np.array_equal(ra.learned_step, rb.learned_step)


def test_different_seed_differs():
    a = run_experiment(small()).runs[0].trace.arrays()
    b = run_experiment(small("seed=3")).runs[0].trace.arrays()
    assert not np.array_equal(a["alignment"], b["alignment"])


def test_changing_n_train_keeps_initial_weights():
    a = run_experiment(small())
    b = run_experiment(small("data.n_train=40"))
    for ra, rb in zip(a.runs, b.runs):
        assert np.array_equal(ra.trace.arrays()["alignment"][0], rb.trace.arrays()["alignment"][0])


def test_zero_learning_rate_leaves_weights_unchanged():
    cfg = small("train.lr=0.0")
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1])
    for k, w in enumerate(run.final_weights):
        assert np.array_equal(w, data.init[k])
    align = run.trace.arrays()["alignment"]
    assert np.array_equal(align[0], align[-1])


def test_trace_points_and_shapes():
    cfg = small("model.learner=class_banks")
    exp = run_experiment(cfg)
    joint = exp.runs[0].trace.arrays()
    assert joint["steps"].tolist() == [0, 7, 14, 21, 28, 35, 42, 49, 56, 60]
    assert joint["alignment"].shape == (10, 2, 2, 3)
    assert joint["orthogonal_norm"].shape == (10, 2, 2, 3)
    assert joint["leading_alignment"].shape == (10, 2)
    assert joint["modality_test_error"].shape == (10, 2)
    alone = exp.runs[1].trace.arrays()
    assert alone["alignment"].shape == (10, 1, 2, 3)
    sym = run_experiment(small("train.mode=joint")).runs[0].trace.arrays()
    assert sym["alignment"].shape == (10, 2, 3)


def test_modes_plan():
    cfg = small()
    assert [name for name, _ in run_plan(cfg)] == ["joint", "unimodal-A", "unimodal-B"]
    assert [name for name, _ in run_plan(small("train.mode=unimodal"))] == ["unimodal-A", "unimodal-B"]
    assert run_plan(small("train.mode=joint")) == [("joint", [0, 1])]


def test_compare_runs_start_from_joint_weights():
    exp = run_experiment(small())
    joint0 = exp.runs[0].trace.arrays()["alignment"][0]
    assert np.array_equal(exp.runs[1].trace.arrays()["alignment"][0][0], joint0[0])
    assert np.array_equal(exp.runs[2].trace.arrays()["alignment"][0][0], joint0[1])


def test_learned_step_is_first_crossing_checked_every_step():
    cfg = small("train.trace_every=1000", "train.steps=200", "data.modality.0.beta=3.0")
    full = small("train.trace_every=1", "train.steps=200", "data.modality.0.beta=3.0")
    coarse, fine = run_experiment(cfg), run_experiment(full)
    for rc, rf in zip(coarse.runs, fine.runs):
        assert np.array_equal(rc.learned_step, rf.learned_step)
        tr = rf.trace.arrays()
        beta = np.array([cfg.data.modality[r].beta for r in rf.trained])
        for k, step in enumerate(rf.learned_step):
            crossed = np.nonzero(beta[k] * tr["leading_alignment"][:, k] >= cfg.model.rho)[0]
            assert step == (crossed[0] if crossed.size else -1)
    assert coarse.runs[0].learned_step[0] >= 0  # A (beta 3) is learned


def test_stop_loss_stops_early():
    cfg = small("train.stop_loss=0.6", "train.steps=2000", "data.modality.0.beta=3.0")
    run = run_experiment(cfg).runs[0]
    assert run.status == "stop_loss"
    assert run.steps_run < 2000
    assert run.trace.arrays()["train_loss"][-1] < 0.6
    assert run.trace.arrays()["steps"][-1] == run.steps_run


def test_nonfinite_loss_stops_and_keeps_finite_trace():
    cfg = small("train.trace_every=1", "train.mode=joint")
    run = run_experiment(cfg, data=poisoned_data(cfg)).runs[0]
    assert run.status == "nonfinite"
    assert run.failed_step == 1
    tr = run.trace.arrays()
    assert tr["steps"].tolist() == [0]
    assert np.all(np.isfinite(tr["train_loss"]))
    summary = summarize(run_experiment(cfg, data=poisoned_data(cfg)))
    assert summary["runs"]["joint"]["status"] == "nonfinite"
    assert summary["runs"]["joint"]["failed_step"] == 1


@pytest.mark.slow
def test_float32_close_to_float64():
    a = run_experiment(small("train.mode=joint"))
    b = run_experiment(small("train.mode=joint", "train.dtype=float32"))
    la = a.runs[0].trace.arrays()["leading_alignment"]
    lb = b.runs[0].trace.arrays()["leading_alignment"]
    assert np.allclose(la, lb, rtol=1e-3, atol=1e-5)


def test_summary_contract():
    exp = run_experiment(small())
    summary = summarize(exp)
    for key in ("simcomp_version", "numpy_version", "numba_version", "seed", "config", "runs"):
        assert key in summary
    joint = summary["runs"]["joint"]
    for key in ("trained_modalities", "initial_leading_alignment", "presence_fraction",
                "learned_step", "final_leading_alignment", "modality_test_error", "winner",
                "test_error", "train_error", "train_loss", "steps_run", "predicted_learned_step",
                "predicted_winner", "predicted_test_error_noiseless"):
        assert key in joint, key
    assert joint["trained_modalities"] == ["A", "B"]
    assert set(joint["learned_step"]) == {"A", "B"}
    assert summary["comparison"]["gap"] == pytest.approx(
        joint["test_error"] - min(summary["runs"][f"unimodal-{n}"]["test_error"] for n in "AB"))


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
def test_population_mode_matches_reduced_dynamics(learner):
    cfg = build_config(None, [
        "data.population=true", "data.modality.0.noise=0.0", "data.modality.1.noise=0.0",
        "data.modality.0.beta=2.0", "data.modality.0.presence=0.8",
        "data.modality.0.dim=5", "data.modality.1.dim=4", "data.modality.1.presence=0.9",
        "model.width=3", "model.init_scale=0.05", f"model.learner={learner}",
        "train.steps=500", "train.trace_every=1", "train.mode=joint",
    ])
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1])
    sim = run.trace.arrays()["alignment"]
    if sim.ndim == 3:
        sim = sim[:, :, None, :]
    y_pat, s_pat, w_pat = theory.population_patterns([m.presence for m in cfg.data.modality])
    red = theory.reduced_dynamics(
        run.initial_alignment, np.array([2.0, 1.0]), y_pat, s_pat, w_pat, cfg.model.q,
        cfg.model.rho, cfg.train.lr, cfg.train.steps, learner=learner, activation="srelu",
        threshold=cfg.model.rho, record_every=1)
    assert red.alignment.shape == sim.shape
    scale = np.abs(red.alignment).reshape(len(sim), -1).max(axis=1)
    rel = np.abs(sim - red.alignment).reshape(len(sim), -1).max(axis=1) / scale
    assert rel.max() <= 1e-10
    assert np.array_equal(red.learned_step, run.learned_step)
    # the run must actually go somewhere for the comparison to mean anything
    assert run.learned_step[0] >= 0


def test_default_experiment_shows_the_effect_and_matches_the_race():
    """docs/model.md section 6 on the embedded default: A wins, B starves jointly, B alone is
    learned; learned steps within 5% or 2 steps of the race (5.2, counting the noise) for the
    joint winner and every uni-modal run."""
    from simcomp.config_file import default_config

    exp = run_experiment(default_config())
    runs = {run.name: run for run in exp.runs}
    joint = runs["joint"]
    assert joint.winner == 0 and joint.learned_step[1] == -1  # only A learned by T
    assert runs["unimodal-B"].learned_step[0] >= 0  # B alone is learned
    checks = [(joint, joint.winner)] + [(runs[f"unimodal-{n}"], 0) for n in ("A", "B")]
    for run, k in checks:
        measured = run.learned_step[k]
        # the data are noisy (noise 0.05): the race that counts the noise is the one to match
        predicted = exp.predictions[run.name].race_learned_step_noisy[k]
        assert abs(measured - predicted) <= max(0.05 * predicted, 2.0), (run.name, measured,
                                                                          predicted)
    summary = summarize(exp)
    assert summary["comparison"]["gap"] > 0
    assert summary["runs"]["unimodal-B"]["test_error"] == 0.0


# --------------------------------------------------------------------------
# Training rules, bounded calls, trace cap, pinned semantics
# --------------------------------------------------------------------------

from simcomp import kernels as kern_pkg  # noqa: E402
from simcomp import trace as trace_mod  # noqa: E402
from simcomp import pacing as pacing_mod  # noqa: E402
from simcomp import train as train_mod  # noqa: E402
from simcomp.kernels import make_rule  # noqa: E402
from simcomp.trace import METHOD_KEYS, weighted_error  # noqa: E402
from simcomp.train import train_batch  # noqa: E402


def same_run(a, b):
    ta, tb = a.trace.arrays(), b.trace.arrays()
    assert sorted(ta) == sorted(tb)
    for key in ta:
        assert np.array_equal(ta[key], tb[key], equal_nan=True), key
    assert np.array_equal(a.learned_step_bank, b.learned_step_bank)
    for wa, wb in zip(a.final_weights, b.final_weights):
        assert np.array_equal(wa, wb)


def test_rule_none_and_lr_scale_one_are_plain_training():
    cfg = small("model.learner=class_banks")
    data = make_experiment_data(cfg)
    plain = train_run(cfg, data, "joint", [0, 1])
    for rule in (make_rule("none", 2), make_rule("lr_scale", 2, lr_scale=[1.0, 1.0])):
        run = train_run(cfg, data, "joint", [0, 1], rule=rule)
        ta = run.trace.arrays()
        for key in plain.trace.arrays():
            assert np.array_equal(ta[key], plain.trace.arrays()[key]), (rule.name, key)
    assert not any(key in plain.trace.arrays() for key in METHOD_KEYS)


def test_method_statistics_are_traced():
    cfg = small()
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1], rule=make_rule("ogm", 2, alpha=0.5))
    arrays = run.trace.arrays()
    R = len(arrays["steps"])
    for key in METHOD_KEYS:
        assert arrays[key].shape == (R, 2) and arrays[key].dtype == np.float64
    assert np.all(np.isnan(arrays["method_score"][0]))  # nothing computed before step 0
    assert np.all(np.isfinite(arrays["method_scale"][1:]))
    assert np.all((arrays["method_scale"][1:] > 0) & (arrays["method_scale"][1:] <= 1))
    assert np.all(np.isnan(arrays["method_cosine"]))  # defined for mmpareto only


@pytest.mark.parametrize("name", ["ogm", "dropout", "aux", "mmpareto", "agm"])
def test_batched_rules_match_single_runs(name):
    cfgs = [small("model.learner=class_banks", f"seed={s}", f"train.lr={1 + 0.5 * s}")
            for s in range(3)]
    datas = [make_experiment_data(cfg) for cfg in cfgs]

    def rule(s):
        return make_rule(name, 2, key=100 + s, drop=[0.2, 0.1] if name == "dropout" else None)

    batched = train_batch(cfgs, datas, plan=[[("joint", [0, 1])]] * 3,
                          rules=[[rule(s)] for s in range(3)])
    for s, (cfg, data) in enumerate(zip(cfgs, datas)):
        same_run(batched[s][0], train_run(cfg, data, "joint", [0, 1], rule=rule(s)))


def test_alternating_joint_run_equals_the_unimodal_runs():
    cfg = small("model.learner=class_banks", "train.lr=2.0")
    data = make_experiment_data(cfg)
    joint = train_run(cfg, data, "joint", [0, 1], rule=make_rule("alternating", 2))
    for k in range(2):
        alone = train_run(cfg, data, f"unimodal-{k}", [k])
        np.testing.assert_allclose(joint.final_weights[k], alone.final_weights[0], rtol=1e-12,
                                   atol=1e-14)
        assert joint.learned_step[k] == alone.learned_step[0]
    # Its errors are those of its own predictor sum_r a_r phi_r: with a = (1, 0), modality A's.
    own = train_run(cfg, data, "joint", [0, 1], rule=make_rule("alternating", 2, mix=[1.0, 0.0]))
    rec = own.trace.arrays()
    np.testing.assert_array_equal(rec["test_error"], rec["modality_test_error"][:, 0])
    assert not np.array_equal(rec["test_error"], rec["modality_test_error"][:, 1])


def test_calls_cut_short_do_not_change_results(monkeypatch):
    """Every compiled call is bounded in wall time; with a zero budget each call is one
    step, and the run is bit-identical to the default."""
    cfg = small("train.trace_every=25")
    data = make_experiment_data(cfg)
    ref_run = train_run(cfg, data, "joint", [0, 1])
    calls = []
    monkeypatch.setattr(pacing_mod, "_CALL_SECONDS", 0.0)
    cut = train_run(cfg, data, "joint", [0, 1], progress=calls.append)
    assert calls == [1] * cfg.train.steps
    same_run(cut, ref_run)
    cfgs = [cfg, cfg.replace(seed=1)]
    datas = [data, make_experiment_data(cfgs[1])]
    calls.clear()
    cut_b = train_batch(cfgs, datas, record=False, progress=calls.append)
    assert calls == [2] * (3 * cfg.train.steps)  # 3 groups (joint, each uni-modal), 2 runs each
    monkeypatch.setattr(pacing_mod, "_CALL_SECONDS", 0.25)
    for a, b in zip(cut_b, train_batch(cfgs, datas, record=False)):
        for ra, rb in zip(a, b):
            same_run(ra, rb)


def test_trace_points_are_capped(monkeypatch, capsys):
    monkeypatch.setattr(trace_mod, "MAX_TRACE_POINTS", 4)
    cfg = small()  # 60 steps, trace_every 7: 8 points wanted
    run = train_run(cfg, make_experiment_data(cfg), "joint", [0, 1])
    assert run.trace.arrays()["steps"].tolist() == [0, 15, 30, 45, 60]
    assert "recording every 15 steps instead" in capsys.readouterr().err


def test_an_output_of_exactly_zero_counts_as_half_an_error():
    y = np.array([1.0, -1.0, 1.0, -1.0])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    assert weighted_error(y, np.array([0.0, 0.0, 1.0, 1.0]), w) == np.dot(w, [0.5, 0.5, 0, 1])
    assert weighted_error(y, np.array([-0.0, 0.0, -2.0, -3.0]), w) == np.dot(w, [0.5, 0.5, 1, 0])


def test_learned_check_counts_an_alignment_exactly_at_the_threshold():
    X = np.zeros((1, 4, 3))
    W = np.zeros((1, 1, 2, 3))
    W[0, 0, 1, 0] = 0.5  # beta * <w, v> = 2 * 0.5 = 1.0 == threshold
    learned = -np.ones((1, 1), np.int64)
    signal = np.array([[1.0, 0.0, 0.0]])
    kern_pkg.gd_segment(X, np.array([3]), np.ones(4), np.full(4, 0.25), W, 0, 3.0, 1.0, 0.0,
                        signal, np.array([2.0]), 1.0, learned, 5, 0, 0.0, False, np.zeros_like(W))
    assert learned[0, 0] == 5
    learned[:] = -1
    kern_pkg.gd_segment(X, np.array([3]), np.ones(4), np.full(4, 0.25), W, 0, 3.0, 1.0, 0.0,
                        signal, np.array([2.0]), np.nextafter(1.0, 2.0), learned, 5, 0, 0.0,
                        False, np.zeros_like(W))
    assert learned[0, 0] == -1


def test_a_modality_learned_at_step_zero_is_learned_and_can_win():
    """Step 0 is a step like any other: -1 alone means never (per modality and for the winner)."""
    learned = np.array([[0, -1], [-1, -1], [7, 3], [-1, 0]], dtype=np.int64)
    assert train_mod._min_learned(learned).tolist() == [0, -1, 3, 0]
    winner = train_mod.RunResult.winner.fget

    class Run:
        def __init__(self, steps):
            self.learned_step = np.array(steps)

    assert winner(Run([0, 4])) == 0 and winner(Run([4, 0])) == 1
    assert winner(Run([0, 0])) == 0  # a tie goes to the lower index
    assert winner(Run([-1, 0])) == 1 and winner(Run([-1, -1])) is None


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["data.modality.1.dim=10"]])
def test_float32_runs_compute_in_float32_on_every_path(monkeypatch, extra):
    seen = []
    real_seg, real_batch = kern_pkg.gd_segment, kern_pkg.gd_segment_batch

    def check(*arrays):
        # checked before the call: a wrong dtype would first compile a mixed-type kernel
        seen.append(tuple(a.dtype for a in arrays))
        assert set(seen[-1]) == {np.dtype(np.float32)}, seen[-1]

    def seg(X, dims, y, omega, W, *args, **kw):
        check(X, y, omega, W, kw["packed"][0])
        return real_seg(X, dims, y, omega, W, *args, **kw)

    def batch(Xf, Xb, dims, y, omega, W, *args, **kw):
        check(Xf, y, omega, W, Xb)
        return real_batch(Xf, Xb, dims, y, omega, W, *args, **kw)

    monkeypatch.setattr(train_mod._kernels, "gd_segment", seg)
    monkeypatch.setattr(train_mod._kernels, "gd_segment_batch", batch)
    for mode in ("joint", "unimodal", "compare"):
        cfg = small("train.dtype=float32", f"train.mode={mode}", *extra)
        data = make_experiment_data(cfg)
        for name, trained in run_plan(cfg):
            train_run(cfg, data, name, trained)
        train_batch([cfg, cfg.replace(seed=1)], [data, make_experiment_data(cfg.replace(seed=1))])
    assert seen and all(set(dt) == {np.dtype(np.float32)} for dt in seen)


def test_interrupt_keeps_the_partial_run(monkeypatch):
    cfg = small("train.trace_every=5")
    data = make_experiment_data(cfg)
    full = train_run(cfg, data, "joint", [0, 1])
    monkeypatch.setattr(pacing_mod, "_CALL_SECONDS", 0.0)  # one step per call
    done = []

    def progress(steps):
        done.append(steps)
        if len(done) == 23:
            raise KeyboardInterrupt

    with pytest.raises(train_mod.TrainingInterrupted) as info:
        train_run(cfg, data, "joint", [0, 1], progress=progress)
    part = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert part.status == "interrupted" and part.steps_run == 23
    assert part.trace.arrays()["steps"].tolist() == [0, 5, 10, 15, 20]
    for key, value in part.trace.arrays().items():
        assert np.array_equal(value, full.trace.arrays()[key][:5]), key


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
def test_last_record_matches_a_numpy_reference_on_the_final_weights(learner):
    """What the trace records at the last step, recomputed with plain NumPy from the weights.

    Train and test errors come from their own sets, per-modality errors from
    each encoder alone, alignments carry the bank sign c_b, the distractor
    alignment is the largest |<w, M e_j>| (j >= 2) and the orthogonal norm
    is a norm (not its square).
    """
    import reference as ref

    cfg = small("train.mode=joint", f"model.learner={learner}", "data.modality.0.distractors=2",
                "data.n_test=50")
    data = make_experiment_data(cfg)
    run = train_run(cfg, data, "joint", [0, 1])
    arrays = run.trace.arrays()
    kind = train_mod.KIND_CODES[(cfg.model.learner, cfg.model.activation)]
    dims = np.array([mod.dim for mod in cfg.data.modality])
    width = dims.max()
    B, m = cfg.model.banks, cfg.model.width
    W = np.zeros((2, B, m, width))
    for r, w in enumerate(run.final_weights):
        W[r, ..., : w.shape[-1]] = w

    def errors(ds):
        X = np.zeros((2, ds.n, width))
        for r, x in enumerate(ds.X):
            X[r, :, : x.shape[1]] = x
        f, phi = ref.forward(X, dims, W, kind, cfg.model.q, cfg.model.rho)

        def err(out):
            margin = ds.y * out
            return ds.weight @ np.where(margin < 0, 1.0, np.where(margin == 0, 0.5, 0.0))
        return err(f), [err(phi[:, k]) for k in range(2)]

    train_err, _ = errors(data.train)
    test_err, modality_err = errors(data.test)
    assert arrays["train_error"][-1] == pytest.approx(train_err, abs=1e-12)
    assert arrays["test_error"][-1] == pytest.approx(test_err, abs=1e-12)
    np.testing.assert_allclose(arrays["modality_test_error"][-1], modality_err, atol=1e-12)
    assert train_err != test_err  # the two sets are told apart
    sign = np.array([1.0, -1.0])[:B, None]
    for r, (w, M) in enumerate(zip(run.final_weights, data.dictionaries)):
        coords = w @ np.asarray(M)
        align = sign * coords[..., 0]
        got = arrays["alignment"][-1][r]
        np.testing.assert_allclose(got, align if B == 2 else align[0], rtol=1e-12, atol=1e-15)
        assert arrays["leading_alignment"][-1][r] == pytest.approx(align.max(), rel=1e-12)
        rest = coords[..., 1:]
        assert arrays["distractor_alignment"][-1][r] == pytest.approx(np.abs(rest).max(),
                                                                       rel=1e-12)
        norm = np.sqrt((rest**2).sum(axis=-1))
        np.testing.assert_allclose(arrays["orthogonal_norm"][-1][r], norm if B == 2 else norm[0],
                                   rtol=1e-12)


def test_trace_stride_is_the_ceiling_and_keeps_the_cap(monkeypatch, capsys):
    """steps / trace_every over the cap: the stride becomes ceil(steps / MAX_TRACE_POINTS)."""
    monkeypatch.setattr(trace_mod, "MAX_TRACE_POINTS", 4)
    assert trace_mod.trace_stride(16, 4) == 4 and capsys.readouterr().err == ""  # 4 points: kept
    for steps in (11, 60, 62, 1001):
        every = trace_mod.trace_stride(steps, 1)
        assert every == -(-steps // 4) and steps // every <= 4
    assert trace_mod.trace_stride(11, 2) == 3  # 11 // 2 = 5 points wanted, 3 kept


def test_a_trace_records_a_step_once():
    """Appending the step just recorded (the last step on a trace point) keeps one record."""
    tr = trace_mod.Trace(banks=1)
    a = np.zeros((2, 1, 3))
    for step in (0, 5, 5):
        tr.append(step, a, np.zeros(2), a, 0.5, 0.25, 0.25, np.zeros(2))
    assert len(tr) == 2 and tr.arrays()["steps"].tolist() == [0, 5]


@pytest.mark.parametrize("d", [1, 2, 3, 5, 6, 7, 8])
def test_learned_check_reads_every_column_of_the_signal(d):
    """The learned check's dot product covers all d columns (its unrolled loop and the tail):
    an alignment carried by the last column alone reaches the threshold."""
    X = np.zeros((1, 4, d))
    W = np.zeros((1, 1, 2, d))
    W[0, 0, 1, d - 1] = 0.5  # beta * <w, v> = 2 * 0.5 = 1.0 == threshold
    signal = np.zeros((1, d))
    signal[0, d - 1] = 1.0
    learned = -np.ones((1, 1), np.int64)
    kern_pkg.gd_segment(X, np.array([d]), np.ones(4), np.full(4, 0.25), W, 0, 3.0, 1.0, 0.0,
                        signal, np.array([2.0]), 1.0, learned, 5, 0, 0.0, False, np.zeros_like(W))
    assert learned[0, 0] == 5
