"""Configuration: frozen dataclasses that validate themselves.

A :class:`Config` is built from a plain nested dictionary (the shape of the
TOML file), so that the embedded default, a user's TOML file and ``--set``
overrides all go through one constructor and one set of checks.  Every error
is a :class:`ConfigError` whose message names the offending key and what
would be valid; the CLI turns it into a one-line message and exit code 2.

Reading and writing TOML files, and the embedded default, live in
:mod:`simcomp.config_file`; ``--set`` overrides in :mod:`simcomp.overrides`.
This module imports only :mod:`simcomp.validation`, :mod:`simcomp.method_config` (with the
method registry it reads) and :mod:`simcomp.overrides`.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from typing import Any

from . import fusion_config as _fusion
from .method_config import METHOD_KEYS, METHODS, MethodConfig
from .registry import REGISTRY as _REGISTRY
from .overrides import set_path
from .validation import (  # noqa: F401  (re-exported: the checks belong to every table)
    NUMERIC_RANGES,
    ConfigError,
    _bounds,
    _field_names,
    _need_bool,
    _need_choice,
    _need_float,
    _need_int,
)

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
    "config_from_dict",
    "NUMERIC_RANGES",
    "MAX_MODALITIES",
    "MAX_NAME_LENGTH",
]

LEARNERS = ("symmetric", "class_banks")
ACTIVATIONS = ("srelu", "relu", "linear")  # linear: fusion engine only (fusion_config)
MODES = ("joint", "unimodal", "compare")
DTYPES = ("float64", "float32")
DICTIONARIES = ("identity", "random")
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")


MAX_NAME_LENGTH = 64  # modality names become parts of file names
# The theory enumerates the 2^(K+1) (label, presence) patterns: 131072 at K = 16.
MAX_MODALITIES = 16
# Population mode's exact pattern weights for a negative presence correlation nest
# floor(K/2) integrals (simcomp.presence): 0.15 s at 5 uncertain modalities, 7 s at 6.
MAX_NEGATIVE_POPULATION_K = 5

# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class ModalityConfig:
    """One modality of the sparse-coding data (docs/model.md section 1).

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
    # ---- fusion engine (simcomp.fusion_config): Gaussian data only
    std: float = 1.0

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
        _fusion.check_modality(self, where)  # fusion engine


@dataclass(frozen=True)
class DataConfig:
    """The data distribution and the sample sizes.

    ``presence_correlation`` is the correlation c of the Gaussian variables
    behind the presence coins (docs/model.md section 1.1): modality r is
    present where z_r < Phi^-1(p_r), with the z_r jointly Gaussian, unit
    variance, every pair correlated c.  c = 0 is independent presence, c = 1
    the same coin for every modality; c must keep the correlation matrix
    positive semi-definite, i.e. c >= -1/(K-1).
    """

    modality: tuple[ModalityConfig, ...]
    n_train: int = 512
    n_test: int = 4096
    population: bool = False
    presence_correlation: float = 0.0
    # ---- fusion engine (simcomp.fusion_config): Gaussian data
    kind: str = "sparse_coding"
    correlation: float = 0.0
    label_noise: float = 0.0
    covariance: Any = None

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
        object.__setattr__(self, "presence_correlation",
                           _check_correlation(self.presence_correlation, len(self.modality)))
        _fusion.check_data(self)  # fusion engine
        if self.population and self.kind == "sparse_coding":
            for mod in self.modality:
                if mod.noise != 0.0 or mod.distractors != 0:
                    raise ConfigError(
                        f"data.population = true needs noise = 0 and distractors = 0 in every "
                        f"modality; modality {mod.name} has noise = {mod.noise:g}, "
                        f"distractors = {mod.distractors}"
                    )
            uncertain = sum(0.0 < mod.presence < 1.0 for mod in self.modality)
            if self.presence_correlation < 0.0 and uncertain > MAX_NEGATIVE_POPULATION_K:
                raise ConfigError(
                    f"data.population = true with data.presence_correlation < 0 supports at most "
                    f"{MAX_NEGATIVE_POPULATION_K} modalities with 0 < presence < 1 (the exact "
                    f"pattern weights cost grows steeply), got {uncertain}; use sampled data "
                    f"(data.population = false) or a correlation >= 0")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(mod.name for mod in self.modality)


def _check_correlation(value: Any, K: int) -> float:
    """data.presence_correlation as a float in [-1/(K-1), 1] (the equicorrelation matrix is PSD)."""
    c = _need_float("data.presence_correlation", value)
    lowest = -1.0 / (K - 1) if K > 1 else -1.0
    # A hair of rounding below -1/(K-1) (e.g. -0.333... typed for K = 4) is the boundary itself.
    if c < lowest - 1e-12 or c > 1.0:
        raise ConfigError(
            f"data.presence_correlation must be >= -1/(K-1) = {lowest:.6g} (K = {K} modalities) "
            f"and <= 1, got {c:g} (one equal correlation for every pair of presence coins is a "
            f"valid correlation matrix only in [-1/(K-1), 1])")
    return max(c, lowest)


@dataclass(frozen=True)
class ModelConfig:
    """The late-fusion learner (docs/model.md section 2).

    ``learned_threshold`` is the pre-activation level beta_r * Lambda_r at
    which a modality counts as learned; ``None`` means rho, the end of the
    polynomial part of srelu.  Plain ReLU has no such point: ``None`` still
    means rho there, and a threshold of its own is usually worth setting.
    """

    learner: str = "symmetric"
    width: int = 8
    activation: str = "srelu"
    q: float = 3.0
    rho: float = 1.0
    init_scale: float = 0.01
    learned_threshold: float | None = None
    # ---- fusion engine (simcomp.fusion_config, docs/architectures.md)
    architecture: str = "late_fusion"
    head: str = "fixed"
    depth: int = 2
    fusion_layer: int = 0

    def __post_init__(self) -> None:
        _need_choice("model.learner", self.learner, LEARNERS)
        _need_int("model.width", self.width, **_bounds("model.width"))
        _need_choice("model.activation", self.activation, ACTIVATIONS)
        _fusion.check_model(self)  # fusion engine
        if (self.learner == "symmetric" and self.activation == "relu"
                and not _fusion.uses_fusion_engine(self)):
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
    """Gradient descent (docs/model.md section 3): full-batch, or mini-batch SGD.

    ``stop_loss = 0`` disables the early stop; ``threads = 0`` uses every core.
    ``batch_size = 0`` (the default) is full-batch gradient descent; a value
    b in [1, data.n_train] makes every step use a mini-batch of b training
    samples (simcomp.batches, docs/sgd.md).
    ``noise_theory = false`` skips the noise-aware predictions and the expected
    test errors (docs/theory.md section 12), which cost several times the
    training of a small run: for fast sweeps of small problems.
    """

    lr: float = 1.0
    steps: int = 300
    trace_every: int = 10
    mode: str = "compare"
    dtype: str = "float64"
    stop_loss: float = 0.0
    threads: int = 0
    batch_size: int = 0
    noise_theory: bool = True
    # ---- fusion engine (simcomp.fusion_config)
    loss: str = "logistic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _need_float("train.lr", self.lr, **_bounds("train.lr")))
        _need_int("train.steps", self.steps, **_bounds("train.steps"))
        _need_int("train.trace_every", self.trace_every, **_bounds("train.trace_every"))
        _need_choice("train.mode", self.mode, MODES)
        _need_choice("train.dtype", self.dtype, DTYPES)
        object.__setattr__(self, "stop_loss", _need_float("train.stop_loss", self.stop_loss,
                                                          **_bounds("train.stop_loss")))
        _need_int("train.threads", self.threads, **_bounds("train.threads"))
        _need_int("train.batch_size", self.batch_size, **_bounds("train.batch_size"))
        _need_bool("train.noise_theory", self.noise_theory)
        _fusion.check_train(self)  # fusion engine


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
        _REGISTRY[self.method.name].check_config(self)  # a method's bounds across sections
        _check_batch_size(self.train.batch_size, self.data)
        _fusion.check_config(self)  # fusion engine

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
        _fusion.drop_defaults(out)  # fusion engine: keys at their defaults left out
        return {"seed": out["seed"], "data": out["data"], "model": out["model"], "train": out["train"],
                "method": self.method.to_dict()}

    def replace(self, **changes: Any) -> "Config":
        """A copy with dotted keys changed, e.g. ``cfg.replace(**{"train.steps": 50})``."""
        raw = self.to_dict()
        for key, value in changes.items():
            set_path(raw, key, value)
        return config_from_dict(raw)


def _check_batch_size(batch_size: int, data: DataConfig) -> None:
    """A mini-batch needs a sampled training set of at least its size."""
    if batch_size == 0:
        return
    if data.population:
        raise ConfigError(
            f"train.batch_size = {batch_size} needs a sampled training set; data.population = "
            "true trains on the exact expected loss (valid: train.batch_size = 0, full batch)")
    if batch_size > data.n_train:
        raise ConfigError(
            f"train.batch_size must be 0 (full batch) or between 1 and data.n_train = "
            f"{data.n_train}, got {batch_size}")


# --------------------------------------------------------------------------- building

_SECTION_TYPES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
_TOP_KEYS = ("seed", "data", "model", "train", "method")


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
