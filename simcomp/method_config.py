"""The ``[method]`` table: plain joint training or one of the mitigation methods.

Which methods exist, the keys each takes, their defaults and bounds all come
from the method registry (:mod:`simcomp.registry`, one module per method);
this module turns them into the validated, frozen ``MethodConfig``.  What
each method does is explained in docs/methods.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .registry import REGISTRY, all_keys, setting_of
from .validation import ConfigError, _bounds, _field_names, _need_choice

__all__ = ["METHODS", "METHOD_KEYS", "MethodConfig", "MethodNoOpWarning"]


# The mitigation methods and the keys each one takes (besides ``name``).
METHODS: tuple[str, ...] = tuple(REGISTRY)
METHOD_KEYS: dict[str, tuple[str, ...]] = {name: spec.keys for name, spec in REGISTRY.items()}


class MethodNoOpWarning(UserWarning):
    """A method whose settings make it train exactly as plain joint training."""


class _MethodTable:
    """The behaviour of :class:`MethodConfig` (its fields come from the registry)."""

    def __post_init__(self) -> None:
        _need_choice("method.name", self.name, METHODS)
        spec = REGISTRY[self.name]
        takes = spec.keys
        for key in _field_names(MethodConfig)[1:]:
            if key not in takes and getattr(self, key) is not None:
                valid = ", ".join(takes) if takes else "no keys besides name"
                raise ConfigError(
                    f"method.{key} is not a setting of method {self.name!r}; "
                    f"method {self.name} takes: {valid}"
                )
        where = f"(method {self.name})"
        # the teachers (steps keys) train like any run: at most train.steps' own bound
        steps_hi = _bounds("train.steps")["hi"]
        for setting in spec.settings:
            value = setting.check(where, getattr(self, setting.key),
                                  start=getattr(self, "start", None), steps_hi=steps_hi)
            object.__setattr__(self, setting.key, value)
        spec.validate(self)  # the method's checks across its settings

    def resolved(self, n_modalities: int) -> "MethodConfig":
        """This method with per-modality defaults filled in for ``n_modalities`` modalities.

        Raises
        ------
        ConfigError
            A per-modality list whose length is not ``n_modalities``.
        """
        spec = REGISTRY[self.name]
        changes: dict[str, Any] = {}
        for setting in spec.settings:
            if not setting.per_modality:
                continue
            value = getattr(self, setting.key)
            if value is None:
                changes[setting.key] = (setting.default,) * n_modalities
            elif isinstance(value, tuple) and len(value) != n_modalities:
                raise ConfigError(
                    f"method.{setting.key} (method {self.name}) must have one value per "
                    f"modality ({n_modalities}), got {len(value)}"
                )
        key = spec.predictor_setting
        if key is not None and sum(changes.get(key, getattr(self, key)) or (1.0,)) == 0.0:
            raise ConfigError(f"method.{key} (method {self.name}) must not be all zero")
        return dataclasses.replace(self, **changes) if changes else self

    def noop_reason(self) -> str | None:
        """Why this (resolved) method trains exactly as plain joint training, or None.

        Such a setting is allowed -- a sweep may use it as its control -- but
        :func:`simcomp.simulate`, :func:`simcomp.predict` and the commands
        warn about it (:class:`MethodNoOpWarning`), because the defaults of
        ``dropout`` (drop 0) and ``lr_scale`` (factor 1) are such settings.
        """
        return REGISTRY[self.name].noop(self)

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped form: ``name`` and the method's resolved keys (``None`` left out)."""
        out: dict[str, Any] = {"name": self.name}
        for key in METHOD_KEYS[self.name]:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


def _docstring() -> str:
    lines = ["The training method: plain joint training or one of the mitigations.", "",
             "Every key but ``name`` belongs to some methods only (the registry,",
             ":mod:`simcomp.registry`, says which); a key the chosen method does not",
             "take is refused.  Keys left out take the method's default, so a resolved",
             "config names every setting of its method (and ``None`` for the others).",
             "Per-modality keys hold one value per configured modality, in config",
             "order; their length is checked by :class:`Config`.", "", "Attributes",
             "----------", "name : str", "    One of :data:`METHODS`; ``\"none\"`` is plain "
             "joint training."]
    for key in all_keys():
        s = setting_of(key)
        users = ", ".join(n for n, spec in REGISTRY.items() if key in spec.keys)
        lines += [f"{key} : {s.kind} or None", f"    {s.doc} ({users})."]
    return "\n".join(lines)


# The type of each kind of setting (the sweep's grid reads them: a number range
# is allowed on int and float keys).
_HINTS = {"float": float | None, "int": int | None, "stop": int | None, "steps": int | None,
          "count": int | None, "bool": bool | None, "modality": tuple | None, "either": float | tuple | None}

MethodConfig = dataclasses.make_dataclass(
    "MethodConfig",
    [("name", str, dataclasses.field(default="none"))]
    + [(key, _HINTS[setting_of(key).kind], dataclasses.field(default=None))
       for key in all_keys()],
    bases=(_MethodTable,), frozen=True,
)
MethodConfig.__module__ = __name__  # pickled and printed as simcomp.method_config.MethodConfig
MethodConfig.__doc__ = _docstring()
