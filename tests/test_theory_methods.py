"""The methods' reduced dynamics against the NumPy reference trainer in population mode."""

import itertools

import numpy as np
import pytest

import reference_methods as ref
import reference_methods_more_b as rb
from simcomp.experiment import predict_run_method
from simcomp.methods import holdout_dataset
from simcomp.registry import REGISTRY
from simcomp.config_file import build_config
from simcomp.data import empirical_patterns, make_experiment_data
from simcomp.theory import population_patterns, reduced_dynamics
from simcomp.theory.mitigation import (
    effective_rates,
    method_dynamics,
    method_params,
    predict_method,
    predictor_test_error,
    teacher_alignment,
)

FORMS = {"symmetric": ("symmetric", "srelu"), "class_banks": ("class_banks", "srelu"),
         "relu": ("class_banks", "relu")}
STEPS = 40
# The embedded default's values when these tests were written (A: beta 2, presence 0.8; noise
# 0.02; 8 neurons), which their numbers assume; pinned so that the default may change.
EARLIER_DEFAULT = ["data.modality.0.beta=2.0", "data.modality.0.presence=0.8",
                   "data.modality.0.noise=0.02", "data.modality.1.noise=0.02", "model.width=8"]


def setup(form, K, seed=0):
    """Population patterns in d-dimensional inputs with a random dictionary, and random weights."""
    learner, activation = FORMS[form]
    sets = [f"data.modality.{r}.{key}={value}" for r in range(K) for key, value in
            (("noise", 0.0), ("dim", 4 + r), ("dictionary", "random"),
             ("beta", [2.0, 1.2, 1.5][r]), ("presence", [0.8, 1.0, 0.6][r]))]
    cfg = build_config(None, sets + ["data.population=true", f"model.learner={learner}",
                                     f"model.activation={activation}", "model.width=3",
                                     "model.init_scale=0.15", f"seed={seed}",
                                     f"train.steps={STEPS}", "train.lr=1.5"])
    data = make_experiment_data(cfg)
    v = data.signals
    W0 = [w.copy() for w in data.init]
    c = np.array([1.0, -1.0])[: cfg.model.banks]
    a0 = np.stack([c[:, None] * np.einsum("bid,d->bi", W, vr) for W, vr in zip(W0, v)])
    beta = np.array([mod.beta for mod in cfg.data.modality])
    tr = data.train
    return cfg, tr, W0, v, a0, beta, form


CASES = {
    "none": {},
    "lr_scale": {"lr_scale": [1.7, 0.4, 1.1]},
    "ogm": {"alpha": 0.5},
    "ogm_window": {"alpha": 0.9, "start": 5, "stop": 25},
    "agm": {"alpha": 1.0},
    "aux": {"fused_weight": 0.8, "aux_weight": [1.0, 2.0, 0.5]},
    "alternating": {},
    "mmpareto": {},
    "umt": {"distill_weight": 1.0},
}


def method_of(case):
    return "ogm" if case == "ogm_window" else case


def trim(params, K):
    return {k: (v[:K] if isinstance(v, list) else v) for k, v in params.items()}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("form, K", [("symmetric", 2), ("symmetric", 3), ("class_banks", 2),
                                     ("relu", 2), ("relu", 3)])
def test_reduced_dynamics_equals_population_training(case, form, K):
    cfg, tr, W0, v, a0, beta, form = setup(form, K)
    learner, activation = FORMS[form]
    method = method_of(case)
    params = trim(CASES[case], K)
    kw = dict(form="symmetric" if form == "symmetric" else ("class_banks" if form == "class_banks" else "relu"),
              q=cfg.model.q, rho=cfg.model.rho, eta=cfg.train.lr)
    teacher_units, aT = None, None
    if method == "umt":
        teacher_units = ref.teacher_unit_outputs(tr.X, tr.y, tr.weight, W0, steps=17, **kw)
        aT = teacher_alignment(a0, beta, tr.y, tr.presence, tr.weight, cfg.model.q, cfg.model.rho,
                               cfg.train.lr, 17, learner, activation)
    res = ref.train(tr.X, tr.y, tr.weight, W0, steps=STEPS, method=method, params=params,
                    teacher_units=teacher_units, signals=v, **kw)
    dyn = method_dynamics(a0, beta, tr.y, tr.presence, tr.weight, cfg.model.q, cfg.model.rho,
                          cfg.train.lr, STEPS, method, params, learner, activation,
                          teacher_alignment=aT)
    scale = np.abs(res["alignment"]).max()
    np.testing.assert_allclose(dyn.alignment, res["alignment"], rtol=1e-10, atol=1e-10 * scale)
    for key in ("score", "ratio", "scale", "cosine"):
        np.testing.assert_allclose(dyn.__dict__[key], res[key], rtol=1e-9, atol=1e-12,
                                   equal_nan=True)
    # The run must have moved: at least one modality reaches the learn threshold.
    assert (dyn.learned_step >= 0).any()


@pytest.mark.parametrize("form, K", [("symmetric", 2), ("relu", 3)])
@pytest.mark.parametrize("rescale", [False, True])
def test_dropout_expected_step_is_the_mask_average(form, K, rescale):
    cfg, tr, W0, v, a0, beta, form = setup(form, K)
    learner, activation = FORMS[form]
    kw = dict(form="symmetric" if form == "symmetric" else "relu", q=cfg.model.q, rho=cfg.model.rho,
              eta=cfg.train.lr)
    drop = [0.3, 0.6, 0.1][:K]
    params = {"drop": drop, "rescale": rescale}
    mean = np.zeros_like(a0)
    for bits in itertools.product((0.0, 1.0), repeat=K):
        delta = np.array(bits)
        prob = np.prod(np.where(delta == 1, 1 - np.array(drop), np.array(drop)))
        shared = np.tile(delta, (tr.n, 1))  # every sample gets the same mask
        res = ref.train(tr.X, tr.y, tr.weight, W0, steps=1, method="dropout", params=params,
                        masks=lambda t: shared, signals=v, **kw)
        mean += prob * res["alignment"][1]
    dyn = method_dynamics(a0, beta, tr.y, tr.presence, tr.weight, cfg.model.q, cfg.model.rho,
                          cfg.train.lr, 1, "dropout", params, learner, activation)
    np.testing.assert_allclose(dyn.alignment[1], mean, rtol=1e-10, atol=1e-12)


def test_neutral_methods_equal_plain_reduced_dynamics():
    cfg, tr, W0, v, a0, beta, _ = setup("symmetric", 2)
    args = (a0, beta, tr.y, tr.presence, tr.weight, 3.0, 1.0, 1.5, STEPS)
    plain = reduced_dynamics(*args)
    for method, params in (("none", {}), ("ogm", {"alpha": 0.0}), ("agm", {"alpha": 0.0}),
                           ("dropout", {"drop": [0.0, 0.0]}), ("ogm_ge", {"alpha": 0.0})):
        dyn = method_dynamics(*args, method=method, params=params)
        np.testing.assert_allclose(dyn.alignment, plain.alignment, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(dyn.learned_step, plain.learned_step)
    ogm = method_dynamics(*args, method="ogm", params={"alpha": 0.4})
    ogm_ge = method_dynamics(*args, method="ogm_ge", params={"alpha": 0.4})
    np.testing.assert_array_equal(ogm.alignment, ogm_ge.alignment)
    # ume and alternating are each modality alone
    alone = [reduced_dynamics(a0[r:r + 1], beta[r:r + 1], tr.y, tr.presence[:, r:r + 1], tr.weight,
                              3.0, 1.0, 1.5, STEPS) for r in range(2)]
    alt = method_dynamics(*args, method="alternating")
    for r in range(2):
        np.testing.assert_allclose(alt.alignment[:, r], alone[r].alignment[:, 0], rtol=1e-12,
                                   atol=1e-15)


def test_predictor_error_and_effective_rates():
    # A learned (large positive Psi), B not: errors on the samples where A is silent.
    a = np.array([[[0.9, -0.1]], [[0.0, 0.0]]])
    err = predictor_test_error(a, [2.0, 1.0], [0.8, 1.0])
    assert err == pytest.approx(0.2 * 0.5)  # A silent -> output 0 -> half
    assert predictor_test_error(a, [2.0, 1.0], [0.8, 1.0], mix=[0.0, 1.0]) == pytest.approx(0.5)
    kappa = np.array([[1.0], [2.0]])
    np.testing.assert_allclose(effective_rates("lr_scale", kappa, {"lr_scale": [2, 3]}), [[2], [6]])
    np.testing.assert_allclose(effective_rates("aux", kappa, {"aux_weight": [1, 0.5]}), [[2], [3]])
    np.testing.assert_allclose(effective_rates("dropout", kappa, {"drop": [0.5, 0.0]}), [[0.5], [2]])
    np.testing.assert_allclose(effective_rates("dropout", kappa, {"drop": [0.5, 0.0], "rescale": True}),
                               kappa)
    np.testing.assert_allclose(effective_rates("mmpareto", kappa), 3 * kappa)
    for name in ("none", "ogm", "ogm_ge", "agm", "alternating", "ume"):
        np.testing.assert_allclose(effective_rates(name, kappa), kappa)
    np.testing.assert_allclose(
        effective_rates("umt", kappa, {"distill_weight": 2.0}, teacher_unit=[1.0, 0.0], width=8),
        [[2.0], [2.0]])


@pytest.mark.parametrize("name", [n for n, s in REGISTRY.items() if not s.needs_trainable_head])
def test_predict_method_on_the_default_population(name):
    cfg = build_config(None, EARLIER_DEFAULT + ["data.modality.0.noise=0",
                              "data.modality.1.noise=0",
                              "data.population=true", f"method.name={name}"])
    data = make_experiment_data(cfg)
    a0 = np.stack([np.einsum("bid,d->bi", W, vr) for W, vr in zip(data.init, data.signals)])
    y, s, w = population_patterns([0.8, 1.0])
    pred = predict_method(cfg, [0, 1], a0, y, s, w)
    assert pred.method == name
    assert pred.dynamics.alignment.shape[1:] == (2, 1, 8)
    out = pred.to_json(["A", "B"])
    assert set(out["predicted_learned_step"]) == {"A", "B"}
    if name != "umt":  # umt at its default diverges here, see the test below
        assert 0.0 <= pred.test_error_noiseless <= 0.5
    if name == "none":
        plain = reduced_dynamics(a0, [2.0, 1.0], y, s, w, 3.0, 1.0, 1.0, 300)
        np.testing.assert_array_equal(pred.predicted_learned_step, plain.learned_step)
        assert not pred.co_learned  # the default: B is not learned by T jointly
    if name in ("alternating", "ume"):  # every modality as if alone
        for r in range(2):
            alone = reduced_dynamics(a0[r:r + 1], [2.0, 1.0][r:r + 1], y, s[:, r:r + 1], w, 3.0, 1.0,
                                     1.0, 300)
            assert pred.predicted_learned_step[r] == alone.learned_step[0]
    if name == "umt":
        assert pred.teacher_alignment is not None
    if name == "lr_scale":
        assert method_params(cfg, [0, 1]) == {"lr_scale": [1.0, 1.0]}


def test_umt_default_distillation_is_unstable_on_the_strong_modality():
    """Near a learned teacher the distillation term is a quadratic of curvature about
    lambda (2 / (B m)) pi beta^2 per neuron; GD on it is stable only below
    eta lambda (2 / (B m)) pi beta^2 = 2.  For A of the default (pi 0.8, beta 2,
    B m = 8, eta 1) the bound is lambda < 2.5: the published lambda = 10 diverges,
    lambda = 1 does not."""
    cfg = build_config(None, EARLIER_DEFAULT + ["data.modality.0.noise=0",
                              "data.modality.1.noise=0",
                              "data.population=true", "method.name=umt", "train.steps=120"])
    data = make_experiment_data(cfg)
    a0 = np.stack([np.einsum("bid,d->bi", W, vr) for W, vr in zip(data.init, data.signals)])
    y, s, w = population_patterns([0.8, 1.0])
    wild = predict_method(cfg, [0, 1], a0, y, s, w)
    assert wild.diverged and wild.to_json(["A", "B"])["diverged"] is True
    calm = predict_method(cfg.replace(**{"method.distill_weight": 1.0}), [0, 1], a0, y, s, w)
    assert not calm.diverged
    lead = calm.dynamics.leading_alignment[:, 0]
    assert np.all(np.isfinite(lead)) and abs(lead[-1] - calm.teacher_alignment[0].max()) < 0.01


def test_mmpareto_is_aux_with_weights_one_and_a_half_for_the_symmetric_learner():
    """Symmetric learner, population mode: per neuron both gradients are (drive) beta psi'(beta a)
    v_r with one drive per encoder, so they are parallel (cosine 1) and the step is
    1.5 (g_m + g_u): aux with w_0 = lambda_r = 1.5."""
    cfg, tr, W0, v, a0, beta, _ = setup("symmetric", 3)
    args = (a0, beta, tr.y, tr.presence, tr.weight, 3.0, 1.0, 1.5, STEPS)
    mmp = method_dynamics(*args, method="mmpareto")
    aux = method_dynamics(*args, method="aux", params={"fused_weight": 1.5, "aux_weight": [1.5] * 3})
    np.testing.assert_allclose(mmp.alignment, aux.alignment, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mmp.cosine, 1.0, rtol=1e-12)
    np.testing.assert_allclose(mmp.scale, 1.5, rtol=1e-14)


@pytest.mark.parametrize("method, params", [
    ("dropout", {"drop": [0.3, 0.0]}),
    ("dropout", {"drop": [0.5, 0.2], "rescale": True}),
    ("ogm_ge", {"alpha": 0.3}),
    ("ogm_ge", {"alpha": 0.1}),
])
def test_stochastic_methods_average_to_the_expected_update_dynamics(method, params):
    """Mean over a fixed set of 12 random streams of the reference training on 256 noise-free
    samples, against the expected-update dynamics on the same samples' patterns.

    Measured: A's learned step within 0.5 steps of the prediction on average; the mean
    leading alignment within 4.6 % (dropout) of the prediction at every step, within
    0.8 % for B; ogm_ge's mean drifts further from the prediction after A is learned
    (the noise along v_r makes the growth faster on average), up to 15 % for A."""
    cfg = build_config(None, EARLIER_DEFAULT + ["data.modality.0.noise=0",
                              "data.modality.1.noise=0",
                              "data.modality.0.dim=8", "data.modality.1.dim=8", "data.n_train=256"])
    data = make_experiment_data(cfg)
    tr = data.train
    a0 = np.stack([np.einsum("bid,d->bi", W, v) for W, v in zip(data.init, data.signals)])
    y, s, w = empirical_patterns(tr, [0, 1])
    T = 100
    dyn = method_dynamics(a0, [2.0, 1.0], y, s, w, 3.0, 1.0, 1.0, T, method, params)
    drop = np.array(params.get("drop", [0.0, 0.0]))
    leads, learned = [], []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        res = ref.train(tr.X, tr.y, tr.weight, data.init, steps=T, method=method, params=params,
                        masks=lambda t: (rng.random((tr.n, 2)) >= drop).astype(float),
                        noise=lambda t, r, shape: rng.standard_normal(shape), signals=data.signals)
        lead = res["alignment"].max(axis=(2, 3))
        leads.append(lead)
        learned.append(int(np.argmax(2.0 * lead[:, 0] >= 1.0)))
    mean = np.mean(leads, axis=0)
    rel = np.abs(mean - dyn.leading_alignment) / dyn.leading_alignment
    assert abs(np.mean(learned) - dyn.learned_step[0]) <= 1.0
    assert rel[:, 1].max() < 0.01
    assert rel[:, 0].max() < (0.05 if method == "dropout" else 0.2)


LEARNED = [  # every method with an exact reduction and a joint run (tests/test_registry.py)
    ("none", []), ("lr_scale", ["method.lr_scale=[0.3, 2.0]"]), ("ogm", ["method.alpha=0.3"]),
    ("agm", []), ("aux", []), ("alternating", []), ("mmpareto", []),
    ("umt", ["method.distill_weight=1"]), ("pmr", []), ("inforeg", []),
    # At boost 4 the rule's jump at ratio 1 makes the path depend on which side of 1 the
    # noisy run's ratio falls (seed 2: it crosses 1 late in the run, the boost moves to A,
    # learned at step 161 where the theory's A is never boosted nor learned); boost 2 keeps
    # the jump and the predictions within the common bound.
    ("ogm_boost", ["method.boost=2", "method.start=30"]),
    ("reconboost", []), ("greedy", []),
    ("relearning", []), ("gblending", []),
]
# The largest relative error of a learned step allowed per method (default 8 %): pmr's
# prototypes are class means of the noisy samples' features, which the patterns' features
# only approximate (measured: median 1.0 %, largest 10.6 %).
# gblending's weights divide by the squared overfitting O of each probe, which the input noise
# (absent from the theory) moves: measured median 2.7 %, at most 15.6 % (seeds 0-3).
LEARNED_MAX_ERROR = {"pmr": 0.12, "gblending": 0.2}


@pytest.mark.parametrize("name, extra", LEARNED)
def test_learned_steps_of_the_low_noise_default_are_predicted(name, extra):
    """The earlier default data (noise 0.02, 512 samples), trained jointly by the NumPy reference:
    the reduced dynamics on the run's own patterns and initial alignments predict the
    learned steps to a few percent. Measured over seeds 0-3: median relative error
    0.7-1.4 % per method, at most 7.8 %; whether a modality is learned by T agrees except
    for two cells within 10 steps of the horizon or with a leading alignment near 0.
    ogm_boost (boost 2, start 30), pmr and inforeg: median 1.0 / 1.0 / 0.9 %, largest
    3.1 / 10.6 / 4.2 %."""
    errors, agree = [], []
    for seed in range(4):
        cfg = build_config(None, EARLIER_DEFAULT + [f"method.name={name}", f"seed={seed}",
                                                    "train.mode=joint"] + extra)
        data = make_experiment_data(cfg)
        tr = data.train
        a0 = np.stack([np.einsum("bid,d->bi", W, v) for W, v in zip(data.init, data.signals)])
        y, s, w = empirical_patterns(tr, [0, 1])
        pred = predict_method(cfg, [0, 1], a0, y, s, w)
        teacher = None
        if name == "umt":
            teacher = ref.teacher_unit_outputs(tr.X, tr.y, tr.weight, data.init, steps=cfg.train.steps)
        if name in rb.METHODS:  # their own reference; the held-out methods with their sample
            hold = holdout_dataset(cfg, data)
            pred = predict_run_method(cfg, data, [0, 1], a0)
            res = rb.train(tr.X, tr.y, tr.weight, data.init, steps=cfg.train.steps, method=name,
                           params={k: v for k, v in method_params(cfg, [0, 1]).items()
                                   if k in rb.DEFAULTS[name]},
                           holdout=(hold.X, hold.y, hold.weight), signals=data.signals)
        else:
            res = ref.train(tr.X, tr.y, tr.weight, data.init, steps=cfg.train.steps, method=name,
                            params=method_params(cfg, [0, 1]), teacher_units=teacher,
                            signals=data.signals)
        hit = np.array([2.0, 1.0]) * res["alignment"].max(axis=(2, 3)) >= 1.0
        measured = np.where(hit.any(axis=0), hit.argmax(axis=0), -1)
        agree += list((pred.predicted_learned_step >= 0) == (measured >= 0))
        both = (measured > 0) & (pred.predicted_learned_step >= 0)
        errors += list(np.abs(pred.predicted_learned_step[both] - measured[both]) / measured[both])
    assert np.median(errors) <= 0.03 and max(errors) <= LEARNED_MAX_ERROR.get(name, 0.08)
    assert sum(agree) >= len(agree) - 1
