"""A practitioner's measurements: read, checked and put on one scale (docs/calibration.md).

The input is a small TOML file (or the same nested dict through the API)::

    classes = 6                 # or: chance = 17.2 (the accuracy of a network that knows nothing)
    tolerance = 1.0             # optional, accuracy points (default 1)
    scale = "percent"           # optional: "percent" or "fraction"; normally inferred
    [[modality]]
    name = "audio"
    accuracy = 59.38            # the uni-modal network's test accuracy (required)
    half_epoch = 4              # optional: epochs until half-way from chance to the final accuracy
    curve = "audio.csv"         # optional: epoch,accuracy of the uni-modal run
    [[modality]]
    name = "visual"
    accuracy = 58.10
    [joint]
    accuracy = 65.50            # the plain joint network (required)
    curve = "joint.csv"         # optional
    all_wrong = 21.0            # optional: share of test samples every uni-modal network gets wrong
    [methods]                   # optional: your setting of a method's main parameter
    ogm = 0.8                   # or a table: ogm = {alpha = 0.8, start = 0.33}

The scale rule: a file whose accuracies include a value above 1 is in
percent; otherwise it is in fractions -- unless every value would also be a
sensible percentage (above the chance level read as a percentage, which
happens only with more than 100 classes), where the file is refused as
ambiguous and ``scale`` must say which.  Every problem is a
:class:`CalibrationError` naming the key.
"""

from __future__ import annotations

import csv
import math
import numbers
import stat
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CalibrationError", "Modality", "Measurements", "load_measurements",
           "measurements_from_dict", "half_epoch_from_curve", "MAX_MODALITIES"]

# The search enumerates a grid per beta ratio: beyond four modalities it would not be fast.
MAX_MODALITIES = 4
_TOP_KEYS = ("classes", "chance", "tolerance", "scale", "modality", "joint", "methods")
_MOD_KEYS = ("name", "accuracy", "half_epoch", "curve")
_JOINT_KEYS = ("accuracy", "curve", "all_wrong")
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")
# A curve whose last value differs from the stated accuracy by more than this many
# tolerances contradicts it (the last epoch need not be the reported checkpoint).
_CURVE_SLACK = 3.0
# A measurements file is a few hundred bytes and a curve a few thousand; these caps keep a
# wrong path (a log, a data file) from being read whole.
MAX_FILE_BYTES = 1 << 20
MAX_CURVE_BYTES = 8 << 20
# Beyond this the chance level 1/classes is below any accuracy resolution (and 10**400
# would not even convert to a float).
MAX_CLASSES = 10 ** 9


class CalibrationError(ValueError):
    """Bad or inconsistent measurements; the message is one line and names the key."""


@dataclass(frozen=True)
class Modality:
    """One modality's uni-modal measurements, as fractions."""

    name: str
    accuracy: float
    half_epoch: float | None = None
    curve: tuple | None = None  # ((epoch, accuracy), ...) as fractions


@dataclass(frozen=True)
class Measurements:
    """Everything the user measured, as fractions (accuracy in [0, 1]).

    Attributes
    ----------
    chance : float
        Accuracy of a network that knows nothing (1/classes, or given).
    classes : int or None
    percent : bool
        Whether the input was in percent (the output is always in points).
    tolerance : float
        Half-width of the accepted band around every measurement, as a fraction.
    modalities : tuple of Modality
    joint : float
    joint_curve : tuple or None
    all_wrong : float or None
    methods : dict
        Method name -> the user's setting (a number or a dict).
    """

    chance: float
    classes: int | None
    percent: bool
    tolerance: float
    modalities: tuple
    joint: float
    joint_curve: tuple | None = None
    all_wrong: float | None = None
    methods: dict = field(default_factory=dict)

    @property
    def K(self) -> int:
        return len(self.modalities)

    @property
    def names(self) -> list:
        return [m.name for m in self.modalities]

    def to_dict(self) -> dict:
        """The measurements in points (percent), as the report shows them."""
        pts = lambda x: None if x is None else round(100.0 * x, 6)  # noqa: E731
        return {
            "chance": pts(self.chance), "classes": self.classes,
            "input_scale": "percent" if self.percent else "fraction",
            "tolerance": pts(self.tolerance),
            "modalities": [{"name": m.name, "accuracy": pts(m.accuracy),
                            "half_epoch": m.half_epoch} for m in self.modalities],
            "joint": pts(self.joint), "all_wrong": pts(self.all_wrong),
            "methods": dict(self.methods),
        }


# --------------------------------------------------------------------------- helpers


def _number(key: str, value: Any) -> float:
    # numbers.Real takes NumPy scalars too (a DataFrame cell is np.int64 or np.float64)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise CalibrationError(f"{key} must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise CalibrationError(f"{key} must be a finite number, got an integer of "
                               f"{len(str(abs(value)))} digits") from None
    if not math.isfinite(value):
        raise CalibrationError(f"{key} must be a finite number, got {value!r}")
    return value


def _table(key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise CalibrationError(f"{key} must be a table, got {value!r}")
    return value


def _check_keys(where: str, given: dict, valid: tuple) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        prefix = f"{where}." if where else ""
        raise CalibrationError(f"unknown key {prefix}{unknown[0]}; valid keys"
                               f"{' in ' + where if where else ''}: {', '.join(valid)}")


def _read_text(what: str, path: Path, limit: int) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    A pipe or a device is refused without opening it: reading a FIFO nobody
    writes to blocks forever, and /dev/zero never ends.
    """
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise CalibrationError(f"{what}: {str(path)!r} is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise CalibrationError(f"{what}: {str(path)!r} is not a regular file (a device, pipe "
                                   "or socket); give a file")
        if info.st_size > limit:
            raise CalibrationError(f"{what}: {str(path)!r} has {info.st_size} bytes; at most "
                                   f"{limit} are read")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise CalibrationError(f"{what}: cannot read {str(path)!r} "
                               f"({exc.strerror or exc.__class__.__name__})") from None
    if len(data) > limit:
        raise CalibrationError(f"{what}: {str(path)!r} has more than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{what}: {str(path)!r} is not UTF-8 text ({exc.reason} at byte "
                               f"{exc.start})") from None


def _read_curve(key: str, path: Path) -> list:
    """(epoch, value) rows of a CSV file; a header line is allowed."""
    text = _read_text(key, path, MAX_CURVE_BYTES)
    rows = []
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise CalibrationError(f"{key}: line {lineno} of {str(path)!r} must be 'epoch,accuracy', "
                                   f"got {','.join(row)!r}")
        try:
            epoch, acc = float(row[0]), float(row[1])
        except ValueError:
            if lineno == 1 and not rows:
                continue  # a header
            raise CalibrationError(f"{key}: line {lineno} of {str(path)!r} is not numeric: "
                                   f"{','.join(row)!r}") from None
        if not (math.isfinite(epoch) and math.isfinite(acc)):
            raise CalibrationError(f"{key}: line {lineno} of {str(path)!r} holds a non-finite "
                                   f"value (NaN or inf): {','.join(row)!r}")
        rows.append((epoch, acc))
    if len(rows) < 2:
        raise CalibrationError(f"{key}: {str(path)!r} needs at least two epoch,accuracy rows")
    epochs = [e for e, _ in rows]
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise CalibrationError(f"{key}: the epochs of {str(path)!r} must increase")
    if epochs[0] < 0:
        raise CalibrationError(f"{key}: the epochs of {str(path)!r} must not be negative")
    return rows


def half_epoch_from_curve(curve, chance: float) -> float | None:
    """The epoch at which the curve first reaches half-way from chance to its final value.

    Linear interpolation between epochs; a curve starting above half-way gives
    its first epoch; None when the final value is not above chance.
    """
    final = curve[-1][1]
    if final <= chance:
        return None
    half = chance + 0.5 * (final - chance)
    prev_e, prev_a = None, None
    for e, a in curve:
        if a >= half:
            if prev_e is None or a == prev_a:
                return float(e)
            return float(prev_e + (half - prev_a) / (a - prev_a) * (e - prev_e))
        prev_e, prev_a = e, a
    return float(curve[-1][0])


# --------------------------------------------------------------------------- parsing


def load_measurements(path: str | Path) -> Measurements:
    """Read and check a measurements TOML file (curve paths are relative to it)."""
    path = Path(path)
    text = _read_text("measurements", path, MAX_FILE_BYTES)
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: an int of > 4300 digits
        raise CalibrationError(f"{str(path)!r} is not valid TOML: {exc}") from None
    except RecursionError:
        raise CalibrationError(f"{str(path)!r} is not usable TOML: arrays or tables nested too "
                               "deeply") from None
    return measurements_from_dict(raw, base=path.parent)


def measurements_from_dict(raw: dict, base: str | Path | None = None) -> Measurements:
    """Check the measurements given as a nested dict (the TOML shape); see the module doc.

    ``base`` is the directory curve paths are relative to (default: the
    working directory).  Curves may also be given inline as lists of
    ``[epoch, accuracy]`` pairs.
    """
    raw = _table("measurements", raw)
    _check_keys("", raw, _TOP_KEYS)
    base = Path(".") if base is None else Path(base)
    mods_raw = raw.get("modality")
    if mods_raw is None:
        raise CalibrationError("modality is missing: give one [[modality]] table per modality, "
                               "each with its uni-modal accuracy")
    if not isinstance(mods_raw, list) or not all(isinstance(m, dict) for m in mods_raw):
        raise CalibrationError("modality must be a list of tables ([[modality]])")
    if not 2 <= len(mods_raw) <= MAX_MODALITIES:
        raise CalibrationError(f"modality lists {len(mods_raw)} modalities; calibration needs 2 to "
                               f"{MAX_MODALITIES} (competition needs at least two)")
    joint_raw = raw.get("joint")
    if joint_raw is None:
        raise CalibrationError("joint is missing: give a [joint] table with the joint network's "
                               "accuracy")
    joint_raw = _table("joint", joint_raw)
    _check_keys("joint", joint_raw, _JOINT_KEYS)
    if "accuracy" not in joint_raw:
        raise CalibrationError("joint.accuracy is missing: the plain joint network's test accuracy")
    names = []
    for i, m in enumerate(mods_raw):
        _check_keys(f"modality.{i}", m, _MOD_KEYS)
        if "accuracy" not in m:
            raise CalibrationError(f"modality.{i}.accuracy is missing: the uni-modal network's "
                                   "test accuracy")
        name = m.get("name", string.ascii_uppercase[i])
        if (not isinstance(name, str) or not 0 < len(name) <= 64
                or any(ch not in _NAME_CHARS for ch in name)):
            raise CalibrationError(f"modality.{i}.name must be 1 to 64 letters, digits, '_', '-' "
                                   f"or '.', got {name!r}")
        names.append(name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CalibrationError(f"modality names must be unique; repeated: {', '.join(dupes)}")

    # The accuracies, raw, with their keys: the scale is decided on all of them at once.
    acc_keys = [(f"modality.{i}.accuracy", _number(f"modality.{i}.accuracy", m["accuracy"]))
                for i, m in enumerate(mods_raw)]
    acc_keys.append(("joint.accuracy", _number("joint.accuracy", joint_raw["accuracy"])))
    for key, value in acc_keys:
        if value < 0:
            raise CalibrationError(f"{key} must not be negative, got {value:g}")

    classes = raw.get("classes")
    if classes is not None:
        whole = isinstance(classes, numbers.Integral) and not isinstance(classes, (bool, np.bool_))
        if not whole or not 2 <= classes <= MAX_CLASSES:
            shown = repr(classes) if not whole or abs(classes) < 10 ** 30 else \
                f"an integer of {len(str(abs(classes)))} digits"
            raise CalibrationError(f"classes must be a whole number from 2 to 10^9, got {shown}")
        classes = int(classes)
    chance_raw = None if raw.get("chance") is None else _number("chance", raw["chance"])
    if classes is None and chance_raw is None:
        raise CalibrationError("classes (or chance) is missing: give the number of classes, or "
                               "chance = the accuracy of a network that knows nothing")

    scale = raw.get("scale")
    if scale is not None and scale not in ("percent", "fraction"):
        raise CalibrationError(f"scale must be 'percent' or 'fraction', got {scale!r}")
    values = [v for _, v in acc_keys]
    if scale is None:
        if any(v > 1.0 for v in values):
            scale = "percent"
        else:
            ch_pct = (1.0 / classes) if chance_raw is None else chance_raw / 100.0
            if all(v / 100.0 > ch_pct for v in values):
                raise CalibrationError(
                    "the accuracies are ambiguous: every one is at most 1, yet read as percent "
                    "they would still be above chance; add scale = \"fraction\" or "
                    "scale = \"percent\"")
            scale = "fraction"
    percent = scale == "percent"
    # Only the accuracies decide the scale; a chance or all_wrong of at most 1 beside them
    # in an inferred-percent file may be a fraction the user forgot to convert.
    guessed_percent = percent and raw.get("scale") is None
    lowest = min(values) / 100.0
    if guessed_percent and chance_raw is not None and 0.0 < chance_raw <= 1.0 and \
            chance_raw < lowest and (classes is None or chance_raw >= 1.0 / classes - 1e-12):
        raise CalibrationError(_ambiguous("chance", chance_raw))
    div = 100.0 if percent else 1.0
    top = 100.0 if percent else 1.0

    def frac(key, value):
        if value > top:
            raise CalibrationError(f"{key} = {value:g} is above {top:g} "
                                   f"(accuracies are read as {scale}s)")
        return value / div

    if chance_raw is not None:
        chance = frac("chance", chance_raw)
        if not 0.0 < chance < 1.0:
            raise CalibrationError(f"chance must lie strictly between 0 and {top:g}, "
                                   f"got {chance_raw:g}")
        if classes is not None and chance < 1.0 / classes - 1e-12:
            raise CalibrationError(
                f"chance = {chance_raw:g} contradicts classes = {classes}: a network that knows "
                f"nothing scores at least {top / classes:.4g} (the largest class's share)")
    else:
        chance = 1.0 / classes

    tol = raw.get("tolerance", 1.0)
    tol = _number("tolerance", tol)
    if not 0.0 < tol <= 20.0:
        raise CalibrationError(f"tolerance must be in (0, 20] accuracy points, got {tol:g}")
    tolerance = tol / 100.0

    fr = {key: frac(key, v) for key, v in acc_keys}
    for key, value in fr.items():
        if value <= chance:
            hint = "check classes/chance"
            if percent and raw.get("scale") is None and value * div <= 1.0:
                hint = ("every accuracy is read as a percent because another is above 1: write "
                        "them all in percent or all as fractions")
            raise CalibrationError(
                f"{key} = {value * div:g} is not above chance ({chance * div:.4g}): a network at "
                f"or below chance knows nothing the calibration could use; {hint}")

    modalities = []
    for i, m in enumerate(mods_raw):
        key = f"modality.{i}"
        acc = fr[f"{key}.accuracy"]
        half = None
        if m.get("half_epoch") is not None:
            half = _number(f"{key}.half_epoch", m["half_epoch"])
            if half <= 0:
                raise CalibrationError(f"{key}.half_epoch must be positive, got {half:g}")
        curve = None
        if m.get("curve") is not None:
            curve = _curve(f"{key}.curve", m["curve"], base, frac)
            _check_curve_final(f"{key}.curve", curve, acc, tolerance, div)
            from_curve = half_epoch_from_curve(curve, chance)
            if from_curve is None:
                raise CalibrationError(f"{key}.curve never rises above chance")
            if from_curve <= 0:
                raise CalibrationError(
                    f"{key}.curve is already half-way from chance to its final accuracy at epoch "
                    f"{from_curve:g}, so it gives no half-epoch; add the earlier epochs or give "
                    f"{key}.half_epoch")
            if half is not None and abs(from_curve - half) > max(1.0, 0.25 * half):
                raise CalibrationError(
                    f"{key}.half_epoch = {half:g} contradicts {key}.curve, which is half-way "
                    f"from chance to its final accuracy at epoch {from_curve:.3g}")
            if half is None:
                half = from_curve
        modalities.append(Modality(names[i], acc, half, None if curve is None else tuple(curve)))
    joint = fr["joint.accuracy"]
    joint_curve = None
    if joint_raw.get("curve") is not None:
        joint_curve = tuple(_curve("joint.curve", joint_raw["curve"], base, frac))
        _check_curve_final("joint.curve", joint_curve, joint, tolerance, div)
    all_wrong = None
    if joint_raw.get("all_wrong") is not None:
        aw_raw = _number("joint.all_wrong", joint_raw["all_wrong"])
        if aw_raw < 0:
            raise CalibrationError(f"joint.all_wrong must not be negative, got {aw_raw:g}")
        all_wrong = frac("joint.all_wrong", aw_raw)
        errors = [1.0 - m.accuracy for m in modalities]
        hi = min(errors)
        lo = max(0.0, sum(errors) - (len(errors) - 1))
        if guessed_percent and 0.0 < aw_raw <= 1.0 and lo - 1e-12 <= aw_raw <= hi + 1e-12:
            raise CalibrationError(_ambiguous("joint.all_wrong", aw_raw))
        if all_wrong > hi + 1e-12:
            raise CalibrationError(
                f"joint.all_wrong = {aw_raw:g} contradicts the uni-modal accuracies: no more than "
                f"{hi * div:.4g} of the samples (the best network's error) can be wrong for all")
        if all_wrong < lo - 1e-12:
            raise CalibrationError(
                f"joint.all_wrong = {aw_raw:g} contradicts the uni-modal accuracies: their errors "
                f"overlap on at least {lo * div:.4g} of the samples")
    methods = _methods_table(raw.get("methods"))
    return Measurements(chance=chance, classes=classes, percent=percent, tolerance=tolerance,
                        modalities=tuple(modalities), joint=joint, joint_curve=joint_curve,
                        all_wrong=all_wrong, methods=methods)


def _ambiguous(key: str, value: float) -> str:
    return (f"{key} = {value:g} is ambiguous: the accuracies are in percent (one is above 1), "
            f"which reads it as {value:g} %, yet as a fraction it would be {100 * value:g} %; "
            f"write it in percent, or add scale = \"percent\" if {value:g} % is meant")


def _curve(key, value, base, frac):
    if isinstance(value, str):
        rows = _read_curve(key, base / value)
    elif isinstance(value, list):
        rows = []
        for j, row in enumerate(value):
            if not isinstance(row, list) or len(row) != 2:
                raise CalibrationError(f"{key}[{j}] must be a pair [epoch, accuracy], got {row!r}")
            rows.append((_number(f"{key}[{j}]", row[0]), _number(f"{key}[{j}]", row[1])))
        if len(rows) < 2 or any(b[0] <= a[0] for a, b in zip(rows, rows[1:])):
            raise CalibrationError(f"{key} needs at least two rows with increasing epochs")
    else:
        raise CalibrationError(f"{key} must be a CSV file name or a list of [epoch, accuracy] "
                               f"pairs, got {value!r}")
    out = []
    for e, a in rows:
        if a < 0:
            raise CalibrationError(f"{key}: accuracy {a:g} at epoch {e:g} is negative")
        if e < 0:
            raise CalibrationError(f"{key}: epoch {e:g} is negative; epochs count from 0")
        out.append((e, frac(f"{key} (epoch {e:g})", a)))
    return out


def _check_curve_final(key, curve, acc, tolerance, div):
    last = curve[-1][1]
    if abs(last - acc) > _CURVE_SLACK * tolerance:
        raise CalibrationError(
            f"{key} ends at {last * div:.4g}, which contradicts the stated accuracy "
            f"{acc * div:.4g} (more than {_CURVE_SLACK:g} tolerances apart)")


def _methods_table(value) -> dict:
    from .methods import METHOD_PARAMS

    if value is None:
        return {}
    value = _table("methods", value)
    out = {}
    for name, setting in value.items():
        if name not in METHOD_PARAMS:
            raise CalibrationError(f"unknown method methods.{name}; valid: "
                                   f"{', '.join(METHOD_PARAMS)}")
        spec = METHOD_PARAMS[name]
        if spec.param is None:
            raise CalibrationError(f"methods.{name}: method {name} has no setting to give")
        if isinstance(setting, dict):
            valid = (spec.param,) + (("start",) if spec.has_start else ())
            _check_keys(f"methods.{name}", setting, valid)
            setting = {k: _number(f"methods.{name}.{k}", v) for k, v in setting.items()}
        else:
            setting = {spec.param: _number(f"methods.{name}", setting)}
        if spec.param in setting:
            spec.check(f"methods.{name}", setting[spec.param], CalibrationError)
        if "start" in setting and not 0.0 <= setting["start"] < 1.0:
            raise CalibrationError(f"methods.{name}.start is the fraction of training before "
                                   f"the modulation starts, in [0, 1); got {setting['start']:g}")
        out[name] = setting
    return out
