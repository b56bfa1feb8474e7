"""simcomp.methods: per-run keyword arguments of the training rule, predictor weights, streams."""

import numpy as np
import pytest

from simcomp import data as data_mod
from simcomp.config_file import build_config
from simcomp.methods import (
    STOCHASTIC_METHODS,
    is_deterministic,
    method_key,
    method_seed_sequence,
    plain_rule_kwargs,
    predictor_weights,
    rule_kwargs,
    teacher_steps,
    trains_joint,
    unit_outputs,
)

THREE = ["data.modality.2.beta=0.5"]


def test_determinism_flags():
    assert set(STOCHASTIC_METHODS) == {"dropout", "ogm_ge", "opm"}
    for name in ("none", "lr_scale", "ogm", "agm", "aux", "alternating", "mmpareto", "umt", "ume",
                 "ogm_boost", "pmr", "inforeg"):
        assert is_deterministic(name)
    assert not is_deterministic("dropout") and not is_deterministic("ogm_ge")
    assert trains_joint("ogm") and not trains_joint("ume")
    with pytest.raises(ValueError, match="unknown method 'x'"):
        is_deterministic("x")


def test_per_modality_lists_are_restricted_to_the_trained_modalities():
    cfg = build_config(None, THREE + ["method.name=lr_scale", "method.lr_scale=[1, 2, 3]"])
    kw = rule_kwargs(cfg, [0, 1, 2])
    assert kw["name"] == "lr_scale" and kw["K"] == 3 and kw["lr_scale"] == [1.0, 2.0, 3.0]
    assert rule_kwargs(cfg, [2, 0])["lr_scale"] == [1.0, 3.0]  # config order
    assert rule_kwargs(cfg, [1])["lr_scale"] == [2.0]
    cfg = build_config(None, THREE + ["method.name=dropout", "method.drop=[0.1, 0.2, 0.3]"])
    kw = rule_kwargs(cfg, [1, 2])
    assert kw["drop"] == [0.2, 0.3] and kw["rescale"] is False
    cfg = build_config(None, THREE + ["method.name=aux", "method.aux_weight=2"])
    kw = rule_kwargs(cfg, [0, 2])
    assert kw["aux_weight"] == [2.0, 2.0] and kw["fused_weight"] == 1.0
    cfg = build_config(None, ["method.name=alternating", "method.mix=[0.55, 0.45]"])
    assert rule_kwargs(cfg, [0, 1])["mix"] == [0.55, 0.45]
    np.testing.assert_array_equal(predictor_weights(cfg, [0, 1]), [0.55, 0.45])
    np.testing.assert_array_equal(predictor_weights(cfg, [1]), [0.45])


def test_scalar_settings_and_defaults():
    cfg = build_config(None, ["method.name=ogm"])
    kw = rule_kwargs(cfg, [0, 1])
    assert (kw["alpha"], kw["start"], kw["stop"]) == (0.1, 0, None)
    cfg = build_config(None, ["method.name=agm", "method.stop=40"])
    kw = rule_kwargs(cfg, [0, 1])
    assert (kw["alpha"], kw["start"], kw["stop"]) == (1.0, 0, 40)
    for name in ("none", "mmpareto", "ume"):
        kw = rule_kwargs(build_config(None, [f"method.name={name}"]), [0, 1])
        assert set(kw) == {"name", "K", "key"}
        assert kw["name"] == ("none" if name == "ume" else name)
    np.testing.assert_array_equal(predictor_weights(build_config(None, ["method.name=aux"]), [0, 1]),
                                  [1.0, 1.0])
    assert plain_rule_kwargs(2) == {"name": "none", "K": 2}


def test_umt_needs_teacher_units_of_the_right_shape():
    cfg = build_config(None, ["method.name=umt", "method.teacher_steps=50"])
    assert teacher_steps(cfg) == 50
    assert teacher_steps(build_config(None, ["method.name=umt"])) == 300
    with pytest.raises(ValueError, match="needs teacher_units"):
        rule_kwargs(cfg, [0, 1])
    m = cfg.model.width
    with pytest.raises(ValueError, match=rf"shape \(K_run=2, B=1, m={m}, n\)"):
        rule_kwargs(cfg, [0, 1], teacher_units=np.zeros((2, 1, m - 1, 5)))
    kw = rule_kwargs(cfg, [0, 1], teacher_units=np.zeros((2, 1, m, 5)))
    assert kw["distill_weight"] == 10.0 and kw["teacher_units"].shape == (2, 1, m, 5)


def test_bad_trained_indices():
    cfg = build_config(None, [])
    for bad in ([], [2], [0, 0], [-1]):
        with pytest.raises(ValueError, match="trained modalities must be distinct"):
            rule_kwargs(cfg, bad)


def test_method_stream_leaves_the_data_streams_alone():
    # Spawning five children gives the data's four unchanged, plus the method's.
    four = np.random.SeedSequence(7).spawn(4)
    five = np.random.SeedSequence(7).spawn(5)
    for a, b in zip(four, five):
        assert a.generate_state(4).tolist() == b.generate_state(4).tolist()
    assert method_seed_sequence(7).spawn_key == (4,)
    assert method_seed_sequence(7).generate_state(4).tolist() == five[4].generate_state(4).tolist()
    key = method_key(7)
    assert 0 <= key < 2**63 and key == method_key(7) and key != method_key(8)
    # The key is the stream's first word with its top bit cleared (it must fit an int64);
    # among these seeds some first words have the top bit set.
    words = [int(method_seed_sequence(s).generate_state(1, dtype=np.uint64)[0]) for s in range(16)]
    assert any(w >= 2**63 for w in words)
    assert [method_key(s) for s in range(16)] == [w & (2**63 - 1) for w in words]
    # The data module still uses four streams, so its draws are unchanged by the method.
    assert data_mod._STREAM_INIT == 3 and data_mod._STREAM_METHOD == 4
    cfg = build_config(None, ["data.n_train=8", "data.n_test=8"])
    cfg_m = build_config(None, ["data.n_train=8", "data.n_test=8", "method.name=dropout"])
    d0, d1 = data_mod.make_experiment_data(cfg), data_mod.make_experiment_data(cfg_m)
    np.testing.assert_array_equal(d0.train.X[0], d1.train.X[0])
    np.testing.assert_array_equal(d0.init[1], d1.init[1])


def test_unit_outputs_are_psi_and_act():
    rng = np.random.default_rng(0)
    cfg = build_config(None, ["model.rho=0.5"])
    W = [rng.normal(size=(1, 8, 3)), rng.normal(size=(1, 8, 2))]
    X = [rng.normal(size=(5, 3)), rng.normal(size=(5, 2))]
    units = unit_outputs(cfg, W, X)
    assert units.shape == (2, 1, 8, 5)
    z = W[0][0, 3] @ X[0][2]
    az = abs(z)
    expected = az**3 / (3 * 0.25) if az <= 0.5 else az - (2 / 3) * 0.5
    assert units[0, 0, 3, 2] == pytest.approx(np.sign(z) * expected, rel=1e-14)
    cfg = build_config(None, ["model.learner=class_banks", "model.activation=relu"])
    Wb = [rng.normal(size=(2, 8, 3))]
    units = unit_outputs(cfg, Wb, X[:1])
    assert units.shape == (1, 2, 8, 5)
    assert units[0, 1, 0, 4] == pytest.approx(max(0.0, Wb[0][1, 0] @ X[0][4]), rel=1e-14)


def test_method_results():
    from simcomp.methods import method_results

    y = np.array([1.0, -1.0, 1.0, 1.0])
    phi = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    uni = np.array([[2.0, 1.0], [-2.0, -1.0], [0.0, 1.0], [0.0, 1.0]])
    out = method_results(build_config(None, []), [0, 1], phi, y, phi_unimodal=uni)
    np.testing.assert_allclose(out["shapley"], [0.25, 0.125])
    assert out["method_test_error"] == pytest.approx(0.125) and out["ensemble_test_error"] == 0.0
    cfg = build_config(None, ["method.name=alternating", "method.mix=[0, 1]"])
    assert method_results(cfg, [0, 1], phi, y)["method_test_error"] == pytest.approx(0.375)
    cfg = build_config(None, ["method.name=ume"])
    assert method_results(cfg, [0, 1], phi, y, phi_unimodal=uni)["method_test_error"] == 0.0
    assert method_results(cfg, [0, 1], phi, y)["method_test_error"] is None


def test_shapley_values_up_to_their_limit_and_null_beyond():
    from simcomp.methods import method_results
    from simcomp.shapley import MAX_MODALITIES

    names = [f"data.modality.{r}.name=M{r}" for r in range(2, MAX_MODALITIES + 1)]
    cfg = build_config(None, names)  # MAX_MODALITIES + 1 modalities
    rng = np.random.default_rng(0)
    y = rng.choice([-1.0, 1.0], 64)
    phi = rng.standard_normal((64, MAX_MODALITIES + 1))
    at_limit = method_results(cfg, list(range(MAX_MODALITIES)), phi[:, :MAX_MODALITIES], y)
    assert np.all(np.isfinite(at_limit["shapley"])) and at_limit["shapley"].shape == (8,)
    # Shapley values are efficient: they add up to v(all) - v(empty) = accuracy - 1/2
    acc = 1.0 - at_limit["method_test_error"]
    assert at_limit["shapley"].sum() == pytest.approx(acc - 0.5)
    beyond = method_results(cfg, list(range(MAX_MODALITIES + 1)), phi, y)
    assert beyond["shapley"].shape == (MAX_MODALITIES + 1,)
    assert np.all(np.isnan(beyond["shapley"]))  # not computed: null in summary.json and CSV
    assert beyond["method_test_error"] is not None
