"""The method registry: one module per method, found by looking.

``REGISTRY`` maps ``method.name`` to its :class:`~simcomp.registry.spec.MethodSpec`
(scikit-learn's ``_LOSSES`` style).  Everything that depends on the set of
methods reads it: config validation (:mod:`simcomp.method_config`), the
compiled rule's layout and flags (:mod:`simcomp.kernels.rule_spec`), the
theory's settings and race (:mod:`simcomp.theory.mitigation`), the
calibration (:mod:`simcomp.calibrate.methods`), the docs table and the
tests' parametrisation.  docs/adding-a-method.md says how to add one.

Every public module of this package that defines ``SPEC`` is a method: adding
one is creating its module, with no list to edit here.  The order -- that of
the docs, of the reports and of the compiled rule codes -- is the founding
methods in the order they were first listed, then every later one by name.
"""

from __future__ import annotations

import importlib
import pkgutil

from .spec import Calibration, MethodSpec, Setting

__all__ = ["REGISTRY", "METHODS", "MethodSpec", "Setting", "Calibration", "get", "has_rule",
           "label", "all_keys", "setting_of"]

# Modules of this package that are not methods.
_NOT_METHODS = frozenset({"spec", "table"})
# The first methods, in the order the docs have always listed them (plain training first).
_FOUNDING = ("none", "lr_scale", "ogm", "ogm_ge", "agm", "dropout", "aux", "alternating",
             "mmpareto", "umt", "ume")


def _discover() -> dict[str, MethodSpec]:
    names = sorted(info.name for info in pkgutil.iter_modules(__path__)
                   if not info.name.startswith("_") and info.name not in _NOT_METHODS)
    missing = [name for name in _FOUNDING if name not in names]
    if missing:  # a damaged installation, not a user's mistake
        raise ImportError(f"simcomp.registry lacks the method module(s) {', '.join(missing)}")
    specs = {}
    for name in list(_FOUNDING) + [n for n in names if n not in _FOUNDING]:
        spec = getattr(importlib.import_module(f"{__name__}.{name}"), "SPEC", None)
        if not isinstance(spec, MethodSpec):
            raise TypeError(f"simcomp/registry/{name}.py defines no SPEC = MethodSpec(...)")
        if spec.name != name:
            raise ValueError(f"simcomp/registry/{name}.py defines method {spec.name!r}: a "
                             f"method's module is named after it")
        specs[name] = spec
    return specs


REGISTRY: dict[str, MethodSpec] = _discover()

METHODS: tuple[str, ...] = tuple(REGISTRY)


def has_rule(name: str) -> bool:
    """Whether a joint run of method ``name`` trains with a rule of its own (not none, ume)."""
    return REGISTRY[name].kernel != "none"


def label(name: str) -> str:
    """The method's name as reports print it: an analogue says so (``greedy (an analogue)``)."""
    spec = REGISTRY.get(name)
    return f"{name} (an analogue)" if spec is not None and spec.analogue else name


def get(name: str) -> MethodSpec:
    """The spec of method ``name`` (ValueError naming the valid ones otherwise)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}") from None


# The order in which config messages and ``MethodConfig`` list the keys of the first
# methods (kept as it was before the registry); keys of later methods follow in
# registry order, with nothing to add here.
_KEY_ORDER = ("alpha", "start", "stop", "lr_scale", "drop", "rescale", "fused_weight",
              "aux_weight", "mix", "distill_weight", "teacher_steps")


def _all_settings() -> dict[str, Setting]:
    """Every config key of every method, first definition wins (its kind must agree)."""
    out: dict[str, Setting] = {}
    for spec in REGISTRY.values():
        for s in spec.settings:
            if s.key in out and out[s.key].kind != s.kind:
                raise TypeError(f"method.{s.key} is a {out[s.key].kind} in one method and a "
                                f"{s.kind} in {spec.name}")
            out.setdefault(s.key, s)
    return out


_SETTINGS = _all_settings()
_SETTINGS = {**{k: _SETTINGS[k] for k in _KEY_ORDER if k in _SETTINGS}, **_SETTINGS}


def all_keys() -> tuple[str, ...]:
    """Every method key (besides ``name``), in registry order."""
    return tuple(_SETTINGS)


def setting_of(key: str) -> Setting:
    """The (first) definition of ``method.<key>``."""
    return _SETTINGS[key]
