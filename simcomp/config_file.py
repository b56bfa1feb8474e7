"""Config files: the embedded default, reading a TOML file, writing the resolved config.

:func:`build_config` is the usual entry point: a TOML file (or the embedded
default), then ``--set`` overrides (:mod:`simcomp.overrides`), then validation
(:func:`simcomp.config.config_from_dict`).  Every error is a
:class:`~simcomp.config.ConfigError` naming the file or the key.
"""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

from .registry import REGISTRY
from .config import Config, ConfigError, config_from_dict
from .overrides import apply_overrides
from .validation import _is_int

__all__ = [
    "DEFAULT_CONFIG_TOML",
    "MAX_CONFIG_BYTES",
    "default_config",
    "load_config",
    "config_to_toml",
    "build_config",
]

MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; 1 MiB is generous

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
    """The embedded default experiment (docs/model.md section 6)."""
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
    for setting in REGISTRY[cfg.method.name].settings:  # the keys whose default is "unset"
        if getattr(cfg.method, setting.key) is not None:
            continue
        if setting.kind == "steps":
            lines.append(f"# {setting.key} = {cfg.train.steps}  (default: train.steps)")
        elif setting.kind == "stop":
            lines.append(f"# {setting.key}: not set, the modulation never stops")
    return "\n".join(lines) + "\n"


def build_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a TOML file (or the default), apply ``--set`` overrides, validate."""
    raw = load_config(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return config_from_dict(raw)

