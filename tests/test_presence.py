"""Correlated presence coins in the data (simcomp.presence, data.presence_correlation)."""

import math
from itertools import product

import numpy as np
import pytest

from simcomp.config import ConfigError
from simcomp.config_file import build_config
from simcomp.data import make_experiment_data
from simcomp.presence import (
    correlated_presence,
    normal_cdf,
    normal_quantile,
    pattern_probabilities,
)


def small(*overrides):
    base = ["data.n_train=300", "data.n_test=200", "data.modality.0.dim=6",
            "data.modality.1.dim=5", "data.modality.0.presence=0.8",
            "data.modality.1.presence=0.6"]
    return build_config(None, base + list(overrides))


def _index(s):
    K = s.shape[1]
    return s.astype(np.int64) @ (2 ** np.arange(K - 1, -1, -1))


def test_quantile_inverts_cdf():
    u = np.array([1e-250, 1e-9, 0.003, 0.2, 0.5, 0.77, 0.999, 1.0 - 1e-9])
    x = normal_quantile(u)
    assert np.allclose(normal_cdf(x), u, rtol=1e-13, atol=0.0)
    assert normal_quantile(np.array([0.0, 1.0])).tolist() == [-math.inf, math.inf]


@pytest.mark.parametrize("c", [-0.9, -0.3, 0.0, 0.4, 0.95])
def test_two_modalities_at_median_thresholds_match_sheppard(c):
    # p = 1/2: P(both present) = P(z1 < 0, z2 < 0) = 1/4 + asin(c) / (2 pi) (Sheppard)
    probs = pattern_probabilities([0.5, 0.5], c)
    both = 0.25 + math.asin(c) / (2 * math.pi)
    assert probs == pytest.approx([both, 0.5 - both, 0.5 - both, both], abs=1e-13)


@pytest.mark.parametrize("c", [-0.45, -0.2, 0.3, 0.8])
def test_three_modalities_at_median_thresholds_closed_form(c):
    # P(z1, z2, z3 < 0) = 1/8 + 3 asin(c) / (4 pi); by symmetry also P(all >= 0)
    probs = pattern_probabilities([0.5, 0.5, 0.5], c)
    orth = 0.125 + 3 * math.asin(c) / (4 * math.pi)
    assert probs[7] == pytest.approx(orth, abs=1e-12)
    assert probs[0] == pytest.approx(orth, abs=1e-12)
    assert probs.sum() == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("p", [[0.8, 0.3, 0.6], [0.05, 0.97, 0.5, 0.7]])
@pytest.mark.parametrize("c", [-0.3, 0.2, 0.9])
def test_pattern_probabilities_have_the_right_marginals_and_pairs(p, c):
    probs = pattern_probabilities(p, c)
    K = len(p)
    s = np.array(list(product((0, 1), repeat=K)))
    assert probs.min() >= 0.0 and probs.sum() == pytest.approx(1.0, abs=1e-13)
    assert probs @ s == pytest.approx(p, abs=1e-13)  # marginals are p_r whatever c
    # every pair's joint presence is the two-modality answer (marginals of an equicorrelated vector)
    for i in range(K):
        for j in range(i + 1, K):
            pair = pattern_probabilities([p[i], p[j]], c)[3]
            assert probs @ (s[:, i] * s[:, j]) == pytest.approx(pair, abs=1e-12)


def test_deterministic_modalities_factor_out():
    probs = pattern_probabilities([0.7, 1.0, 0.4, 0.0], -0.2)
    s = np.array(list(product((0, 1), repeat=4)))
    ok = (s[:, 1] == 1) & (s[:, 3] == 0)
    assert np.all(probs[~ok] == 0.0)
    assert probs[ok] == pytest.approx(pattern_probabilities([0.7, 0.4], -0.2), abs=1e-15)


def test_full_overlap_is_one_shared_coin():
    p = [0.8, 0.3, 0.6]
    probs = pattern_probabilities(p, 1.0)
    # nested: present in 0.3 -> 110..; the patterns are 111 (0.3), 101 (0.3), 100 (0.2), 000 (0.2)
    expect = np.zeros(8)
    expect[0b111], expect[0b101], expect[0b100], expect[0b000] = 0.3, 0.3, 0.2, 0.2
    assert probs == pytest.approx(expect, abs=1e-12)
    s = correlated_presence(np.random.default_rng(0).standard_normal((5000, 3)), p, 1.0)
    assert np.all(s[:, 1] <= s[:, 2]) and np.all(s[:, 2] <= s[:, 0])


@pytest.mark.parametrize("p, c", [([0.8, 0.3, 0.6], -0.4), ([0.8, 0.3, 0.6], 0.6),
                                  ([0.7, 0.45], -1.0), ([0.6, 0.5, 0.3, 0.9], -0.3)])
def test_sampled_patterns_match_the_probabilities(p, c):
    """Monte Carlo: 400000 samples, every pattern within 4.5 standard errors."""
    n = 400_000
    e = np.random.default_rng(7).standard_normal((n, len(p)))
    freq = np.bincount(_index(correlated_presence(e, p, c)), minlength=2 ** len(p)) / n
    probs = pattern_probabilities(p, c)
    se = np.sqrt(probs * (1 - probs) / n) + 1e-12
    assert np.all(np.abs(freq - probs) <= 4.5 * se)


def test_sampled_data_correlation_changes_only_the_presence():
    base = make_experiment_data(small())
    corr = make_experiment_data(small("data.presence_correlation=0.7"))
    assert np.array_equal(base.train.y, corr.train.y)
    assert all(np.array_equal(a, b) for a, b in zip(base.init, corr.init))
    assert not np.array_equal(base.train.presence, corr.train.presence)
    s = corr.train.presence
    # the samples still carry each modality's signal exactly where s says
    assert np.array_equal(np.abs(corr.train.X[0][:, 0]) > 1.0, s[:, 0] == 1)  # beta 3, noise 0.05


def test_sampled_data_is_correlated_as_configured():
    cfg = small("data.presence_correlation=0.6", "data.n_train=60000")
    s = make_experiment_data(cfg).train.presence
    probs = pattern_probabilities([0.8, 0.6], 0.6)
    both = np.mean((s[:, 0] == 1) & (s[:, 1] == 1))
    assert both == pytest.approx(probs[3], abs=4 * math.sqrt(probs[3] * (1 - probs[3]) / 60000))
    assert both > 0.8 * 0.6 + 0.03  # clearly above independence


@pytest.mark.parametrize("c", [-0.35, 0.5])
def test_population_mode_weights_are_the_pattern_probabilities(c):
    cfg = small("data.population=true", f"data.presence_correlation={c}",
                "data.modality.2.dim=4", "data.modality.2.presence=0.3",
                *[f"data.modality.{r}.noise=0.0" for r in range(3)])
    train = make_experiment_data(cfg).train
    probs = pattern_probabilities([0.8, 0.6, 0.3], c)
    assert train.weight == pytest.approx(0.5 * np.concatenate([probs, probs]), abs=1e-15)
    assert np.array_equal(train.presence, np.array(list(product((0, 1), repeat=3)) * 2))


def test_zero_correlation_is_exactly_independence():
    quiet = [f"data.modality.{r}.noise=0.0" for r in range(2)]
    a = make_experiment_data(small("data.population=true", *quiet))
    b = small("data.population=true", *quiet)
    s = np.array(list(product((0, 1), repeat=2)))
    w = np.full(4, 0.5)
    for r, p in enumerate([0.8, 0.6]):  # the product in the order the data module takes it
        w *= np.where(s[:, r] == 1, p, 1.0 - p)
    assert np.array_equal(a.train.weight, np.concatenate([w, w]))
    assert b.data.presence_correlation == 0.0


def test_correlation_key_in_resolved_config():
    cfg = small("data.presence_correlation=0.25")
    assert cfg.to_dict()["data"]["presence_correlation"] == 0.25
    assert small().to_dict()["data"]["presence_correlation"] == 0.0


@pytest.mark.parametrize("K, c", [(2, -1.01), (3, -0.51), (5, -0.3)])
def test_correlation_below_the_psd_bound_is_refused(K, c):
    extra = [f"data.modality.{r}.dim=3" for r in range(2, K)]
    with pytest.raises(ConfigError, match=r"data\.presence_correlation must be >= -1/\(K-1\) = "):
        small(f"data.presence_correlation={c}", *extra)


def test_correlation_at_the_bound_and_above_one():
    assert small("data.modality.2.dim=3", "data.presence_correlation=-0.5").data \
        .presence_correlation == -0.5
    with pytest.raises(ConfigError, match=r"data\.presence_correlation must be"):
        small("data.presence_correlation=1.2")


def test_negative_correlation_population_mode_is_limited_in_size():
    extra = [f"data.modality.{r}.dim=3" for r in range(2, 7)]
    extra += [f"data.modality.{r}.presence=0.5" for r in range(2, 7)]
    extra += [f"data.modality.{r}.noise=0.0" for r in range(7)]
    with pytest.raises(ConfigError, match="data.population = true with data.presence_correlation"):
        small("data.population=true", "data.presence_correlation=-0.1", *extra)
    small("data.population=true", "data.presence_correlation=0.1", *extra)  # c >= 0: any K


def test_outputs_carry_the_correlation(tmp_path, capsys):
    """summary.json's resolved config, config.toml and the report header show c (header: c != 0)."""
    import json
    import tomllib

    from simcomp.cli import main

    argv = []
    for item in ["data.n_train=64", "data.n_test=64", "data.modality.0.dim=6",
                 "data.modality.1.dim=5", "model.width=2", "train.steps=20",
                 "train.trace_every=10", "data.presence_correlation=0.4"]:
        argv += ["--set", item]
    assert main(["simulate", "--out", str(tmp_path / "c"), *argv]) == 0
    out = capsys.readouterr().out
    assert "presence correlation 0.4" in out.splitlines()[0]
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["config"]["data"]["presence_correlation"] == 0.4
    toml = tomllib.loads((tmp_path / "c" / "config.toml").read_text())
    assert toml["data"]["presence_correlation"] == 0.4
    assert main(["theory", *argv]) == 0
    assert "presence correlation 0.4" in capsys.readouterr().out.splitlines()[0]
    plain = argv[:-2]
    assert main(["theory", *plain]) == 0
    assert "presence correlation" not in capsys.readouterr().out
