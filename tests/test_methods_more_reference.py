"""The NumPy references of ogm_boost, opm, pmr and inforeg: hand-written gradients against
finite differences, the settings that reduce them to plain training, and the weight-space
reference trainer in population mode against the alignment-space reference dynamics."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_methods as ref
import reference_methods_more as more
from reference_method_dynamics_more import ref_dynamics_more
from test_methods_reference import FORMS, assert_grad_close, fd_grad, problem, shapes
from test_theory_methods import FORMS as THEORY_FORMS
from test_theory_methods import setup

STEPS = 15


@settings(max_examples=25, deadline=None)
@given(**shapes, lam=st.floats(0.0, 3.0), pseed=st.integers(0, 1000))
def test_pmr_unit_gradient_matches_finite_differences(seed, K, m, n, form, scale, lam, pseed):
    X, y, omega, W = problem(seed, 1, m, n, form, scale)
    F = W[0].shape[0] * m
    proto = np.random.default_rng(pseed).normal(size=(2, F))
    got = more.pmr_unit_grad(X[0], y, omega, W[0], form, 3.0, 1.0, proto, lam)
    want = fd_grad(lambda V: more.pmr_loss(X[0], y, omega, V[0], form, 3.0, 1.0, proto, lam), W)
    assert_grad_close([got], want)


def test_pmr_zero_distance_contributes_nothing():
    H = np.array([[1.0, 2.0], [0.5, 0.5]])
    y = np.array([1.0, -1.0])
    proto = np.array([[0.0, 0.0], [1.0, 2.0]])  # sample 0 sits on its own prototype
    E = more.pmr_unit_coefficients(H, y, np.array([0.5, 0.5]), proto, 1.0)
    delta = more.pmr_margin(H, y, proto)[0]
    u_other = H[0] / np.linalg.norm(H[0])
    np.testing.assert_allclose(E[0], 0.5 * -more.sigmoid(-delta[0]) * u_other, rtol=1e-15)
    assert np.all(np.isfinite(E))


def test_inforeg_window_statistic_by_hand():
    assert more.inforeg_window_stat([], 3) == 1.0
    assert more.inforeg_window_stat([2.0], 3) == pytest.approx(1.0)
    # tr1 = (2 + 4) / 3, tr2 = (0 + 2) / 3 -> k = (6 - 2) / 6
    assert more.inforeg_window_stat([2.0, 4.0], 3) == pytest.approx(4.0 / 6.0)
    # window 2 over [1, 2, 3, 5]: tr1 = (3 + 5) / 2, tr2 = (2 + 3) / 2
    assert more.inforeg_window_stat([1.0, 2.0, 3.0, 5.0], 2) == pytest.approx(3.0 / 8.0)
    assert more.inforeg_window_stat([0.0, 0.0], 2) == 0.0
    lead, beta = more.inforeg_beta(np.array([0.6, 0.7, 0.5]), np.array([0, 0.5, 0]), 0.1, 2.0, 0.04)
    assert lead == 1 and beta == pytest.approx(0.1 * np.exp(np.tanh(2.0 * 0.15)))
    assert more.inforeg_beta(np.array([0.6, 0.7]), np.array([1.0, 0.01]), 0.1, 2.0, 0.04)[1] == 0.0


def test_opm_drop_probabilities():
    q, theta = more.opm_drop(np.array([1.5, 1 / 1.5]), 0.5, 0.5)
    assert q[1] == 0.0 and q[0] == pytest.approx(0.5 * (1 + 0.5 * np.tanh(0.5)))
    assert theta == pytest.approx(q[0] / 2)
    q, _ = more.opm_drop(np.array([9.0, 0.1]), 0.9, 5.0)
    assert q[0] == 1.0  # capped


# --------------------------------------------------------------------------- identities


def run(X, y, omega, W, form, method, steps=STEPS, **params):
    return more.train(X, y, omega, W, form=form, q=3.0, rho=1.0, eta=0.9, steps=steps,
                      method=method, params=params)


def plain(X, y, omega, W, form, steps=STEPS):
    return ref.train(X, y, omega, W, form=form, q=3.0, rho=1.0, eta=0.9, steps=steps)


@pytest.fixture(params=[(form, K) for form in FORMS for K in (1, 2, 3)], ids=str)
def prob(request):
    form, K = request.param
    X, y, omega, W = problem(11 + K, K, 3, 12, form, scale=0.6)
    return X, y, omega, W, form


def same(a, b, rtol=0.0):
    for x, z in zip(a["W"], b["W"]):
        np.testing.assert_allclose(x, z, rtol=rtol, atol=0)


def test_neutral_settings_equal_plain_training(prob):
    X, y, omega, W, form = prob
    K = len(X)
    base = plain(X, y, omega, W, form)
    same(run(X, y, omega, W, form, "ogm_boost", boost=1.0, start=0), base)
    same(run(X, y, omega, W, form, "ogm_boost", boost=3.0, start=STEPS), base)
    same(run(X, y, omega, W, form, "opm", execute_prob=0.0, start=0), base)
    same(run(X, y, omega, W, form, "opm", q_base=0.0, start=0), base)
    same(run(X, y, omega, W, form, "pmr", alpha=0.0), base)
    same(run(X, y, omega, W, form, "pmr", alpha=0.6, start=STEPS), base)
    aux = ref.train(X, y, omega, W, form=form, q=3.0, rho=1.0, eta=0.9, steps=STEPS,
                    method="aux", params={"aux_weight": [0.7] * K})
    same(run(X, y, omega, W, form, "inforeg", prox_weight=0.0, aux_weight=0.7), aux, 1e-15)


def test_ogm_boost_boosts_the_modality_behind(prob):
    X, y, omega, W, form = prob
    K = len(X)
    res = run(X, y, omega, W, form, "ogm_boost", boost=4.0, start=2)
    assert np.all(res["scale"][:2] == 1.0)
    if K == 1:
        assert np.all(res["scale"] == 1.0)
        return
    behind = res["ratio"][2:] < 1.0
    np.testing.assert_array_equal(res["scale"][2:], np.where(behind, 4.0, 1.0))
    if K == 2:  # the published two-modality rule: the lower score is boosted
        low = res["score"][2:].argmin(axis=1)
        np.testing.assert_array_equal(res["scale"][2:][np.arange(low.size), low], 4.0)
    # one step of it is the plain gradient times k_r
    one = run(X, y, omega, W, form, "ogm_boost", steps=1, boost=4.0, start=0)
    base = plain(X, y, omega, W, form, steps=1)
    for r in range(K):
        np.testing.assert_allclose(W[r] - one["W"][r], one["scale"][0, r] * (W[r] - base["W"][r]),
                                   rtol=1e-12, atol=1e-300)


def test_opm_mask_drops_the_encoder_and_rescales_the_others(prob):
    X, y, omega, W, form = prob
    K = len(X)
    if K == 1:
        res = run(X, y, omega, W, form, "opm", start=0, execute_prob=1.0)
        assert np.all(res["scale"] == 0.0)
        same(res, plain(X, y, omega, W, form))
        return
    seen = {}

    def draws(t, q):
        seen[t] = q.copy()
        return True, np.tile((q == 0).astype(float), (y.size, 1))  # drop every leader

    # step 0 is plain (no previous scores); step 1 drops with q_r from step 0's ratios
    res = more.train(X, y, omega, W, form=form, eta=0.9, steps=2, method="opm",
                     params={"start": 0, "q_base": 0.6}, draws=draws)
    W1 = plain(X, y, omega, W, form, steps=1)["W"]
    assert np.all(seen[0] == 0.0) and np.all(res["scale"][0] == 0.0)
    q = seen[1]
    np.testing.assert_array_equal(res["scale"][1], q)
    ratio0 = more.score_ratio(res["score"][0])
    np.testing.assert_allclose(q, more.opm_drop(ratio0, 0.6, 0.5)[0], rtol=1e-15)
    assert q.max() > 0 and q.min() == 0  # a leader, and the weakest is never dropped
    for lead in np.flatnonzero(q > 0):
        np.testing.assert_array_equal(res["W"][lead], W1[lead])
    # the others train on the kept outputs rescaled by 1 / (1 - theta): the same as a plain
    # step of the kept encoders with phi and the coefficient both scaled
    theta = q.mean()
    keep = list(np.flatnonzero(q == 0))
    enc = [ref.encoder(X[r], W1[r], form, 3.0, 1.0) for r in keep]
    ft = np.sum([e[3] for e in enc], axis=0) / (1 - theta)
    for e, r in zip(enc, keep):
        g = ref.chain(X[r], W1[r], e[2], omega * y * ref.lprime(y * ft) / (1 - theta))
        np.testing.assert_allclose(res["W"][r], W1[r] - 0.9 * g, rtol=1e-13, atol=1e-15)


def test_inforeg_pulls_the_leader_towards_its_anchor(prob):
    X, y, omega, W, form = prob
    K = len(X)
    res = run(X, y, omega, W, form, "inforeg", steps=STEPS, prox_weight=0.3, every=4,
              trace_window=2, threshold=-1e6, gap_scale=5.0)
    if K == 1:
        assert np.all(res["scale"] == 0.0)
        return
    lead = res["score"].argmax(axis=1)
    beta = res["scale"][np.arange(STEPS), lead]
    assert np.all(beta > 0.3 * np.exp(-1)) and np.all(beta < 0.3 * np.exp(1))
    assert np.all(np.delete(res["scale"].ravel(), np.arange(STEPS) * K + lead) == 0.0)
    # the first epoch's k is 1, the second's the trace ratio 1 (one closed epoch)
    np.testing.assert_array_equal(res["ratio"][:8], 1.0)
    assert np.all(res["ratio"][8:] < 1.0)


# --------------------------------------------------------------------------- population


CASES = {
    "ogm_boost": {"boost": 3.0, "start": 2},
    "ogm_boost_window": {"boost": 2.0, "start": 0, "stop": 12},
    "pmr": {"alpha": 0.8, "momentum": 0.3, "proto_every": 2},
    "pmr_stop": {"alpha": 1.0, "momentum": 0.0, "start": 3, "stop": 30},
    "inforeg": {"prox_weight": 0.3, "every": 5, "trace_window": 3, "threshold": -1.0,
                "aux_weight": [1.0, 0.5, 2.0]},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("form, K", [("symmetric", 2), ("symmetric", 3), ("class_banks", 2),
                                     ("relu", 2), ("relu", 3)])
def test_reference_dynamics_equal_population_training(case, form, K):
    cfg, tr, W0, v, a0, beta, form = setup(form, K)
    learner, activation = THEORY_FORMS[form]
    method = case.split("_window")[0].split("_stop")[0]
    params = {k: (v_[:K] if isinstance(v_, list) else v_) for k, v_ in CASES[case].items()}
    steps = 40
    res = more.train(tr.X, tr.y, tr.weight, W0, form=form, q=cfg.model.q, rho=cfg.model.rho,
                     eta=cfg.train.lr, steps=steps, method=method, params=params, signals=v)
    dyn = ref_dynamics_more(a0, beta, tr.y, tr.presence, tr.weight, cfg.model.q, cfg.model.rho,
                            cfg.train.lr, steps, method, params, learner, activation)
    scale = np.abs(res["alignment"]).max()
    np.testing.assert_allclose(dyn.alignment, res["alignment"], rtol=1e-10, atol=1e-10 * scale)
    for key in ("score", "ratio", "scale", "cosine"):
        np.testing.assert_allclose(getattr(dyn, key), res[key], rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=key)
    # the method acted
    if method == "ogm_boost":
        assert (dyn.scale > 1.0).any()
    elif method == "pmr" and not (form == "symmetric" and params.get("momentum") == 0.0):
        assert (dyn.scale > 0.0).any()
    elif method == "inforeg":
        assert (dyn.scale > 0.0).any()


def test_pmr_prototypes_and_lambda_lag_one_step(prob):
    X, y, omega, W, form = prob
    K = len(X)
    res = run(X, y, omega, W, form, "pmr", steps=4, alpha=0.9, momentum=0.0)
    assert np.all(np.isnan(res["score"][0])) and np.all(res["scale"][:2] == 0.0)
    # step 1: prototypes are the class means of step 0's features, lam of step 2 from them
    W1 = plain(X, y, omega, W, form, steps=1)["W"]
    H0 = [ref.encoder(X[r], W[r], form, 3.0, 1.0)[1].reshape(-1, y.size).T for r in range(K)]
    H1 = [ref.encoder(X[r], W1[r], form, 3.0, 1.0)[1].reshape(-1, y.size).T for r in range(K)]
    proto = [more.class_means(H0[r], y, omega) for r in range(K)]
    pscore = np.array([omega @ more.sigmoid(more.pmr_margin(H1[r], y, proto[r])[0])
                       for r in range(K)])
    np.testing.assert_allclose(res["score"][1], pscore, rtol=1e-12)
    np.testing.assert_allclose(res["scale"][2], more.pmr_lambda(pscore, 0.9, True), rtol=1e-12)
    if K > 1:
        assert res["scale"][2].max() > 0 and res["scale"][2].min() == 0


@pytest.mark.parametrize("form, K", [("symmetric", 2), ("relu", 3), ("class_banks", 2)])
def test_opm_expected_step_is_the_coin_and_mask_average(form, K):
    """Step 1 (q_r from step 0's scores) averaged over the coin and every mask, against the
    expected-update dynamics (their step 0 is plain, as the trainer's)."""
    cfg, tr, W0, v, a0, beta, form = setup(form, K)
    learner, activation = THEORY_FORMS[form]
    params = {"start": 0, "q_base": 0.6, "alpha": 0.8, "execute_prob": 0.7}
    kw = dict(form=form, q=cfg.model.q, rho=cfg.model.rho, eta=cfg.train.lr, steps=2,
              method="opm", params=params, signals=v)
    mean = np.zeros_like(a0)
    qs = {}
    for ex in (False, True):
        for bits in itertools.product((0.0, 1.0), repeat=K):
            delta = np.array(bits)

            def draws(t, q):
                qs[t] = q
                return ex, np.tile(delta if t == 1 else np.ones(K), (tr.n, 1))

            res = more.train(tr.X, tr.y, tr.weight, W0, draws=draws, **kw)
            q = qs[1]
            if ex:
                prob = params["execute_prob"] * np.prod(np.where(delta == 1, 1 - q, q))
            else:  # a plain step, whatever the masks
                prob = (1 - params["execute_prob"]) / 2 ** K
            mean += prob * res["alignment"][2]
    assert qs[1].max() > 0  # a leader is dropped
    dyn = ref_dynamics_more(a0, beta, tr.y, tr.presence, tr.weight, cfg.model.q, cfg.model.rho,
                            cfg.train.lr, 2, "opm", params, learner, activation)
    np.testing.assert_allclose(dyn.alignment[2], mean, rtol=1e-10, atol=1e-12)
