"""The [method] table: defaults per method, refusals, overrides, TOML and sweep grids."""

import tomllib

import pytest

from simcomp.config import METHOD_KEYS, METHODS, ConfigError, MethodConfig, config_from_dict
from simcomp.config_file import build_config, config_to_toml, default_config
from simcomp.sweep import SweepError, parse_grid, plan_sweep


def test_default_is_plain_training():
    cfg = default_config()
    assert cfg.method == MethodConfig(name="none")
    assert cfg.method.to_dict() == {"name": "none"}
    assert cfg.to_dict()["method"] == {"name": "none"}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("none", {}),
        ("lr_scale", {"lr_scale": [1.0, 1.0]}),
        ("ogm", {"alpha": 0.1, "start": 0}),
        ("ogm_ge", {"alpha": 0.1, "start": 0}),
        ("agm", {"alpha": 1.0, "start": 0}),
        ("dropout", {"drop": [0.0, 0.0], "rescale": False}),
        ("aux", {"fused_weight": 1.0, "aux_weight": 1.0}),
        ("alternating", {"mix": [1.0, 1.0]}),
        ("mmpareto", {}),
        ("umt", {"distill_weight": 10.0}),
        ("ume", {}),
    ],
)
def test_resolved_defaults_per_method(name, expected):
    cfg = build_config(None, [f"method.name={name}"])
    assert cfg.method.to_dict() == {"name": name, **expected}
    # Keys the method does not take stay unset.
    for key in ("alpha", "start", "stop", "lr_scale", "drop", "rescale", "fused_weight",
                "aux_weight", "mix", "distill_weight", "teacher_steps"):
        if key not in METHOD_KEYS[name]:
            assert getattr(cfg.method, key) is None
    assert cfg.method.stop is None and cfg.method.teacher_steps is None


def test_every_method_has_a_key_list():
    assert set(METHOD_KEYS) == set(METHODS)
    assert len(METHODS) == 20


def test_overrides_set_values_and_types():
    cfg = build_config(None, ["method.name=ogm", "method.alpha=0.3", "method.start=5",
                              "method.stop=50"])
    assert (cfg.method.alpha, cfg.method.start, cfg.method.stop) == (0.3, 5, 50)
    assert isinstance(cfg.method.alpha, float)
    cfg = build_config(None, ["method.name=agm", "method.alpha=2"])
    assert cfg.method.alpha == 2.0 and isinstance(cfg.method.alpha, float)
    cfg = build_config(None, ["method.name=lr_scale", "method.lr_scale=[1, 4]"])
    assert cfg.method.lr_scale == (1.0, 4.0)
    cfg = build_config(None, ["method.name=aux", "method.aux_weight=[0.5, 2]",
                              "method.fused_weight=0"])
    assert cfg.method.aux_weight == (0.5, 2.0) and cfg.method.fused_weight == 0.0
    cfg = build_config(None, ["method.name=aux", "method.aux_weight=3"])
    assert cfg.method.aux_weight == 3.0
    cfg = build_config(None, ["method.name=umt", "method.teacher_steps=120",
                              "method.distill_weight=1"])
    assert cfg.method.teacher_steps == 120 and cfg.method.distill_weight == 1.0
    cfg = build_config(None, ["method.name=dropout", "method.drop=[0.5, 0]", "method.rescale=true"])
    assert cfg.method.drop == (0.5, 0.0) and cfg.method.rescale is True
    cfg = build_config(None, ["method.name=alternating", "method.mix=[0.55, 0.45]"])
    assert cfg.method.mix == (0.55, 0.45)


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        (["method.name=magic"], r"method.name must be one of none, lr_scale.*got 'magic'"),
        (["method.alpha=0.3"], r"method.alpha is not a setting of method 'none'; method none takes: no keys"),
        (["method.name=ogm", "method.drop=[0.1, 0.1]"],
         r"method.drop is not a setting of method 'ogm'; method ogm takes: alpha, start, stop"),
        (["method.name=aux", "method.mix=[1, 1]"], r"method.mix is not a setting of method 'aux'"),
        (["method.name=ogm", "method.alpha=-0.1"], r"method.alpha \(method ogm\) must be >= 0"),
        (["method.name=ogm", "method.start=-1"], r"method.start \(method ogm\) must be >= 0"),
        (["method.name=ogm", "method.start=10", "method.stop=10"],
         r"method.stop \(method ogm\) must be >= 11"),
        (["method.name=ogm", "method.alpha=fast"], r"method.alpha \(method ogm\) must be a number"),
        (["method.name=lr_scale", "method.lr_scale=[1, 0]"],
         r"method.lr_scale\[1\] \(method lr_scale\) must be > 0"),
        (["method.name=lr_scale", "method.lr_scale=[1, 2, 3]"],
         r"method.lr_scale \(method lr_scale\) must have one value per modality \(2\), got 3"),
        (["method.name=lr_scale", "method.lr_scale=2"],
         r"method.lr_scale \(method lr_scale\) must be a list with one number per modality"),
        (["method.name=dropout", "method.drop=[1.0, 0]"],
         r"method.drop\[0\] \(method dropout\) must be in \[0, 1\), got 1"),
        (["method.name=dropout", "method.drop=[-0.1, 0]"], r"method.drop\[0\] \(method dropout\) must be >= 0"),
        (["method.name=dropout", "method.drop=[0.1]"],
         r"method.drop \(method dropout\) must have one value per modality \(2\), got 1"),
        (["method.name=dropout", "method.rescale=1"], r"method.rescale \(method dropout\) must be true or false"),
        (["method.name=aux", "method.aux_weight=[1]"],
         r"method.aux_weight \(method aux\) must have one value per modality \(2\), got 1"),
        (["method.name=aux", "method.aux_weight=-1"], r"method.aux_weight \(method aux\) must be >= 0"),
        (["method.name=aux", "method.fused_weight=-1"], r"method.fused_weight \(method aux\) must be >= 0"),
        (["method.name=alternating", "method.mix=[0, 0]"], r"method.mix \(method alternating\) must not be all zero"),
        (["method.name=alternating", "method.mix=[-1, 1]"], r"method.mix\[0\] \(method alternating\) must be >= 0"),
        (["method.name=umt", "method.teacher_steps=1.5"],
         r"method.teacher_steps \(method umt\) must be an integer"),
        (["method.name=umt", "method.distill_weight=-2"], r"method.distill_weight \(method umt\) must be >= 0"),
        (["method.nme=ogm"], r"unknown config key method.nme; valid keys in method: name, alpha"),
        (["method=ogm"], r"method must be a table"),
    ],
)
def test_bad_method_values_are_refused(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_config(None, overrides)


@pytest.mark.parametrize("command", [["config"], ["theory"], ["simulate", "--out", "OUT"]])
def test_huge_teacher_steps_refused_by_one_validation(command, tmp_path, capsys):
    """config, theory and simulate refuse it alike, naming method.teacher_steps (issue 16, 10)."""
    from simcomp.cli import main

    argv = [str(tmp_path / "o") if a == "OUT" else a for a in command]
    assert main(argv + ["--set", "method.name=umt", "--set",
                        "method.teacher_steps=100000000000000000000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "method.teacher_steps (method umt) must be >= 0 and <= 1000000000000" in err
    assert not (tmp_path / "o").exists()


def test_list_length_follows_the_number_of_modalities():
    cfg = build_config(None, ["data.modality.2.beta=0.5", "method.name=dropout"])
    assert cfg.method.drop == (0.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match=r"one value per modality \(3\), got 2"):
        build_config(None, ["data.modality.2.beta=0.5", "method.name=dropout", "method.drop=[0.1, 0.2]"])


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["method.name=ogm", "method.alpha=0.3", "method.stop=40"],
        ["method.name=ogm_ge", "method.start=3"],
        ["method.name=agm"],
        ["method.name=lr_scale", "method.lr_scale=[0.25, 3]"],
        ["method.name=dropout", "method.drop=[0.3, 0.1]", "method.rescale=true"],
        ["method.name=aux", "method.aux_weight=[1, 2.5]"],
        ["method.name=aux", "method.aux_weight=0.5"],
        ["method.name=alternating", "method.mix=[0.55, 0.45]"],
        ["method.name=mmpareto"],
        ["method.name=umt", "method.teacher_steps=77"],
        ["method.name=umt"],
        ["method.name=ume"],
    ],
)
def test_toml_round_trip(overrides):
    cfg = build_config(None, overrides)
    text = config_to_toml(cfg)
    assert "[method]" in text
    again = config_from_dict(tomllib.loads(text))
    assert again == cfg
    assert config_from_dict(cfg.to_dict()) == cfg


def test_toml_file_with_method_table(tmp_path):
    path = tmp_path / "run.toml"
    text = config_to_toml(default_config()).replace(
        '[method]\nname = "none"', '[method]\nname = "aux"\naux_weight = [2.0, 0.5]')
    path.write_text(text)
    cfg = build_config(path)
    assert cfg.method.name == "aux" and cfg.method.aux_weight == (2.0, 0.5)
    assert cfg.method.fused_weight == 1.0


def test_printed_config_names_the_implicit_defaults():
    text = config_to_toml(build_config(None, ["method.name=umt"]))
    assert "# teacher_steps = 300  (default: train.steps)" in text
    text = config_to_toml(build_config(None, ["method.name=ogm"]))
    assert "alpha = 0.1" in text and "start = 0" in text


def test_replace_changes_the_method():
    cfg = default_config().replace(**{"method.name": "ogm", "method.alpha": 0.8})
    assert cfg.method.alpha == 0.8


def test_sweep_grid_over_method_names_and_alpha():
    axis = parse_grid("method.name=none,ogm,aux")
    assert axis.values == ("none", "ogm", "aux")
    plan = plan_sweep(default_config(), ["method.name=none,ogm,aux"], 1)
    assert [run.cfg.method.name for run in plan.runs] == ["none", "ogm", "aux"]
    assert plan.runs[1].cfg.method.alpha == 0.1
    base = build_config(None, ["method.name=ogm"])
    plan = plan_sweep(base, ["method.alpha=0.1,0.3,0.8"], 1)
    assert [run.cfg.method.alpha for run in plan.runs] == [0.1, 0.3, 0.8]
    plan = plan_sweep(base, ["method.alpha=0.2:0.6:3"], 1)
    assert [run.cfg.method.alpha for run in plan.runs] == pytest.approx([0.2, 0.4, 0.6])
    plan = plan_sweep(base, ["method.stop=10:30:3"], 1)
    assert [run.cfg.method.stop for run in plan.runs] == [10, 20, 30]


def test_sweep_refuses_a_key_the_method_does_not_take():
    with pytest.raises(SweepError, match=r"method.alpha is not a setting of method 'none'"):
        plan_sweep(default_config(), ["method.alpha=0.1,0.3"], 1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "method.name=ogm", "--set", "method.drop=[0.1, 0.2]"],
         "method.drop is not a setting of method 'ogm'; method ogm takes: alpha, start, stop"),
        (["--set", "method.name=dropout", "--set", "method.drop=[0.1]"],
         "method.drop (method dropout) must have one value per modality (2), got 1"),
        (["--set", "method.name=agm", "--set", "method.alpha=-1"],
         "method.alpha (method agm) must be >= 0, got -1"),
    ],
)
def test_cli_refuses_bad_method_with_one_line_and_exit_2(capsys, argv, message):
    from simcomp.cli import main

    assert main(["config"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_cli_config_prints_the_resolved_method(capsys):
    from simcomp.cli import main

    assert main(["config", "--set", "method.name=ogm", "--set", "method.alpha=0.3"]) == 0
    out = capsys.readouterr().out
    assert '[method]\nname = "ogm"\nalpha = 0.3\nstart = 0\n' in out
