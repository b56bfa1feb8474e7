"""Configuration: frozen dataclasses that validate themselves.

A :class:`Config` is built from a plain nested dictionary (the shape of the
TOML file), so that the embedded default, a user's TOML file and ``--set``
overrides all go through one constructor and one set of checks.  Every error
is a :class:`ConfigError` whose message names the offending key and what
would be valid; the CLI turns it into a one-line message and exit code 2.

This module imports nothing else from simcomp.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import stat
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "ModalityConfig",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "MethodConfig",
    "METHODS",
    "METHOD_KEYS",
    "Config",
    "DEFAULT_CONFIG_TOML",
    "default_config",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "parse_override",
    "config_to_toml",
    "NUMERIC_RANGES",
    "MAX_MODALITIES",
    "MAX_NAME_LENGTH",
    "MAX_CONFIG_BYTES",
]

LEARNERS = ("symmetric", "class_banks")
ACTIVATIONS = ("srelu", "relu")
MODES = ("joint", "unimodal", "compare")
DTYPES = ("float64", "float32")
DICTIONARIES = ("identity", "random")
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")


MAX_NAME_LENGTH = 64  # modality names become parts of file names
# The theory enumerates the 2^(K+1) (label, presence) patterns: 131072 at K = 16.
MAX_MODALITIES = 16
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; 1 MiB is generous

# Valid ranges of the numeric keys: (lo, hi, lo_open); None is unbounded.  The
# bounds keep every downstream computation (data, kernels, theory) finite or
# reported as a divergence, never an overflow traceback; sizes beyond them
# could not be held in memory anyway (the pre-flight check refuses far
# smaller ones on an ordinary machine).  docs/reliability.md lists them.
NUMERIC_RANGES: dict[str, tuple[Any, Any, bool]] = {
    "seed": (0, 2**63 - 1, False),
    "data.n_train": (1, 10**9, False),
    "data.n_test": (1, 10**9, False),
    "data.modality.dim": (1, 10**7, False),
    "data.modality.beta": (0.0, 1e6, True),
    "data.modality.presence": (0.0, 1.0, False),
    "data.modality.noise": (0.0, None, False),
    "data.modality.distractors": (0, None, False),  # and <= dim - 1
    "data.modality.distractor_strength": (0.0, None, False),
    "model.width": (1, 10**5, False),
    "model.q": (2.0, 16.0, False),
    "model.rho": (1e-6, 1e6, False),
    "model.init_scale": (0.0, None, True),
    "model.learned_threshold": (1e-6, 1e6, False),
    "train.lr": (0.0, None, False),
    "train.steps": (1, 10**12, False),
    "train.trace_every": (1, 10**12, False),
    "train.stop_loss": (0.0, None, False),
    "train.threads": (0, 4096, False),
}


def _bounds(key: str) -> dict[str, Any]:
    lo, hi, lo_open = NUMERIC_RANGES[key]
    return {"lo": lo, "hi": hi} if isinstance(lo, int) else {"lo": lo, "hi": hi, "lo_open": lo_open}


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message says which and why."""


# --------------------------------------------------------------------------- checks


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_text(lo, hi, lo_open: bool, fmt: str) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:{fmt}}")
    if hi is not None:
        parts.append(f"<= {hi:{fmt}}")
    return " and ".join(parts)


def _digits(value: int) -> int:
    # str() of an int over 4300 digits raises; the bit length gives the size of any int.
    return int(abs(value).bit_length() * 0.30103) + 1


def _need_int(key: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if not _is_int(value):
        raise ConfigError(f"{key} must be an integer, got {value!r} ({type(value).__name__})")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        shown = value if abs(value) < 10**30 else f"an integer of about {_digits(value)} digits"
        raise ConfigError(f"{key} must be {_range_text(lo, hi, False, 'd')}, got {shown}")
    return value


def _need_float(
    key: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r} ({type(value).__name__})")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond the float range
        raise ConfigError(f"{key} must be a finite number {_range_text(lo, hi, lo_open, 'g')}, "
                          f"got an integer of about {_digits(value)} digits (beyond the float "
                          "range)") from None
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value}")
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (
            hi is not None and value > hi):
        raise ConfigError(f"{key} must be {_range_text(lo, hi, lo_open, 'g')}, got {value:g}")
    return value


def _need_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _need_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class ModalityConfig:
    """One modality of the sparse-coding data (spec section 1).

    Attributes
    ----------
    name : str
        Label used in reports and output keys.
    dim : int
        Input dimension d_r.
    beta : float
        Signal strength beta_r > 0.
    presence : float
        Probability p_r that a sample carries this modality's signal.
    noise : float
        Standard deviation sigma_r of the isotropic Gaussian noise.
    distractors : int
        Number k_r of random distractor atoms per sample, 0 <= k_r <= dim-1.
    distractor_strength : float
        Magnitude gamma_r of each distractor atom.
    dictionary : {"identity", "random"}
        Orthogonal dictionary M_r; "random" is a seeded QR factor.
    """

    name: str
    dim: int = 128
    beta: float = 1.0
    presence: float = 1.0
    noise: float = 0.0
    distractors: int = 0
    distractor_strength: float = 0.0
    dictionary: str = "identity"

    def __post_init__(self) -> None:
        where = f"data.modality[{self.name}]"
        if (not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_NAME_LENGTH
                or any(ch not in _NAME_CHARS for ch in self.name)):
            shown = self.name if not isinstance(self.name, str) or len(self.name) <= 80 else (
                f"{self.name[:40]}... ({len(self.name)} characters)")
            raise ConfigError(
                f"data.modality name must be 1 to {MAX_NAME_LENGTH} letters (a-z, A-Z), digits, "
                f"'_', '-' or '.' (it names output files), got {shown!r}"
            )
        object.__setattr__(self, "dim",
                           _need_int(f"{where}.dim", self.dim, **_bounds("data.modality.dim")))
        object.__setattr__(self, "beta",
                           _need_float(f"{where}.beta", self.beta, **_bounds("data.modality.beta")))
        object.__setattr__(
            self, "presence", _need_float(f"{where}.presence", self.presence,
                                     **_bounds("data.modality.presence"))
        )
        object.__setattr__(self, "noise", _need_float(f"{where}.noise", self.noise,
                                                      **_bounds("data.modality.noise")))
        object.__setattr__(
            self,
            "distractors",
            _need_int(f"{where}.distractors", self.distractors, lo=0, hi=self.dim - 1),
        )
        object.__setattr__(
            self,
            "distractor_strength",
            _need_float(f"{where}.distractor_strength", self.distractor_strength,
                        **_bounds("data.modality.distractor_strength")),
        )
        _need_choice(f"{where}.dictionary", self.dictionary, DICTIONARIES)


@dataclass(frozen=True)
class DataConfig:
    """The data distribution and the sample sizes."""

    modality: tuple[ModalityConfig, ...]
    n_train: int = 512
    n_test: int = 4096
    population: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.modality, tuple) or not self.modality:
            raise ConfigError("data.modality must list at least one modality")
        if len(self.modality) > MAX_MODALITIES:
            raise ConfigError(
                f"data.modality lists {len(self.modality)} modalities; at most {MAX_MODALITIES} "
                "are supported (the theory enumerates all 2^(K+1) label and presence patterns)"
            )
        names = [mod.name for mod in self.modality]
        dupes = sorted({nm for nm in names if names.count(nm) > 1})
        if dupes:
            raise ConfigError(f"data.modality names must be unique; repeated: {', '.join(dupes)}")
        _need_int("data.n_train", self.n_train, **_bounds("data.n_train"))
        _need_int("data.n_test", self.n_test, **_bounds("data.n_test"))
        _need_bool("data.population", self.population)
        if self.population:
            for mod in self.modality:
                if mod.noise != 0.0 or mod.distractors != 0:
                    raise ConfigError(
                        f"data.population = true needs noise = 0 and distractors = 0 in every "
                        f"modality; modality {mod.name} has noise = {mod.noise:g}, "
                        f"distractors = {mod.distractors}"
                    )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(mod.name for mod in self.modality)


@dataclass(frozen=True)
class ModelConfig:
    """The late-fusion learner (spec section 2).

    ``learned_threshold`` is the pre-activation level beta_r * Lambda_r at
    which a modality counts as learned; ``None`` means rho, the end of the
    polynomial part of srelu.  Plain ReLU has no such point, so it is given
    explicitly there.
    """

    learner: str = "symmetric"
    width: int = 8
    activation: str = "srelu"
    q: float = 3.0
    rho: float = 1.0
    init_scale: float = 0.01
    learned_threshold: float | None = None

    def __post_init__(self) -> None:
        _need_choice("model.learner", self.learner, LEARNERS)
        _need_int("model.width", self.width, **_bounds("model.width"))
        _need_choice("model.activation", self.activation, ACTIVATIONS)
        if self.learner == "symmetric" and self.activation == "relu":
            raise ConfigError(
                "model.activation = 'relu' needs model.learner = 'class_banks' "
                "(the symmetric learner is built from srelu only)"
            )
        object.__setattr__(self, "q", _need_float("model.q", self.q, **_bounds("model.q")))
        object.__setattr__(self, "rho", _need_float("model.rho", self.rho, **_bounds("model.rho")))
        object.__setattr__(
            self, "init_scale", _need_float("model.init_scale", self.init_scale,
                                       **_bounds("model.init_scale"))
        )
        if self.learned_threshold is not None:
            object.__setattr__(
                self,
                "learned_threshold",
                _need_float("model.learned_threshold", self.learned_threshold,
                            **_bounds("model.learned_threshold")),
            )

    @property
    def banks(self) -> int:
        """Neuron banks per modality: 1 (symmetric) or 2 (class_banks, c = +1, -1)."""
        return 1 if self.learner == "symmetric" else 2

    @property
    def threshold(self) -> float:
        """Pre-activation level at which a modality counts as learned."""
        return self.rho if self.learned_threshold is None else self.learned_threshold


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch gradient descent (spec section 3).

    ``stop_loss = 0`` disables the early stop; ``threads = 0`` uses every core.
    """

    lr: float = 1.0
    steps: int = 300
    trace_every: int = 10
    mode: str = "compare"
    dtype: str = "float64"
    stop_loss: float = 0.0
    threads: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _need_float("train.lr", self.lr, **_bounds("train.lr")))
        _need_int("train.steps", self.steps, **_bounds("train.steps"))
        _need_int("train.trace_every", self.trace_every, **_bounds("train.trace_every"))
        _need_choice("train.mode", self.mode, MODES)
        _need_choice("train.dtype", self.dtype, DTYPES)
        object.__setattr__(self, "stop_loss", _need_float("train.stop_loss", self.stop_loss,
                                                          **_bounds("train.stop_loss")))
        _need_int("train.threads", self.threads, **_bounds("train.threads"))


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
            _need_int(f"method.teacher_steps {where}", self.teacher_steps, lo=0)
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

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped form: ``name`` and the method's resolved keys (``None`` left out)."""
        out: dict[str, Any] = {"name": self.name}
        for key in METHOD_KEYS[self.name]:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Config:
    """A whole experiment: data, model, training and the seed."""

    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    method: MethodConfig = field(default_factory=MethodConfig)

    def __post_init__(self) -> None:
        _need_int("seed", self.seed, **_bounds("seed"))
        if not isinstance(self.method, MethodConfig):
            raise ConfigError(f"method must be a [method] table, got {self.method!r}")
        object.__setattr__(self, "method", self.method.resolved(self.K))

    @property
    def names(self) -> tuple[str, ...]:
        return self.data.names

    @property
    def K(self) -> int:
        return len(self.data.modality)

    def to_dict(self) -> dict[str, Any]:
        """The nested plain-dict form (TOML shape); ``None`` values are left out."""
        out = dataclasses.asdict(self)
        out["data"]["modality"] = [dict(mod) for mod in out["data"]["modality"]]
        if out["model"]["learned_threshold"] is None:
            del out["model"]["learned_threshold"]
        return {"seed": out["seed"], "data": out["data"], "model": out["model"], "train": out["train"],
                "method": self.method.to_dict()}

    def replace(self, **changes: Any) -> "Config":
        """A copy with dotted keys changed, e.g. ``cfg.replace(**{"train.steps": 50})``."""
        raw = self.to_dict()
        for key, value in changes.items():
            _set_path(raw, key, value)
        return config_from_dict(raw)


# --------------------------------------------------------------------------- building

_SECTION_TYPES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
_TOP_KEYS = ("seed", "data", "model", "train", "method")


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _check_keys(where: str, given: dict[str, Any], valid: list[str]) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; valid keys{' in ' + where if where else ''}: "
            f"{', '.join(valid)}"
        )


def _need_table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table (section), got {value!r}")
    return value


def _default_name(index: int) -> str:
    letters = string.ascii_uppercase
    return letters[index] if index < len(letters) else f"M{index}"


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config` from its nested plain-dict form.

    Missing keys take their defaults; modalities without a ``name`` are named
    "A", "B", ... by position.

    Raises
    ------
    ConfigError
        For unknown keys, wrong types or values out of range.
    """
    raw = _need_table("config", raw)
    _check_keys("", raw, list(_TOP_KEYS))
    data_raw = dict(_need_table("data", raw.get("data", {})))
    _check_keys("data", data_raw, _field_names(DataConfig))
    mods_raw = data_raw.pop("modality", None)
    if mods_raw is None:
        raise ConfigError("data.modality is missing: list at least one [[data.modality]] table")
    if not isinstance(mods_raw, list) or not mods_raw:
        raise ConfigError("data.modality must be a non-empty list of tables ([[data.modality]])")
    if len(mods_raw) > MAX_MODALITIES:
        raise ConfigError(
            f"data.modality lists {len(mods_raw)} modalities; at most {MAX_MODALITIES} are "
            "supported (the theory enumerates all 2^(K+1) label and presence patterns)"
        )
    modalities = []
    valid_mod_keys = _field_names(ModalityConfig)
    for index, mod_raw in enumerate(mods_raw):
        mod_raw = dict(_need_table(f"data.modality.{index}", mod_raw))
        _check_keys(f"data.modality.{index}", mod_raw, valid_mod_keys)
        mod_raw.setdefault("name", _default_name(index))
        try:
            modalities.append(ModalityConfig(**mod_raw))
        except ConfigError as exc:
            # Name the modality by the index --set uses, and by its name.
            message = str(exc).replace(f"data.modality[{mod_raw['name']}]", f"data.modality.{index}")
            raise ConfigError(message) from None
    data = DataConfig(modality=tuple(modalities), **data_raw)
    sections: dict[str, Any] = {"data": data}
    for name in ("model", "train"):
        sec_raw = _need_table(name, raw.get(name, {}))
        _check_keys(name, sec_raw, _field_names(_SECTION_TYPES[name]))
        sections[name] = _SECTION_TYPES[name](**sec_raw)
    method_raw = dict(_need_table("method", raw.get("method", {})))
    _check_keys("method", method_raw, _field_names(MethodConfig))
    for key, value in method_raw.items():
        if isinstance(value, list):
            method_raw[key] = tuple(value)
    sections["method"] = MethodConfig(**method_raw)
    return Config(seed=raw.get("seed", 0), **sections)


DEFAULT_CONFIG_TOML = """\
# The embedded default (docs/model.md section 6): A strong but incomplete, B
# weaker but always present.  Jointly, A wins the race and B is starved of
# gradient; alone, B is learned well before the horizon, on every seed measured.
seed = 0

[data]
n_train = 512
n_test = 4096
population = false

[[data.modality]]
name = "A"
dim = 128
beta = 3.0
presence = 0.85
noise = 0.05

[[data.modality]]
name = "B"
dim = 128
beta = 1.0
presence = 1.0
noise = 0.05

[model]
learner = "symmetric"
width = 16
activation = "srelu"
q = 3
rho = 1.0
init_scale = 0.01

[train]
lr = 1.0
steps = 300
trace_every = 5
mode = "compare"
dtype = "float64"
"""


def default_config() -> Config:
    """The embedded default experiment of the spec (section 6)."""
    return config_from_dict(tomllib.loads(DEFAULT_CONFIG_TOML))


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Read a TOML file (or the embedded default when ``path`` is None) as a raw dict.

    The raw dict is returned, not a :class:`Config`, so that overrides can be
    applied before validation.
    """
    if path is None:
        return tomllib.loads(DEFAULT_CONFIG_TOML)
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"config file {str(path)!r} is a directory, not a TOML file")
    if not stat.S_ISREG(info.st_mode):
        # A device or a pipe could be endless (/dev/zero) or block forever.
        raise ConfigError(f"config file {str(path)!r} is not a regular file (a device, pipe or "
                          "socket); give a TOML file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(path)!r} is {info.st_size} bytes; a config may have "
                          f"at most {MAX_CONFIG_BYTES} bytes")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {str(path)!r} has more than {MAX_CONFIG_BYTES} bytes")
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: {exc.reason} at byte "
                          f"{exc.start}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    return _parse_toml(text, f"config file {str(path)!r}")


def _parse_toml(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: an int of > 4300 digits
        raise ConfigError(f"{what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} is not usable TOML: arrays or tables nested too "
                          "deeply") from None


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as a TOML literal, else as a bare string.

    ``beta=1.5`` gives a float, ``population=true`` a bool, ``mode=joint`` the
    string "joint" (quotes optional).
    """
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. train.steps=2000), got {text!r}")
    key, value_text = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects KEY=VALUE with a non-empty key, got {text!r}")
    value_text = value_text.strip()
    try:
        value = tomllib.loads(f"v = {value_text}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text
    except ValueError:  # an integer of more than 4300 digits
        raise ConfigError(f"--set {key}: the number has too many digits") from None
    except RecursionError:
        raise ConfigError(f"--set {key}: the value is nested too deeply") from None
    return key, value


def _set_path(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = raw
    walked: list[str] = []
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        walked.append(part)
        if isinstance(node, list):
            if not (part.isascii() and part.isdigit()):  # int() would also take '²' or '٣'
                raise ConfigError(
                    f"--set {key}: {'.'.join(walked[:-1])} is a list; expected an index "
                    f"(digits 0-9), got {part!r}"
                )
            # int() refuses strings of over 4300 digits; any index that long is out of range.
            index = int(part) if len(part) <= 18 else len(node) + 1
            if index > len(node):
                shown = part if len(part) <= 20 else f"{part[:20]}..."
                raise ConfigError(
                    f"--set {key}: index {shown} is out of range; {'.'.join(walked[:-1])} has "
                    f"{len(node)} entries (use index {len(node)} to add one)"
                )
            if index == len(node):
                # A new modality starts as a copy of the last one (all but its name), so that
                # --set data.modality.2.beta=1.5 adds a sibling with the same noise, dim, ...
                sibling = node[-1] if node and isinstance(node[-1], dict) else {}
                node.append({k: copy.deepcopy(v) for k, v in sibling.items() if k != "name"}
                            if walked[:-1] == ["data", "modality"] else {})
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(walked[:-1])} is a value, not a section")
        if last:
            node[part] = value
        else:
            if part not in node:
                node[part] = [] if part == "modality" else {}
            node = node[part]


def apply_overrides(raw: dict[str, Any], overrides: list[str] | list[tuple[str, Any]]) -> dict[str, Any]:
    """Apply ``--set`` overrides (strings ``key=value`` or ``(key, value)`` pairs) to a raw dict.

    Dotted paths reach into sections and list indices into the modality list:
    ``data.modality.0.beta=1.1``.  Index ``len(list)`` appends a modality, a
    copy of the last one's values except its name (named by position).
    Unknown keys are caught when the result is validated.
    """
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        _set_path(raw, key, value)
    return raw


# --------------------------------------------------------------------------- TOML out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_int(value):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(ch in text for ch in ".en") else text + ".0"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"cannot write {value!r} as TOML")


def config_to_toml(cfg: Config) -> str:
    """The resolved config as TOML text that :func:`load_config` reads back to ``cfg``."""
    raw = cfg.to_dict()
    lines = ["# simcomp resolved config", f"seed = {raw['seed']}", "", "[data]"]
    for key, value in raw["data"].items():
        if key != "modality":
            lines.append(f"{key} = {_toml_value(value)}")
    for mod in raw["data"]["modality"]:
        lines += ["", "[[data.modality]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in mod.items()]
    for section in ("model", "train"):
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in raw[section].items()]
    lines += ["", "[method]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in raw["method"].items()]
    if cfg.method.name == "umt" and cfg.method.teacher_steps is None:
        lines.append(f"# teacher_steps = {cfg.train.steps}  (default: train.steps)")
    if cfg.method.name in ("ogm", "ogm_ge", "agm") and cfg.method.stop is None:
        lines.append("# stop: not set, the modulation never stops")
    return "\n".join(lines) + "\n"


def build_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a TOML file (or the default), apply ``--set`` overrides, validate."""
    raw = load_config(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return config_from_dict(raw)


__all__.append("build_config")
