"""The ``[method]`` table: plain joint training or one of the mitigation methods,
with the keys each method takes and their published defaults (docs/methods.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .validation import (
    ConfigError,
    _bounds,
    _field_names,
    _need_bool,
    _need_choice,
    _need_float,
    _need_int,
)

__all__ = ["METHODS", "METHOD_KEYS", "MethodConfig", "MethodNoOpWarning"]


# The mitigation methods and the keys each one takes (besides ``name``).
METHODS = ("none", "lr_scale", "ogm", "ogm_ge", "agm", "dropout", "aux", "alternating",
           "mmpareto", "umt", "ume")
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "lr_scale": ("lr_scale",),
    "ogm": ("alpha", "start", "stop"),
    "ogm_ge": ("alpha", "start", "stop"),
    "agm": ("alpha", "start", "stop"),
    "dropout": ("drop", "rescale"),
    "aux": ("fused_weight", "aux_weight"),
    "alternating": ("mix",),
    "mmpareto": (),
    "umt": ("distill_weight", "teacher_steps"),
    "ume": (),
}
# Published defaults of the scalar keys (docs/methods.md gives the sources).
_METHOD_ALPHA = {"ogm": 0.1, "ogm_ge": 0.1, "agm": 1.0}
_METHOD_SCALAR_DEFAULTS = {
    "start": 0,
    "rescale": False,
    "fused_weight": 1.0,
    "aux_weight": 1.0,
    "distill_weight": 10.0,
}
# Per-modality keys: default value of each entry.
_METHOD_PER_MODALITY = {"lr_scale": 1.0, "drop": 0.0, "mix": 1.0}


class MethodNoOpWarning(UserWarning):
    """A method whose settings make it train exactly as plain joint training."""


@dataclass(frozen=True)
class MethodConfig:
    """The training method: plain joint training or one of the mitigations.

    Every key but ``name`` belongs to some methods only; a key the chosen
    method does not take is refused.  Keys left out take the method's
    default, so a resolved config names every setting of its method (and
    ``None`` for the others).  Per-modality keys (``lr_scale``, ``drop``,
    ``mix``, and ``aux_weight`` when given as a list) hold one value per
    configured modality, in config order; their length is checked by
    :class:`Config`, which knows the modalities.

    Attributes
    ----------
    name : str
        One of :data:`METHODS`; ``"none"`` is plain joint training.
    alpha : float or None
        Modulation strength (ogm, ogm_ge: 0.1; agm: 1.0), >= 0.
    start, stop : int or None
        The modulation acts on steps start <= t < stop (ogm, ogm_ge, agm);
        ``stop = None`` never stops.
    lr_scale : tuple of float or None
        Per-modality learning-rate factors c_r > 0 (lr_scale; default 1).
    drop : tuple of float or None
        Per-modality drop probabilities d_r in [0, 1) (dropout; default 0).
    rescale : bool or None
        Inverted dropout, phi_r / (1 - d_r) (dropout; default false).
    fused_weight : float or None
        Weight w_0 >= 0 of the fused loss (aux; default 1).
    aux_weight : float, tuple of float or None
        Weights lambda_r >= 0 of the uni-modal losses, one number for all or
        one per modality (aux; default 1).
    mix : tuple of float or None
        The alternating predictor's weights a_r >= 0 (alternating; default 1).
    distill_weight : float or None
        Weight lambda >= 0 of the distillation term (umt; default 10).
    teacher_steps : int or None
        Training steps of the uni-modal teachers (umt); ``None`` means
        ``train.steps``.
    """

    name: str = "none"
    alpha: float | None = None
    start: int | None = None
    stop: int | None = None
    lr_scale: tuple | None = None
    drop: tuple | None = None
    rescale: bool | None = None
    fused_weight: float | None = None
    aux_weight: float | tuple | None = None
    mix: tuple | None = None
    distill_weight: float | None = None
    teacher_steps: int | None = None

    def __post_init__(self) -> None:
        _need_choice("method.name", self.name, METHODS)
        takes = METHOD_KEYS[self.name]
        for key in _field_names(MethodConfig)[1:]:
            if key not in takes and getattr(self, key) is not None:
                valid = ", ".join(takes) if takes else "no keys besides name"
                raise ConfigError(
                    f"method.{key} is not a setting of method {self.name!r}; "
                    f"method {self.name} takes: {valid}"
                )
        where = f"(method {self.name})"
        set_ = lambda key, value: object.__setattr__(self, key, value)  # noqa: E731
        if "alpha" in takes:
            alpha = _METHOD_ALPHA[self.name] if self.alpha is None else self.alpha
            set_("alpha", _need_float(f"method.alpha {where}", alpha, lo=0.0))
        if "start" in takes:
            start = _METHOD_SCALAR_DEFAULTS["start"] if self.start is None else self.start
            set_("start", _need_int(f"method.start {where}", start, lo=0))
            if self.stop is not None:
                _need_int(f"method.stop {where}", self.stop, lo=self.start + 1)
        if "rescale" in takes:
            set_("rescale", _need_bool(f"method.rescale {where}",
                                       False if self.rescale is None else self.rescale))
        for key in ("fused_weight", "distill_weight"):
            if key in takes:
                value = _METHOD_SCALAR_DEFAULTS[key] if getattr(self, key) is None else getattr(self, key)
                set_(key, _need_float(f"method.{key} {where}", value, lo=0.0))
        if "teacher_steps" in takes and self.teacher_steps is not None:
            # the teachers train like any run: at most train.steps' own bound
            _need_int(f"method.teacher_steps {where}", self.teacher_steps, lo=0,
                      hi=_bounds("train.steps")["hi"])
        if "aux_weight" in takes:
            value = 1.0 if self.aux_weight is None else self.aux_weight
            if isinstance(value, (list, tuple)):
                set_("aux_weight", tuple(
                    _need_float(f"method.aux_weight[{i}] {where}", v, lo=0.0) for i, v in enumerate(value)))
            else:
                set_("aux_weight", _need_float(f"method.aux_weight {where}", value, lo=0.0))
        for key in _METHOD_PER_MODALITY:
            value = getattr(self, key)
            if key in takes and value is not None:
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(
                        f"method.{key} {where} must be a list with one number per modality, "
                        f"got {value!r}"
                    )
                set_(key, tuple(self._entry(key, i, v) for i, v in enumerate(value)))

    def _entry(self, key: str, index: int, value: Any) -> float:
        label = f"method.{key}[{index}] (method {self.name})"
        if key == "lr_scale":
            return _need_float(label, value, lo=0.0, lo_open=True)
        if key == "drop":
            value = _need_float(label, value, lo=0.0)
            if value >= 1.0:
                raise ConfigError(f"{label} must be in [0, 1), got {value:g}")
            return value
        return _need_float(label, value, lo=0.0)

    def resolved(self, n_modalities: int) -> "MethodConfig":
        """This method with per-modality defaults filled in for ``n_modalities`` modalities.

        Raises
        ------
        ConfigError
            A per-modality list whose length is not ``n_modalities``.
        """
        changes: dict[str, Any] = {}
        takes = METHOD_KEYS[self.name]
        for key in ("lr_scale", "drop", "mix", "aux_weight"):
            if key not in takes:
                continue
            value = getattr(self, key)
            if value is None:
                changes[key] = (_METHOD_PER_MODALITY[key],) * n_modalities
            elif isinstance(value, tuple) and len(value) != n_modalities:
                raise ConfigError(
                    f"method.{key} (method {self.name}) must have one value per modality "
                    f"({n_modalities}), got {len(value)}"
                )
        if self.name == "alternating" and sum(self.mix or (1.0,)) == 0.0:
            raise ConfigError("method.mix (method alternating) must not be all zero")
        return dataclasses.replace(self, **changes) if changes else self

    def noop_reason(self) -> str | None:
        """Why this (resolved) method trains exactly as plain joint training, or None.

        Such a setting is allowed -- a sweep may use it as its control -- but
        :func:`simcomp.simulate`, :func:`simcomp.predict` and the commands
        warn about it (:class:`MethodNoOpWarning`), because the defaults of
        ``dropout`` (drop 0) and ``lr_scale`` (factor 1) are such settings.
        """
        name = self.name
        if name == "dropout" and self.drop is not None and all(d == 0.0 for d in self.drop):
            return "method dropout with every method.drop 0 drops nothing"
        if name == "lr_scale" and self.lr_scale is not None and all(
                c == 1.0 for c in self.lr_scale):
            return "method lr_scale with every method.lr_scale 1 scales nothing"
        if name in ("ogm", "ogm_ge", "agm") and self.alpha == 0.0:
            return f"method {name} with method.alpha 0 modulates nothing"
        if name == "umt" and self.distill_weight == 0.0:
            return "method umt with method.distill_weight 0 distils nothing"
        if name == "aux" and self.fused_weight == 1.0:
            weights = self.aux_weight if isinstance(self.aux_weight, tuple) else (self.aux_weight,)
            if all(w == 0.0 for w in weights):
                return "method aux with every method.aux_weight 0 adds no uni-modal loss"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped form: ``name`` and the method's resolved keys (``None`` left out)."""
        out: dict[str, Any] = {"name": self.name}
        for key in METHOD_KEYS[self.name]:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out
