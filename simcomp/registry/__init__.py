"""The method registry: one module per method, one line per method here.

``REGISTRY`` maps ``method.name`` to its :class:`~simcomp.registry.spec.MethodSpec`
(scikit-learn's ``_LOSSES`` style).  Everything that depends on the set of
methods reads it: config validation (:mod:`simcomp.method_config`), the
compiled rule's layout and flags (:mod:`simcomp.kernels.rule_spec`), the
theory's settings and race (:mod:`simcomp.theory.mitigation`), the
calibration (:mod:`simcomp.calibrate.methods`), the docs table and the
tests' parametrisation.  docs/adding-a-method.md says how to add one.

The order is the order of the docs and of the compiled rule codes.
"""

from __future__ import annotations

from . import (agm, alternating, aux, dropout, gblending, greedy, inforeg, lr_scale, mmcosine,
               mmpareto, none, ogm, ogm_boost, ogm_ge, opm, pmr, reconboost, relearning, ume,
               umt)
from .spec import Calibration, MethodSpec, Setting

__all__ = ["REGISTRY", "METHODS", "MethodSpec", "Setting", "Calibration", "get", "has_rule",
           "label", "all_keys", "setting_of"]

REGISTRY: dict[str, MethodSpec] = {spec.name: spec for spec in (
    none.SPEC,
    lr_scale.SPEC,
    ogm.SPEC,
    ogm_ge.SPEC,
    agm.SPEC,
    dropout.SPEC,
    aux.SPEC,
    alternating.SPEC,
    mmpareto.SPEC,
    umt.SPEC,
    ume.SPEC,
    mmcosine.SPEC,
    ogm_boost.SPEC,
    opm.SPEC,
    pmr.SPEC,
    inforeg.SPEC,
    reconboost.SPEC,
    greedy.SPEC,
    relearning.SPEC,
    gblending.SPEC,
)}

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
