"""The fusion engine's configuration keys: defaults leave today's configs unchanged,
every bad value is refused with a message naming its key."""

import pytest

import simcomp
from simcomp.config import ConfigError
from simcomp.config_file import config_to_toml
from simcomp.fusion_config import fusion_layer, uses_fusion_engine

GAUSS = {"model.head": "trainable", "data.kind": "gaussian", "model.activation": "linear",
         "train.loss": "mse", "data.modality.0.dim": 1, "data.modality.1.dim": 1,
         "train.mode": "joint"}


def test_defaults_leave_the_original_config_unchanged():
    cfg = simcomp.build_config()
    raw = cfg.to_dict()
    for key in ("architecture", "head", "depth", "fusion_layer"):
        assert key not in raw["model"]
    for key in ("kind", "correlation", "label_noise", "covariance"):
        assert key not in raw["data"]
    assert "loss" not in raw["train"]
    assert all("std" not in mod for mod in raw["data"]["modality"])
    assert not uses_fusion_engine(cfg.model)


def test_non_default_keys_round_trip_through_toml(tmp_path):
    for overrides in ({**GAUSS, "data.correlation": -0.3, "data.modality.0.std": 2.0},
                      {**GAUSS, "data.covariance": [[4.0, -0.6], [-0.6, 1.0]]}):
        cfg = simcomp.build_config(overrides=overrides)
        path = tmp_path / "c.toml"
        path.write_text(config_to_toml(cfg))
        again = simcomp.build_config(path)
        assert again == cfg
    assert again.data.covariance == ((4.0, -0.6), (-0.6, 1.0))


@pytest.mark.parametrize("overrides, key", [
    ({"model.architecture": "middle"}, "model.architecture"),
    ({"model.head": "learned"}, "model.head"),
    ({"model.activation": "linear"}, "model.activation"),
    ({"model.architecture": "deep_fusion", "model.depth": 4}, "model.fusion_layer"),
    ({"model.architecture": "deep_fusion", "model.depth": 4, "model.fusion_layer": 5},
     "model.fusion_layer"),
    ({"model.head": "trainable", "model.depth": 3}, "model.depth"),
    ({"model.head": "trainable", "model.fusion_layer": 1}, "model.fusion_layer"),
    ({"data.kind": "gaussian"}, "data.kind"),
    ({"train.loss": "mse"}, "train.loss"),
    ({"train.loss": "hinge"}, "train.loss"),
    ({**GAUSS, "data.correlation": 1.0}, "data.correlation"),
    ({**GAUSS, "data.label_noise": -1.0}, "data.label_noise"),
    ({**GAUSS, "data.modality.0.std": 0.0}, "std"),
    ({"model.head": "trainable", "data.correlation": 0.5}, "data.correlation"),
    ({**GAUSS, "data.covariance": [[1.0, 2.0], [2.0, 1.0]]}, "data.covariance"),
    ({**GAUSS, "data.covariance": [[1.0, 0.1], [0.2, 1.0]]}, "data.covariance"),
    ({**GAUSS, "data.covariance": [[1.0]]}, "data.covariance"),
    ({**GAUSS, "method.name": "ogm"}, "method.name"),
    ({**GAUSS, "train.dtype": "float32"}, "train.dtype"),
    ({**GAUSS, "train.mode": "compare"}, "train.mode"),
    ({**GAUSS, "data.presence_correlation": 0.5}, "data.presence_correlation"),
    ({**GAUSS, "train.batch_size": 8}, "train.batch_size"),
    ({**GAUSS, "data.population": True, "model.activation": "relu"}, "data.population"),
])
def test_bad_fusion_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        simcomp.build_config(overrides=overrides)


def test_fusion_layer_resolution():
    late = simcomp.build_config(overrides=GAUSS).model
    early = simcomp.build_config(overrides={**GAUSS, "model.architecture": "early_fusion"}).model
    deep = simcomp.build_config(overrides={**GAUSS, "model.architecture": "deep_fusion",
                                           "model.depth": 5, "model.fusion_layer": 3}).model
    assert (fusion_layer(late), fusion_layer(early), fusion_layer(deep)) == (2, 1, 3)
    assert uses_fusion_engine(late) and uses_fusion_engine(early)


THREE = {**GAUSS, "data.modality.2": {"name": "C", "beta": 1.0, "dim": 1, "presence": 1.0,
                                      "noise": 0.0}}


@pytest.mark.parametrize("overrides, valid", [
    ({**THREE, "data.correlation": -0.6}, "-0.5"),         # -1/(K-1) with K = 3
    ({**THREE, "data.correlation": -0.5}, "-0.5"),         # the bound itself is singular
])
def test_a_correlation_that_makes_the_covariance_singular_is_a_config_error(overrides, valid):
    # It used to pass validation and raise a bare ValueError when the data were drawn.
    with pytest.raises(ConfigError, match=f"data.correlation.*{valid}"):
        simcomp.build_config(overrides=overrides)


def test_three_modalities_with_a_valid_negative_correlation_still_build():
    cfg = simcomp.build_config(overrides={**THREE, "data.correlation": -0.45})
    assert cfg.data.correlation == -0.45


@pytest.mark.parametrize("extra, key", [
    ({"data.correlation": 0.9}, "data.correlation"),
    ({"data.modality.0.std": 2.0}, "data.modality.0.std"),
])
def test_covariance_with_the_keys_it_overrides_is_refused(extra, key):
    # data.covariance replaces std and correlation: given together, one would be ignored.
    with pytest.raises(ConfigError, match=f"{key}.*data.covariance"):
        simcomp.build_config(overrides={**GAUSS, "data.covariance": [[4.0, 0.5], [0.5, 1.0]],
                                        **extra})


def test_singular_correlation_is_exit_2_from_the_cli(capsys):
    from simcomp.cli import main

    argv = ["theory"]
    for key, value in {**THREE, "data.correlation": -0.6}.items():
        argv += ["--set", f"{key}={value!r}" if not isinstance(value, dict) else
                 f"{key}={{name='C', beta=1.0, dim=1, presence=1.0, noise=0.0}}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "data.correlation" in err and "Traceback" not in err and err.count("\n") == 1
