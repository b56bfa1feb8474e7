"""The plan of a sweep: every run's config, its derived seed and its id, built up front."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..columns import result_columns
from ..config import Config, ConfigError, config_from_dict
from ..overrides import apply_overrides
from .grid import GridAxis, SweepError, expand_grid, parse_grid

__all__ = ["SEED_RULE", "MAX_RUNS", "SweepRun", "SweepPlan", "derive_seed", "run_id",
           "paired_keys",
           "plan_sweep", "csv_columns"]

SEED_RULE = (
    "seed = first uint64 word of numpy.random.SeedSequence(entropy=E).generate_state(1, uint64), "
    "shifted right by one bit (so 0 <= seed < 2**63), where E is the SHA-256 digest, read as a "
    "big-endian integer, of the UTF-8 canonical JSON (sorted keys, no spaces) of "
    '{"base_seed": <base config seed>, "point": [[key, value], ...] sorted by key, '
    '"repeat": <0..seeds-1>}, values as in the resolved config; the paired grid keys (by '
    'default the method.* axes) are left out of "point", so their values share seeds'
)

# Planning builds and validates one config per grid point (about a millisecond each) and
# holds every run in memory: past this many runs a sweep is refused unless asked for.
MAX_RUNS = 100_000


def csv_columns(grid_keys: Sequence[str], names: Sequence[str]) -> list[str]:
    """All columns of results.csv: grid keys, ``repeat``, ``seed``, then the result columns.

    The result columns (each modality's settings, the measured and predicted
    quantities, ``status``) are :func:`simcomp.columns.result_columns`.
    """
    return list(grid_keys) + ["repeat", "seed"] + result_columns(names)


def _too_many(runs: int, points: int, seeds: int, limit: int) -> SweepError:
    return SweepError(
        f"the sweep plans {runs} runs ({points} grid point{'s' * (points != 1)} x {seeds} "
        f"seed{'s' * (seeds != 1)}), more than the limit of {limit}; pass --max-runs {runs} "
        f"(plan_sweep(..., max_runs={runs}) from Python) to plan it anyway"
    )


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=True)


def derive_seed(
    base_seed: int, point: dict[str, Any] | Iterable[tuple[str, Any]], repeat: int
) -> int:
    """The seed of one run: a function of the base seed, the point's content and the repeat.

    Independent of the order of the axes and of the other points, so adding
    grid values or axes' order never reseeds an existing point.  See
    :data:`SEED_RULE`; the result is a non-negative int < 2**63.
    """
    items = sorted((dict(point)).items(), key=lambda kv: kv[0])
    payload = _canonical_json(
        {"base_seed": int(base_seed), "point": [[k, v] for k, v in items], "repeat": int(repeat)}
    )
    entropy = int.from_bytes(hashlib.sha256(payload.encode("utf-8")).digest(), "big")
    word = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return int(word) >> 1


def _identity_dict(cfg: Config) -> dict[str, Any]:
    """The config as a dict without execution-only settings (train.threads)."""
    raw = cfg.to_dict()
    raw["train"].pop("threads", None)
    return raw


def run_id(cfg: Config) -> str:
    """A stable id of a run: 16 hex digits of the SHA-256 of its canonical config.

    ``train.threads`` is left out: it decides how a run is executed, not
    what it computes.
    """
    return _hash_id(_identity_dict(cfg))


def _hash_id(identity: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical_json(identity).encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its place in the plan, its seed, its config and its id."""

    index: int
    point: tuple  # ((key, value), ...) in axis order
    repeat: int
    seed: int
    cfg: Config
    run_id: str


@dataclass
class SweepPlan:
    """A validated sweep: the base config, the axes, the seeds and every run's config."""

    base: Config
    axes: list
    seeds: int
    points: list
    runs: list
    names: tuple
    paired: tuple = ()  # grid keys left out of the seed derivation (paired comparisons)

    @property
    def grid_keys(self) -> list[str]:
        return [axis.key for axis in self.axes]

    @property
    def columns(self) -> list[str]:
        return csv_columns(self.grid_keys, self.names)

    @property
    def result_columns(self) -> list[str]:
        return result_columns(self.names)

    def definition(self) -> dict[str, Any]:
        """What identifies the sweep (stored in sweep.json, compared when resuming)."""
        return {
            "base_config": self.base.to_dict(),
            "grids": [
                {"key": axis.key, "spec": axis.spec, "values": list(axis.values)}
                for axis in self.axes
            ],
            "seeds": self.seeds,
            "seed_rule": SEED_RULE,
            "paired": list(self.paired),
        }


def _get_path(raw: Any, key: str) -> Any:
    node = raw
    for part in key.split("."):
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node


def _read_setting(cfg: Config, key: str) -> Any:
    """The resolved value of a dotted key; the fusion engine's keys at their defaults are
    left out of ``cfg.to_dict()``, so those are read from the config's fields."""
    try:
        return _get_path(cfg.to_dict(), key)
    except KeyError:
        node: Any = cfg
        for part in key.split("."):
            node = node[int(part)] if isinstance(node, (list, tuple)) else getattr(node, part)
        if dataclasses.is_dataclass(node):
            raise KeyError(key) from None
        return list(node) if isinstance(node, tuple) else node


def _build(base_raw: dict[str, Any], assignments: Sequence[tuple[str, Any]]) -> Config:
    return config_from_dict(apply_overrides(base_raw, list(assignments)))


def paired_keys(grid_keys: Sequence[str], paired: Sequence[str] | bool | None = None) -> list:
    """The grid keys left out of the seed derivation (see :func:`plan_sweep`)."""
    if paired is None or paired is True:
        return [key for key in grid_keys if key.startswith("method.")]
    if paired is False:
        return []
    if isinstance(paired, str):  # one key, or KEY,KEY as the command's --paired
        paired = [key for key in paired.split(",") if key]
    try:
        paired = list(paired)
    except TypeError:
        raise SweepError(f"paired must be a list of grid keys, True or False, got {paired!r} "
                         f"({type(paired).__name__})") from None
    unknown = [key for key in paired if key not in grid_keys]
    if unknown:
        raise SweepError(f"paired key {unknown[0]!r} is not a grid axis; the axes are "
                         f"{', '.join(grid_keys) or '(none)'}")
    return list(paired)


def plan_sweep(base: Config, grids: Sequence[str | GridAxis], seeds: int,
               max_runs: int = MAX_RUNS,
               paired: Sequence[str] | bool | None = None) -> SweepPlan:
    """Parse the grids, build and validate every run's config, derive the seeds.

    Nothing runs here; a bad value fails before any run starts.

    ``paired`` lists grid keys whose values share seeds: the seed of a run
    is derived from the point without them, so every value of a paired axis
    sees the same data and initial weights at a grid point (a paired
    comparison).  Default (None or True): the ``method.*`` axes, so that
    training methods are compared on the same draws; False or ``[]``: no
    key (every point its own seeds).

    Examples
    --------
    >>> import simcomp
    >>> from simcomp.sweep import plan_sweep
    >>> plan = plan_sweep(simcomp.build_config(), ["method.name=none,aux"], seeds=2)
    >>> [run.seed for run in plan.runs[:2]] == [run.seed for run in plan.runs[2:]]
    True

    Raises
    ------
    SweepError / ConfigError
        A malformed grid, a value the config refuses (the message names the
        grid key and the value), repeated keys or values, grid points whose
        modality names differ, seeds < 1, more than ``max_runs`` runs (refused
        before any config is built).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SweepError(f"--seeds must be a positive integer, got {seeds!r}")
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise SweepError(f"--max-runs must be a positive integer, got {max_runs!r}")
    if seeds > max_runs:
        raise _too_many(seeds, 1, seeds, max_runs)
    axes_in = [parse_grid(g, max_values=max_runs) if isinstance(g, str) else g for g in grids]
    points_planned = math.prod(len(axis.values) for axis in axes_in)
    if points_planned * seeds > max_runs:
        raise _too_many(points_planned * seeds, points_planned, seeds, max_runs)
    keys = [axis.key for axis in axes_in]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise SweepError(
            f"--grid {dupes[0]} is given more than once; list all its values in one --grid")
    base_raw = base.to_dict()

    # Each value alone, so that the error names the key and the value; normalise by reading back.
    axes = []
    for axis in axes_in:
        normal = []
        for value in axis.values:
            try:
                cfg = _build(base_raw, [(axis.key, value)])
            except ConfigError as exc:
                raise SweepError(f"--grid {axis.key}={axis.spec}: value {value!r}: {exc}") from None
            try:
                normal.append(_read_setting(cfg, axis.key))
            except (KeyError, IndexError, ValueError, AttributeError):
                raise SweepError(f"--grid {axis.key}: not a config setting") from None
        for value in normal:
            if isinstance(value, (dict, list)):
                raise SweepError(
                    f"--grid {axis.key}: grid keys must name single settings (e.g. "
                    f"data.modality.0.beta), not a section or a list"
                )
        seen = [_canonical_json(v) for v in normal]
        repeated = [v for v, s in zip(normal, seen) if seen.count(s) > 1]
        if repeated:
            raise SweepError(
                f"--grid {axis.key}={axis.spec}: the value {repeated[0]!r} appears more than once"
            )
        axes.append(GridAxis(key=axis.key, spec=axis.spec, values=tuple(normal)))

    points = expand_grid(axes)
    shared = set(paired_keys([axis.key for axis in axes], paired))
    runs, names = [], None
    for point in points:
        try:
            cfg_point = _build(base_raw, point)
        except ConfigError as exc:
            where = ", ".join(f"{k}={v!r}" for k, v in point)
            raise SweepError(f"--grid point {where}: {exc}") from None
        if names is None:
            names, first_point = cfg_point.names, point
        elif cfg_point.names != names:
            here = ", ".join(f"{k}={v!r}" for k, v in point)
            there = ", ".join(f"{k}={v!r}" for k, v in first_point) or "the base config"
            raise SweepError(
                f"--grid point {here} has modalities {', '.join(cfg_point.names)} but {there} has "
                f"{', '.join(names)}; every grid point of a sweep must have the same modality "
                f"names (results.csv has columns per modality name)"
            )
        identity = _identity_dict(cfg_point)  # once per point: asdict is slow
        for repeat in range(seeds):
            seed = derive_seed(base.seed, [(k, v) for k, v in point if k not in shared], repeat)
            cfg = dataclasses.replace(cfg_point, seed=seed)
            identity["seed"] = seed
            runs.append(SweepRun(index=len(runs), point=point, repeat=repeat, seed=seed, cfg=cfg,
                                 run_id=_hash_id(identity)))
    return SweepPlan(base=base, axes=axes, seeds=seeds, points=points, runs=runs,
                     names=tuple(names), paired=tuple(k for k in keys if k in shared))
