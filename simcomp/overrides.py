"""``--set`` overrides: ``key=value`` strings applied to the raw, nested dict of a config.

Overrides are applied before validation, so that an override may add a
modality or set a key that only the combined config makes valid; unknown keys
and bad values are caught when :func:`simcomp.config.config_from_dict` builds
the :class:`~simcomp.config.Config`.

This module imports only :mod:`simcomp.validation`.
"""

from __future__ import annotations

import copy
import tomllib
from typing import Any

from .validation import ConfigError

__all__ = ["parse_override", "set_path", "apply_overrides"]


def _refuse_control_characters(what: str, text: str) -> None:
    """A newline (or any control character) would end the TOML value early and drop the rest:
    ``train.steps=5\nseed=3`` would set only train.steps.  Refused, naming the character."""
    bad = next((ch for ch in text if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0), None)
    if bad is not None:
        raise ConfigError(
            f"{what} {text!r}: contains the control character {bad!r} (U+{ord(bad):04X}) at "
            f"position {text.index(bad)}; give one KEY=VALUE per "
            f"{what if what.startswith('--') else '--set'}, without control "
            f"characters")


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as a TOML literal, else as a bare string.

    ``beta=1.5`` gives a float, ``population=true`` a bool, ``mode=joint`` the
    string "joint" (quotes optional).
    """
    _refuse_control_characters("--set", text)
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


def set_path(raw: dict[str, Any], key: str, value: Any) -> None:
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
        if isinstance(key, str):
            _refuse_control_characters("override key", key)
        set_path(raw, key, value)
    return raw
