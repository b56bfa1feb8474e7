"""Grid axes of a sweep: ``KEY=START:STOP:NUM`` or ``KEY=V1,V2,...``, parsed and expanded."""

from __future__ import annotations

import itertools
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..config import _SECTION_TYPES, ConfigError, MethodConfig, ModalityConfig
from ..overrides import _refuse_control_characters

__all__ = ["SweepError", "GridAxis", "parse_grid", "expand_grid"]


class SweepError(ConfigError):
    """Bad sweep input (a grid, the seeds, the workers, a missing optional dependency).

    A :class:`~simcomp.config.ConfigError`, so that the CLI reports it in one
    line with exit code 2.
    """


# The [method] table is validated apart from the other sections (its keys
# depend on the method), but its values are grid axes like any other.
_GRID_SECTIONS = {**_SECTION_TYPES, "method": MethodConfig}
_LINSPACE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` axis: the config key, the text as given and the expanded values.

    ``values`` are normalised to the types the config holds (``beta=1`` gives
    1.0), so the same sweep written two ways is the same sweep.
    """

    key: str
    spec: str
    values: tuple

    def __len__(self) -> int:
        return len(self.values)


def _field_type(key: str) -> Any:
    """The declared type of a dotted config key, or None when the key is not a setting."""
    parts = key.split(".")
    if parts == ["seed"]:
        return int
    if len(parts) == 4 and parts[:2] == ["data", "modality"] and parts[2].isdigit():
        cls, name = ModalityConfig, parts[3]
    elif len(parts) == 2 and parts[0] in _GRID_SECTIONS:
        cls, name = _GRID_SECTIONS[parts[0]], parts[1]
    else:
        return None
    hints = typing.get_type_hints(cls)
    return hints.get(name)


def _numeric_kind(key: str) -> str | None:
    """"int", "float" or None (not a numeric setting) for a dotted config key."""
    hint = _field_type(key)
    if hint is int:
        return "int"
    if hint is float:
        return "float"
    if isinstance(hint, types.UnionType) and float in typing.get_args(hint):
        return "float"
    if isinstance(hint, types.UnionType) and int in typing.get_args(hint):
        return "int"
    return None


def _parse_number(key: str, spec: str, text: str, what: str) -> float:
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SweepError(
            f"--grid {key}={spec}: {what} must be a finite number, got {text.strip()!r}")
    return value


def _linspace(key: str, spec: str, start_text: str, stop_text: str, num_text: str,
              max_values: int | None = None) -> list:
    kind = _numeric_kind(key)
    if kind is None:
        hint = _field_type(key)
        why = "is not a config setting" if hint is None else "is not a numeric setting"
        raise SweepError(
            f"--grid {key}={spec}: START:STOP:NUM needs a numeric config key, and {key} {why}; "
            f"list values instead (KEY=V1,V2,...)"
        )
    start = _parse_number(key, spec, start_text, "START")
    stop = _parse_number(key, spec, stop_text, "STOP")
    num = _parse_number(key, spec, num_text, "NUM")
    if not isinstance(num, int) or num < 1:
        raise SweepError(
            f"--grid {key}={spec}: NUM must be a positive integer, got {num_text.strip()!r}")
    if num == 1 and start != stop:
        raise SweepError(f"--grid {key}={spec}: NUM = 1 needs START = STOP (one value)")
    if max_values is not None and num > max_values:
        raise SweepError(
            f"--grid {key}={spec}: {num} values, more than the limit of {max_values} runs; "
            f"pass --max-runs to raise the limit")
    values = np.linspace(float(start), float(stop), num)
    if kind == "float":
        # 12 significant digits: the decimals the user meant (1.4, not 1.4000000000000001).
        return [float(f"{v:.12g}") for v in values]
    rounded = np.round(values)
    bad = [v for v, r in zip(values, rounded) if abs(v - r) > 1e-9 * max(1.0, abs(v))]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:3])
        raise SweepError(
            f"--grid {key}={spec}: {key} is an integer setting but this linspace gives "
            f"non-integer values ({shown}{', ...' if len(bad) > 3 else ''}); use integer START and "
            f"STOP with (STOP - START) / (NUM - 1) a whole number, or list the values"
        )
    return [int(r) for r in rounded]


def _parse_list(key: str, spec: str) -> list:
    try:
        values = tomllib.loads(f"v = [{spec}]")["v"]
    except tomllib.TOMLDecodeError:
        values = []
        for item in spec.split(","):
            item = item.strip()
            if not item:
                raise SweepError(f"--grid {key}={spec}: empty value in the list") from None
            try:
                values.append(tomllib.loads(f"v = {item}")["v"])
            except tomllib.TOMLDecodeError:
                values.append(item)  # a bare word is a string, as with --set
    for value in values:
        if isinstance(value, (dict, list)):
            raise SweepError(
                f"--grid {key}={spec}: grid values must be numbers, strings or booleans, "
                f"got {value!r}"
            )
    return values


def parse_grid(text: str, max_values: int | None = None) -> GridAxis:
    """Parse one ``--grid`` argument.

    ``KEY=START:STOP:NUM`` gives NUM evenly spaced values from START to STOP
    (both included); for an integer setting (``train.steps``,
    ``data.n_train``, ``data.modality.0.dim``, ...) they must be whole numbers.
    ``KEY=V1,V2,...`` lists TOML literals (bare words are strings), like
    ``--set``.  Values are checked against the config later, by
    :func:`~simcomp.sweep.plan.plan_sweep`; this only reads the text.
    Linspace values are rounded to 12 significant digits, so that
    ``1:2:6`` gives 1.2 and 1.4, not 1.4000000000000001.  A linspace of more
    than ``max_values`` values is refused before it is expanded.

    Raises
    ------
    SweepError
        Malformed text, a bad linspace, an empty or non-scalar value.
    """
    try:
        _refuse_control_characters("--grid", text)
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    if "=" not in text:
        raise SweepError(
            f"--grid expects KEY=START:STOP:NUM or KEY=V1,V2,... "
            f"(e.g. data.modality.0.beta=1:2:5), got {text!r}"
        )
    key, spec = text.split("=", 1)
    key, spec = key.strip(), spec.strip()
    if not key:
        raise SweepError(f"--grid expects KEY=VALUES with a non-empty key, got {text!r}")
    if key == "seed":
        raise SweepError(
            "--grid seed: the seed of each run is derived from the base seed, the grid point and "
            "the repeat; use --seeds N for repeats, or --set seed=S to change the base seed"
        )
    if not spec:
        raise SweepError(f"--grid {key}=: no values given")
    match = _LINSPACE.match(spec)
    if match:
        values = _linspace(key, spec, *match.groups(), max_values=max_values)
    else:
        values = _parse_list(key, spec)
    if not values:
        raise SweepError(f"--grid {key}={spec}: no values given")
    return GridAxis(key=key, spec=spec, values=tuple(values))


def expand_grid(axes: Sequence[GridAxis]) -> list[tuple[tuple[str, Any], ...]]:
    """The cartesian product of the axes: points as ``((key, value), ...)`` in axis order.

    The first axis varies slowest (``itertools.product`` order); no axes give
    one empty point.
    """
    keys = [axis.key for axis in axes]
    return [tuple(zip(keys, combo)) for combo in itertools.product(*(axis.values for axis in axes))]
