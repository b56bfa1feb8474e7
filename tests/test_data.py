import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp.config_file import build_config
from simcomp.data import IdentityDictionary, empirical_patterns, make_experiment_data


def small(*overrides):
    base = ["data.n_train=400", "data.n_test=300", "data.modality.0.dim=12",
            "data.modality.1.dim=9", "data.modality.0.beta=2.0", "data.modality.0.presence=0.8"]
    return build_config(None, base + list(overrides))


def test_shapes_and_labels():
    cfg = small("model.learner=class_banks", "model.width=3")
    data = make_experiment_data(cfg)
    assert [x.shape for x in data.train.X] == [(400, 12), (400, 9)]
    assert [x.shape for x in data.test.X] == [(300, 12), (300, 9)]
    assert set(np.unique(data.train.y)) <= {-1.0, 1.0}
    assert data.train.presence.shape == (400, 2)
    assert np.isclose(data.train.weight.sum(), 1.0)
    assert [w.shape for w in data.init] == [(2, 3, 12), (2, 3, 9)]


def test_sample_structure_without_noise():
    cfg = small("data.modality.0.noise=0.0", "data.modality.1.noise=0.0",
                "data.modality.0.distractors=3", "data.modality.0.distractor_strength=0.25",
                "data.modality.0.presence=0.6")
    data = make_experiment_data(cfg)
    X, y, s = data.train.X[0], data.train.y, data.train.presence[:, 0]
    # identity dictionary: coordinate 0 is y * beta * s, exactly k atoms of magnitude gamma elsewhere
    assert np.array_equal(X[:, 0], y * 2.0 * s)
    assert np.all(np.count_nonzero(X[:, 1:], axis=1) == 3)
    assert np.allclose(np.abs(X[:, 1:][X[:, 1:] != 0]), 0.25)
    assert abs(s.mean() - 0.6) < 0.1
    assert np.all(data.train.presence[:, 1] == 1)  # presence 1.0


def test_random_dictionary_is_orthogonal_and_signal_is_unit():
    cfg = small("data.modality.0.dictionary=random")
    data = make_experiment_data(cfg)
    M = data.dictionaries[0]
    assert np.allclose(M.T @ M, np.eye(12), atol=1e-12)
    assert np.isclose(np.linalg.norm(data.signals[0]), 1.0)
    assert not np.allclose(M, np.eye(12))


def test_noise_level():
    cfg = small("data.modality.0.noise=0.5", "data.modality.0.presence=0.0", "data.n_train=4000")
    X = make_experiment_data(cfg).train.X[0]
    assert abs(X.std() - 0.5) < 0.02


def test_same_seed_same_data_and_other_seed_differs():
    a, b = make_experiment_data(small()), make_experiment_data(small())
    assert all(np.array_equal(x, z) for x, z in zip(a.train.X, b.train.X))
    assert all(np.array_equal(x, z) for x, z in zip(a.init, b.init))
    c = make_experiment_data(small("seed=1"))
    assert not np.array_equal(a.train.X[0], c.train.X[0])
    assert not np.array_equal(a.init[0], c.init[0])


def test_changing_n_keeps_initial_weights_and_test_set():
    a = make_experiment_data(small())
    b = make_experiment_data(small("data.n_train=77"))
    assert all(np.array_equal(x, z) for x, z in zip(a.init, b.init))
    assert all(np.array_equal(x, z) for x, z in zip(a.test.X, b.test.X))
    assert b.train.X[0].shape == (77, 12)


def test_adding_a_modality_keeps_earlier_weights():
    a = make_experiment_data(small())
    b = make_experiment_data(small("data.modality.2.dim=5"))
    assert np.array_equal(a.init[0], b.init[0]) and np.array_equal(a.init[1], b.init[1])


def test_population_mode_points_and_weights():
    cfg = small("data.modality.0.noise=0.0", "data.modality.1.noise=0.0",
                "data.modality.1.presence=0.3", "data.population=true")
    data = make_experiment_data(cfg)
    assert data.test is data.train
    assert data.train.n == 2 ** 3
    assert np.isclose(data.train.weight.sum(), 1.0)
    for j in range(data.train.n):
        y, (s0, s1) = data.train.y[j], data.train.presence[j]
        expect = 0.5 * (0.8 if s0 else 0.2) * (0.3 if s1 else 0.7)
        assert np.isclose(data.train.weight[j], expect)
        assert np.array_equal(data.train.X[0][j], y * 2.0 * s0 * data.signals[0])
        assert np.array_equal(data.train.X[1][j], y * 1.0 * s1 * data.signals[1])


def test_empirical_patterns_sum_to_presence():
    data = make_experiment_data(small())
    y_pat, s_pat, w_pat = empirical_patterns(data.train, [0, 1])
    assert np.isclose(w_pat.sum(), 1.0)
    pi = data.train.weight @ data.train.presence
    assert np.allclose(w_pat @ s_pat, pi)
    assert np.isclose(w_pat[y_pat > 0].sum(), np.mean(data.train.y > 0))
    # one modality only
    _, s1, w1 = empirical_patterns(data.train, [1])
    assert s1.shape[1] == 1 and np.isclose(w1 @ s1[:, 0], pi[1])


@settings(deadline=None, max_examples=25)
@given(presence=st.floats(0.0, 1.0), n=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_presence_and_labels_property(presence, n, seed):
    cfg = small(f"data.modality.0.presence={presence!r}", f"data.n_train={n}", f"seed={seed}")
    data = make_experiment_data(cfg)
    s = data.train.presence[:, 0]
    if presence == 0.0:
        assert not s.any()
    if presence == 1.0:
        assert s.all()
    # a silent modality carries no label information beyond noise
    silent = s == 0
    assert np.all(np.abs(data.train.X[0][silent, 0]) < 0.2)
    assert np.array_equal(np.sign(data.train.X[0][~silent, 0]), data.train.y[~silent])


@pytest.mark.parametrize("k", [1, 3])
def test_k_modalities(k):
    mods = [{"dim": 4, "beta": 1.0 + r} for r in range(k)]
    from simcomp.config import config_from_dict

    cfg = config_from_dict({"data": {"modality": mods, "n_train": 10, "n_test": 5}})
    data = make_experiment_data(cfg)
    assert len(data.train.X) == len(data.init) == len(data.dictionaries) == k
    assert data.train.presence.shape == (10, k)


def test_identity_dictionary_acts_as_the_identity_without_its_entries():
    M = IdentityDictionary(5)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((2, 3, 5))
    eye = np.eye(5)
    assert np.array_equal(W @ M, W @ eye) and (W @ M) is not W
    z = rng.standard_normal((4, 5))
    assert np.array_equal(M @ z.T, eye @ z.T) and np.array_equal(z @ M.T, z @ eye.T)
    assert np.array_equal(M[:, 3], eye[:, 3]) and np.array_equal(np.asarray(M), eye)
    assert M.shape == (5, 5) and M.T is M
    with pytest.raises(ValueError, match="does not fit a"):
        np.ones((2, 4)) @ M


def test_identity_dictionary_is_never_materialised():
    """A dimension whose dense identity would take 75 GiB costs only the samples."""
    cfg = small("data.modality.0.dim=100000", "data.n_train=4", "data.n_test=4",
                "data.modality.0.noise=0.1")
    data = make_experiment_data(cfg)
    assert isinstance(data.dictionaries[0], IdentityDictionary)
    assert data.train.X[0].shape == (4, 100000)
    assert np.array_equal(data.signals[0][:2], [1.0, 0.0])


def test_identity_data_equal_the_dense_product_bit_for_bit():
    """X = z + 0 gives what z @ eye(d).T gave, signed zeros of absent signals included."""
    cfg = small("data.modality.0.presence=0.5", "data.modality.0.noise=0")
    data = make_experiment_data(cfg)
    mod = cfg.data.modality[0]
    z = np.zeros((data.train.n, mod.dim))
    z[:, 0] = data.train.y * mod.beta * data.train.presence[:, 0]
    assert np.any(np.signbit(z[:, 0]) & (z[:, 0] == 0))  # -0.0 present: the case is exercised
    assert data.train.X[0].tobytes() == (z @ np.eye(mod.dim).T).tobytes()


@pytest.mark.parametrize("learner", ["symmetric", "class_banks"])
def test_a_runs_prediction_uses_its_training_set(learner):
    """experiment.predict_run takes pi from the run's training set (not the test set, not p_r)."""
    from simcomp import theory
    from simcomp.experiment import predict_run

    cfg = small(f"model.learner={learner}", "data.n_train=50", "data.n_test=60",
                "data.modality.0.presence=0.5", "data.modality.1.presence=0.7")
    data = make_experiment_data(cfg)
    a0 = np.full((2, cfg.model.banks, cfg.model.width), 0.01)
    pred = predict_run(cfg, data, [0, 1], a0)
    want = theory.presence_fraction(*empirical_patterns(data.train, [0, 1]), cfg.model.banks)
    np.testing.assert_array_equal(pred.pi, want)
    other = theory.presence_fraction(*empirical_patterns(data.test, [0, 1]), cfg.model.banks)
    assert not np.allclose(want, other)  # the two sets differ, so the test tells them apart
    configured = np.array([0.5, 0.7])[:, None] / cfg.model.banks
    assert not np.allclose(want, configured)


def test_empirical_patterns_sum_the_sample_weights():
    """Pattern weights are sums of sample weights (not counts): exact for unequal weights."""
    cfg = small("data.population=true", "data.modality.0.noise=0", "data.modality.1.noise=0",
                "data.modality.0.presence=0.3", "data.modality.1.presence=0.6")
    data = make_experiment_data(cfg)
    y_pat, s_pat, w_pat = empirical_patterns(data.train, [0, 1])
    p = np.array([0.3, 0.6])
    want = 0.5 * np.prod(np.where(s_pat == 1, p, 1.0 - p), axis=1)
    np.testing.assert_allclose(w_pat, want, rtol=1e-15)
    assert sorted(zip(y_pat, map(tuple, s_pat))) == sorted(
        (y, (a, b)) for y in (-1.0, 1.0) for a in (0, 1) for b in (0, 1))
