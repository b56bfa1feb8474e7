"""The method registry: one spec per method drives the config, the rule, the theory, the
calibration, the docs table and the tests' per-method tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import test_method_kernel
import test_methods_join
import test_theory_methods
from simcomp.calibrate.methods import METHOD_PARAMS
from simcomp.config_file import build_config
from simcomp.kernels import rule_spec
from simcomp.kernels.rule_spec import H, METHOD_NAMES, P, make_rule
from simcomp.method_config import METHOD_KEYS, METHODS, MethodConfig
from simcomp.methods import STOCHASTIC_METHODS, rule_kwargs
from simcomp.registry import REGISTRY, all_keys, get, setting_of
from simcomp.registry.table import methods_table
from simcomp.theory import method_kernel
from simcomp.theory.mitigation import DETERMINISTIC_REDUCTION, _resolve

ROOT = Path(__file__).resolve().parent.parent
RULE_METHODS = [name for name, spec in REGISTRY.items() if spec.kernel == name]
# methods of the fixed-head learner; the others need the trainable fusion head (mmcosine)
FIXED_HEAD = [name for name, spec in REGISTRY.items() if not spec.needs_trainable_head]
TRAINABLE_HEAD = ["model.head=trainable", "train.mode=joint"]


def test_the_registry_is_the_method_vocabulary_everywhere():
    assert METHODS == tuple(REGISTRY)
    assert METHOD_KEYS == {name: spec.keys for name, spec in REGISTRY.items()}
    assert METHOD_NAMES == tuple(RULE_METHODS)
    assert set(STOCHASTIC_METHODS) == {n for n, s in REGISTRY.items() if s.stochastic}
    assert set(DETERMINISTIC_REDUCTION) == {n for n in FIXED_HEAD if REGISTRY[n].exact_reduction}
    assert set(method_kernel.METHOD_CODE) == set(REGISTRY)
    assert set(METHOD_PARAMS) == {n for n, s in REGISTRY.items() if s.calibration is not None}
    # every key of every method is a field of the [method] table
    assert [f for f in MethodConfig.__dataclass_fields__][1:] == list(all_keys())
    with pytest.raises(ValueError, match="unknown method 'gblendin'; valid: none, lr_scale"):
        get("gblendin")


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_spec_is_consistent(name):
    spec = REGISTRY[name]
    assert spec.name == name and spec.summary and spec.source and spec.published_default
    assert spec.kernel in REGISTRY and spec.dynamics in REGISTRY
    for s in spec.settings:
        assert setting_of(s.key).kind == s.kind  # one key, one kind of value
    K, B, m, n, D = 3, 2, 4, 10, 8
    rows, cols = spec.state_shape(K, B, m, n, D)
    assert rows >= 0 and cols >= 0
    assert 0 <= spec.accumulators <= rule_spec.N_ACC


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_resolved_config_holds_the_spec_defaults_and_the_rule_holds_the_config(name):
    """config -> rule_kwargs -> make_rule keeps every setting, each in its named row/slot."""
    spec = REGISTRY[name]
    cfg = build_config(None, [f"method.name={name}"]
                       + (TRAINABLE_HEAD if spec.needs_trainable_head else []))
    for s in spec.settings:
        value = getattr(cfg.method, s.key)
        if s.kind == "modality":
            assert value == (s.default,) * cfg.K
        elif s.kind in ("stop", "steps"):
            assert value is None
        else:
            assert value == s.default
    teacher = np.zeros((2, cfg.model.banks, cfg.model.width, 5))
    kwargs = rule_kwargs(cfg, [0, 1], teacher if spec.table else None)
    rule = make_rule(kwargs.pop("name"), kwargs.pop("K"), **kwargs)
    assert rule.name == spec.kernel
    for s in spec.settings if spec.kernel == name else ():
        if not s.in_rule:
            continue
        held = rule.setting(s.key)
        if s.per_modality:
            np.testing.assert_array_equal(held, np.broadcast_to(s.default, 2))
        else:
            assert held == s.rule_value(getattr(cfg.method, s.key))


def test_the_rule_layout_names_every_rule_setting_once():
    keys = [k for k in all_keys() if setting_of(k).in_rule]
    assert sorted(k for k in P if k != "step") + sorted(H) == sorted(
        [k for k in keys if setting_of(k).per_modality]) + sorted(
        [k for k in keys if not setting_of(k).per_modality])
    assert sorted(P.values()) == list(range(len(P))) and sorted(H.values()) == list(range(len(H)))
    rule = make_rule("ogm", 2, alpha=0.25, start=3, stop=9)
    assert rule.hyper[rule_spec.H_ALPHA] == 0.25 and rule.hyper[rule_spec.H_START] == 3.0
    assert rule.hyper[rule_spec.H_STOP] == 9.0 and math.isinf(make_rule("ogm", 2).hyper[H["stop"]])
    rule = make_rule("lr_scale", 2, lr_scale=[0.5, 2.0])
    np.testing.assert_array_equal(rule.par[rule_spec.P_STEP], [0.5, 2.0])  # c_r of the update
    np.testing.assert_array_equal(make_rule("dropout", 2, lr_scale=[3.0, 3.0]).par[0], [3.0, 3.0])
    with pytest.raises(TypeError, match="unexpected setting"):
        make_rule("ogm", 2, alpah=0.1)


def test_flags_come_from_the_specs_not_the_order_of_the_codes():
    for code, name in enumerate(METHOD_NAMES):
        spec = REGISTRY[name]
        assert rule_spec.READS_PHI[code] == spec.reads_phi
        assert rule_spec.SECOND_GRADIENT[code] == spec.second_gradient
        assert rule_spec.READS_UNITS[code] == spec.reads_units
        assert rule_spec.HAS_TABLE[code] == (spec.table is not None)
        assert rule_spec.rule_needs_phi(code) == spec.reads_phi
    assert make_rule("agm", 3).state.shape == REGISTRY["agm"].state_shape(3, 1, 1, 1, 1)


def test_a_method_of_the_trainable_head_is_refused_by_the_fixed_head_theory():
    for name in set(REGISTRY) - set(FIXED_HEAD):
        with pytest.raises(ValueError, match=f"method '{name}' needs a trainable fusion head"):
            _resolve(name, {}, 2)


@pytest.mark.parametrize("name", FIXED_HEAD)
def test_the_theory_resolves_every_setting_with_the_method_default(name):
    p = _resolve(name, {}, 2)
    for s in REGISTRY[name].settings:
        if s.kind in ("modality", "either"):
            np.testing.assert_array_equal(p[s.key], [s.default] * 2)
        elif s.kind == "stop":
            assert p[s.key] == np.inf
        elif s.in_rule:
            assert p[s.key] == s.default


def test_the_docs_table_is_generated_from_the_registry():
    assert methods_table() in (ROOT / "docs" / "methods.md").read_text()


def test_every_per_method_test_table_covers_the_registry():
    """A method added to the registry fails here until the tests give it settings."""
    exact = {n for n in FIXED_HEAD if REGISTRY[n].exact_reduction}
    tables = [(test_methods_join.SETTINGS, set(RULE_METHODS)),
              (test_method_kernel.PARAMS, set(FIXED_HEAD)),
              (dict(test_methods_join.DETERMINISTIC), exact),
              (dict(test_theory_methods.LEARNED), exact - {"ume"})]
    for table, wanted in tables:
        missing = wanted - set(table)
        assert not missing, f"no test settings for {sorted(missing)}"


_TOY_MODULE = '''"""``toy_new``: a test-only method (tests/test_registry.py)."""

from ..validation import ConfigError
from .spec import MethodSpec, Setting


def _validate(method):
    if method.ensemble_weight > method.boost_weight:
        raise ConfigError("method.ensemble_weight (method toy_new) must be <= "
                          "method.boost_weight")


SPEC = MethodSpec(
    name="toy_new", summary="a test-only method", source="tests", published_default="--",
    kernel="none", dynamics="none",  # trained and predicted as plain: config-level only
    settings=(Setting("every", "int", 10, lo=1), Setting("holdout", "count", None, lo=1),
              Setting("boost_weight", "float", 5.0, lo=0.0, lo_open=True),
              Setting("ensemble_weight", "float", 1.0, lo=0.0),
              Setting("alpha", "float", 0.5, lo=0.0)),
    validate=_validate)
'''

_NEW_METHOD = r'''
import json
from simcomp.config_file import build_config
from simcomp.methods import rule_kwargs
from simcomp.registry.table import methods_table
from simcomp.theory.mitigation import _resolve
from simcomp.validation import ConfigError
out = {}
cfg = build_config(None, ["method.name=toy_new", "method.holdout=64"])
out["resolved"] = cfg.method.to_dict()
out["alpha"] = cfg.method.alpha
for bad in (["method.every=0"], ["method.ensemble_weight=9"], ["method.drop=[0.1, 0.1]"]):
    try:
        build_config(None, ["method.name=toy_new"] + bad)
    except ConfigError as exc:
        out[bad[0]] = str(exc)
out["theory"] = {k: v for k, v in _resolve("toy_new", {"holdout": 64}, 2).items()
                 if k in ("every", "holdout", "alpha")}
out["rule"] = rule_kwargs(cfg, [0, 1])["name"]
out["table"] = "`toy_new`" in methods_table()
print(json.dumps(out))
'''


def test_a_new_method_is_one_new_module(tmp_path):
    """The recipe on a copy of the package: create simcomp/registry/toy_new.py, nothing else;
    config validation (bounds, a cross-setting check, a key of another method refused),
    defaults, the theory's settings and the docs table follow, no other edit."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    pkg = tmp_path / "simcomp"
    shutil.copytree(ROOT / "simcomp", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "registry" / "toy_new.py").write_text(_TOY_MODULE)
    out = subprocess.run([sys.executable, "-c", _NEW_METHOD], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path),
                                            "NUMBA_CACHE_DIR": str(tmp_path / "cache")},
                         check=True)
    res = json.loads(out.stdout)
    assert res["resolved"] == {"name": "toy_new", "every": 10, "holdout": 64,
                               "boost_weight": 5.0, "ensemble_weight": 1.0, "alpha": 0.5}
    assert res["alpha"] == 0.5  # its own default of a key ogm also has (0.1 there)
    assert "method.every (method toy_new) must be >= 1" in res["method.every=0"]
    assert "must be <= method.boost_weight" in res["method.ensemble_weight=9"]
    assert ("method.drop is not a setting of method 'toy_new'; method toy_new takes: every, "
            "holdout, boost_weight, ensemble_weight, alpha") in res["method.drop=[0.1, 0.1]"]
    assert res["theory"] == {"alpha": 0.5, "every": 10, "holdout": 64}
    assert res["rule"] == "none" and res["table"]


def test_the_registry_loads_without_numpy():
    """The config (and so ``simcomp --help`` and the BLAS thread setting, which must come
    before NumPy) imports every method module: none may import NumPy at import time."""
    import subprocess
    import sys

    probe = "import sys, simcomp.registry; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, check=True, timeout=120)
    assert out.stdout.strip() == "False"
