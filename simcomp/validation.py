"""Checks shared by every configuration table: the valid ranges of the numeric
keys and the functions that enforce them.

Every failure is a :class:`ConfigError` whose message names the key and what
would be valid.  This module imports nothing else from simcomp.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["ConfigError", "NUMERIC_RANGES"]

# Valid ranges of the numeric keys: (lo, hi, lo_open); None is unbounded.  The
# bounds keep every downstream computation (data, kernels, theory) finite or
# reported as a divergence, never an overflow traceback; sizes beyond them
# could not be held in memory anyway (the pre-flight check refuses far
# smaller ones on an ordinary machine).  docs/reliability.md lists them.
NUMERIC_RANGES: dict[str, tuple[Any, Any, bool]] = {
    "seed": (0, 2**63 - 1, False),
    "data.n_train": (1, 10**9, False),
    "data.n_test": (1, 10**9, False),
    "data.presence_correlation": (-1.0, 1.0, False),  # and >= -1/(K-1) (checked by DataConfig)
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
    "train.batch_size": (0, 10**9, False),  # and <= data.n_train (checked by Config)
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


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]
