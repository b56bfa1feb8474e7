import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomp.config import ConfigError, config_from_dict
from simcomp.config_file import build_config, config_to_toml, default_config, load_config
from simcomp.overrides import apply_overrides, parse_override


def test_default_matches_docs_model_section_6():
    cfg = default_config()
    a, b = cfg.data.modality
    assert (a.name, a.dim, a.beta, a.presence, a.noise) == ("A", 128, 3.0, 0.85, 0.05)
    assert (b.name, b.dim, b.beta, b.presence, b.noise) == ("B", 128, 1.0, 1.0, 0.05)
    assert cfg.model.learner == "symmetric" and cfg.model.width == 16
    assert cfg.model.q == 3 and cfg.model.rho == 1.0 and cfg.model.init_scale == 0.01
    assert cfg.train.lr == 1.0 and cfg.train.steps == 300 and cfg.train.mode == "compare"
    assert cfg.data.n_train == 512 and cfg.data.n_test == 4096 and cfg.seed == 0


def test_toml_round_trip_of_resolved_config():
    cfg = build_config(None, ["data.modality.2.beta=0.5", "model.learner=class_banks",
                              "model.activation=relu", "model.learned_threshold=0.7",
                              "data.modality.1.dictionary=random", "seed=7"])
    again = config_from_dict(tomllib.loads(config_to_toml(cfg)))
    assert again == cfg
    assert again.names == ("A", "B", "C")


def test_an_added_modality_copies_the_last_ones_values_but_its_name():
    base = default_config()
    cfg = build_config(None, ["data.modality.1.dim=64", "data.modality.2.beta=1.5"])
    b, c = cfg.data.modality[1], cfg.data.modality[2]
    assert c.name == "C" and c.beta == 1.5
    assert (c.dim, c.presence, c.noise) == (64, b.presence, b.noise) == (64, 1.0, base.data.modality[1].noise)
    # the copy is taken when the modality is added: later overrides of B do not reach C
    later = build_config(None, ["data.modality.2.beta=1.5", "data.modality.1.noise=0.3"])
    assert later.data.modality[2].noise == base.data.modality[1].noise
    # a modality listed in a file without some keys takes the key defaults (config shows them)
    assert "noise = 0.05" in config_to_toml(cfg).split("[[data.modality]]")[3]


def test_override_parsing_types():
    assert parse_override("train.steps=2000") == ("train.steps", 2000)
    assert parse_override("data.modality.0.beta=1.1") == ("data.modality.0.beta", 1.1)
    assert parse_override("data.population=true") == ("data.population", True)
    assert parse_override("train.mode=joint") == ("train.mode", "joint")
    assert parse_override('train.mode="joint"') == ("train.mode", "joint")


def test_overrides_do_not_touch_the_input():
    raw = load_config(None)
    apply_overrides(raw, ["train.steps=5"])
    assert raw["train"]["steps"] == 300


def test_override_index_past_end_is_refused():
    with pytest.raises(ConfigError, match="index 5 is out of range.*has 2 entries"):
        build_config(None, ["data.modality.5.beta=1.0"])


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("train.foo=1", r"unknown config key train\.foo; valid keys in train: lr, steps"),
        ("data.modality.0.colour=1", r"unknown config key data\.modality\.0\.colour; valid keys"),
        ("bogus=1", r"unknown config key bogus; valid keys: seed, data, model, train"),
        ("train.steps=1.5", r"train\.steps must be an integer, got 1\.5"),
        ("train.steps=\"ten\"", r"train\.steps must be an integer"),
        ("data.modality.0.beta=\"big\"", r"data\.modality\.0\.beta must be a number"),
        ("data.modality.0.dim=0", r"data\.modality\.0\.dim must be >= 1 and <= 10000000, got 0"),
        ("data.modality.1.presence=1.5", r"data\.modality\.1\.presence must be >= 0 and <= 1, got 1\.5"),
        ("data.modality.1.presence=-0.1", r"data\.modality\.1\.presence must be >= 0"),
        ("data.modality.0.beta=0", r"data\.modality\.0\.beta must be > 0"),
        ("data.modality.0.noise=-1", r"data\.modality\.0\.noise must be >= 0"),
        ("data.modality.0.distractors=128", r"data\.modality\.0\.distractors must be >= 0 and <= 127, got 128"),
        ("data.modality.0.distractors=-1", r"data\.modality\.0\.distractors must be >= 0"),
        ("data.modality.0.dictionary=fourier", r"dictionary must be one of identity, random"),
        ("model.q=1.5", r"model\.q must be >= 2 and <= 16, got 1\.5"),
        ("model.rho=0", r"model\.rho must be >= 1e-06 and <= 1e\+06, got 0"),
        ("model.init_scale=0", r"model\.init_scale must be > 0"),
        ("model.width=0", r"model\.width must be >= 1 and <= 100000, got 0"),
        ("model.learner=deep", r"model\.learner must be one of symmetric, class_banks"),
        ("model.activation=relu", r"relu.*needs model\.learner = 'class_banks'"),
        ("train.lr=-1", r"train\.lr must be >= 0"),
        ("train.steps=0", r"train\.steps must be >= 1 and <= 1000000000000, got 0"),
        ("train.mode=both", r"train\.mode must be one of joint, unimodal, compare"),
        ("train.dtype=float16", r"train\.dtype must be one of float64, float32"),
        ("train.lr=nan", r"train\.lr must be a finite number"),
        ("data.modality.0.beta=inf", r"data\.modality\.0\.beta must be a finite number"),
        ("data.population=true", r"population = true needs noise = 0 and distractors = 0"),
        ("data.population=1", r"data\.population must be true or false"),
        ("seed=-1", r"seed must be >= 0 and <= 9223372036854775807, got -1"),
        ("data.modality.0.name=\"B\"", r"names must be unique; repeated: B"),
    ],
)
def test_bad_values_name_the_key(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_config(None, [override])


def test_override_without_equals():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        build_config(None, ["train.steps"])


def test_missing_file_and_malformed_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_missing_modalities():
    with pytest.raises(ConfigError, match="data.modality is missing"):
        config_from_dict({"data": {}})
    with pytest.raises(ConfigError, match="non-empty list"):
        config_from_dict({"data": {"modality": []}})


def test_defaults_fill_missing_keys_and_names():
    cfg = config_from_dict({"data": {"modality": [{}, {"beta": 2.0}, {}]}})
    assert cfg.names == ("A", "B", "C")
    assert cfg.data.modality[1].beta == 2.0
    assert cfg.model.threshold == cfg.model.rho


def test_replace_returns_validated_copy():
    cfg = default_config()
    other = cfg.replace(**{"train.steps": 50, "data.modality.1.beta": 0.5})
    assert other.train.steps == 50 and other.data.modality[1].beta == 0.5
    assert cfg.train.steps == 300
    with pytest.raises(ConfigError):
        cfg.replace(**{"train.steps": 0})


@settings(deadline=None, max_examples=40)
@given(
    beta=st.floats(0.01, 100, allow_nan=False),
    presence=st.floats(0, 1),
    q=st.floats(2, 8),
    steps=st.integers(1, 10_000),
    seed=st.integers(0, 2**32),
)
def test_round_trip_property(beta, presence, q, steps, seed):
    cfg = build_config(None, [f"data.modality.0.beta={beta!r}", f"data.modality.1.presence={presence!r}",
                              f"model.q={q!r}", f"train.steps={steps}", f"seed={seed}"])
    again = config_from_dict(tomllib.loads(config_to_toml(cfg)))
    assert again == cfg
    assert math.isclose(again.data.modality[0].beta, beta, rel_tol=0, abs_tol=0)


def test_boundary_values_are_accepted():
    """The closed ends of every range are valid settings (only beta, init_scale are open at 0)."""
    cfg = build_config(None, [
        "data.modality.0.presence=0", "data.modality.1.presence=1", "data.modality.0.noise=0",
        "data.modality.0.distractors=127", "data.modality.0.distractor_strength=0", "train.lr=0",
        "model.q=2", "model.rho=1e-6", "model.learned_threshold=0.5", "train.stop_loss=0",
        "method.name=dropout", "method.drop=[0, 0.999]",
    ])
    assert cfg.data.modality[0].presence == 0.0 and cfg.data.modality[1].presence == 1.0
    assert cfg.data.modality[0].distractors == 127 and cfg.method.drop == (0.0, 0.999)
    assert cfg.model.threshold == 0.5  # learned_threshold, when set, is the threshold
    assert build_config(None, ["model.rho=0.7"]).model.threshold == 0.7  # else rho
