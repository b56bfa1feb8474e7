"""Sweeps: grids of configs times seeds, run in parallel, recorded run by run, resumable.

A sweep is a base config, a list of grid axes (``KEY=START:STOP:NUM`` or
``KEY=V1,V2,...``) and a number of seeds.  The cartesian product of the axes
gives the grid points; each point is run ``seeds`` times (repeats
``0..seeds-1``), every run with its own seed derived from the base seed, the
point's content and the repeat (:func:`derive_seed`).

Every configuration is built and validated before anything runs, so a bad
grid value stops the sweep at once with a message naming its key.

Each finished run is written as its own record ``DIR/runs/<run_id>.json``
(temporary file, then rename), ``run_id`` being a hash of the run's config.
Rerunning the same command skips the recorded runs; ``DIR/results.csv`` is
rebuilt from the records once every run is recorded, in plan order (grid
point, then repeat), so it does not depend on which invocation ran which run.

Execution: :func:`run_batch` is the single point where runs are trained;
batches of configs go to a local process pool (default), a thread pool, the
calling process (one worker) or a Dask cluster.  The format of the outputs
is documented in ``docs/sweeps.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .config import (
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    ModalityConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    build_config,
    config_from_dict,
)
from .outputs import OutputError, dumps_json, provenance, write_text_atomic

__all__ = [
    "SweepError",
    "SweepRunError",
    "GridAxis",
    "SweepRun",
    "SweepPlan",
    "SweepResult",
    "SEED_RULE",
    "parse_grid",
    "expand_grid",
    "derive_seed",
    "run_id",
    "plan_sweep",
    "result_columns",
    "csv_columns",
    "result_row",
    "run_batch",
    "default_batch_size",
    "run_sweep",
    "read_results",
    "sweep_report",
    "add_sweep_parser",
    "run_sweep_command",
]

FORMAT_VERSION = 1

SEED_RULE = (
    "seed = first uint64 word of numpy.random.SeedSequence(entropy=E).generate_state(1, uint64), "
    "shifted right by one bit (so 0 <= seed < 2**63), where E is the SHA-256 digest, read as a "
    "big-endian integer, of the UTF-8 canonical JSON (sorted keys, no spaces) of "
    '{"base_seed": <base config seed>, "point": [[key, value], ...] sorted by key, '
    '"repeat": <0..seeds-1>}, values as in the resolved config'
)

# What a batch of runs should take, in seconds, when --batch-size is not given.
_BATCH_SECONDS = 3.0
# At least this many batches per worker, so that the last batches do not leave cores idle.
_BATCHES_PER_WORKER = 4
# Rough single-thread speed of the training loop (multiply-adds per second) and fixed costs,
# measured on the default config; used only to size batches.
_MADDS_PER_SECOND = 1.2e9
_SECONDS_PER_RUN = 0.02
_SECONDS_PER_STEP = 1e-4


class SweepError(ConfigError):
    """Bad sweep input (a grid, the seeds, the workers, a missing optional dependency).

    A :class:`~simcomp.config.ConfigError`, so that the CLI reports it in one
    line with exit code 2.
    """


class SweepRunError(RuntimeError):
    """Runs could not be executed (a worker died, a batch failed on the cluster)."""


# --------------------------------------------------------------------------- grid parsing

_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
                    "method": MethodConfig}
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
    elif len(parts) == 2 and parts[0] in _SECTION_CLASSES:
        cls, name = _SECTION_CLASSES[parts[0]], parts[1]
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


def _linspace(key: str, spec: str, start_text: str, stop_text: str, num_text: str) -> list:
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
    values = np.linspace(float(start), float(stop), num)
    if kind == "float":
        return [float(v) for v in values]
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


def parse_grid(text: str) -> GridAxis:
    """Parse one ``--grid`` argument.

    ``KEY=START:STOP:NUM`` gives NUM evenly spaced values from START to STOP
    (both included); for an integer setting (``train.steps``,
    ``data.n_train``, ``data.modality.0.dim``, ...) they must be whole numbers.
    ``KEY=V1,V2,...`` lists TOML literals (bare words are strings), like
    ``--set``.  Values are checked against the config later, by
    :func:`plan_sweep`; this only reads the text.

    Raises
    ------
    SweepError
        Malformed text, a bad linspace, an empty or non-scalar value.
    """
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
        values = _linspace(key, spec, *match.groups())
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


# --------------------------------------------------------------------------- seeds and ids


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

    @property
    def grid_keys(self) -> list[str]:
        return [axis.key for axis in self.axes]

    @property
    def columns(self) -> list[str]:
        return csv_columns(self.grid_keys, self.names)

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
        }


def _get_path(raw: Any, key: str) -> Any:
    node = raw
    for part in key.split("."):
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node


def _build(base_raw: dict[str, Any], assignments: Sequence[tuple[str, Any]]) -> Config:
    return config_from_dict(apply_overrides(base_raw, list(assignments)))


def plan_sweep(base: Config, grids: Sequence[str | GridAxis], seeds: int) -> SweepPlan:
    """Parse the grids, build and validate every run's config, derive the seeds.

    Nothing runs here; a bad value fails before any run starts.

    Raises
    ------
    SweepError / ConfigError
        A malformed grid, a value the config refuses (the message names the
        grid key and the value), repeated keys or values, grid points whose
        modality names differ, seeds < 1.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SweepError(f"--seeds must be a positive integer, got {seeds!r}")
    axes_in = [parse_grid(g) if isinstance(g, str) else g for g in grids]
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
                normal.append(_get_path(cfg.to_dict(), axis.key))
            except (KeyError, IndexError, ValueError):
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
            seed = derive_seed(base.seed, point, repeat)
            cfg = dataclasses.replace(cfg_point, seed=seed)
            identity["seed"] = seed
            runs.append(SweepRun(index=len(runs), point=point, repeat=repeat, seed=seed, cfg=cfg,
                                 run_id=_hash_id(identity)))
    return SweepPlan(base=base, axes=axes, seeds=seeds, points=points, runs=runs,
                     names=tuple(names))


# --------------------------------------------------------------------------- rows

_PER_MODALITY = (
    "gamma",
    "pi",
    "learned_step_joint",
    "race_step_joint",
    "predicted_step_joint",
    "final_alignment_joint",
    "learned_step_alone",
    "race_step_alone",
    "predicted_step_alone",
    "final_alignment_alone",
    "test_error_alone",
    "predicted_error_alone_noiseless",
    "predicted_error_alone_coinflip",
    "learned_by_T_joint",
    "predicted_by_T_joint",
)
_TAIL = (
    "winner",
    "predicted_winner",
    "test_error_joint",
    "predicted_error_joint_noiseless",
    "predicted_error_joint_coinflip",
    "best_unimodal",
    "best_unimodal_error",
    "gap",
    "x",
    "status",
)


def result_columns(names: Sequence[str]) -> list[str]:
    """The result columns of a run with these modality names (no grid keys, repeat, seed)."""
    return [f"{col}_{name}" for col in _PER_MODALITY for name in names] + list(_TAIL)


def csv_columns(grid_keys: Sequence[str], names: Sequence[str]) -> list[str]:
    """All columns of results.csv: grid keys, ``repeat``, ``seed``, then :func:`result_columns`."""
    return list(grid_keys) + ["repeat", "seed"] + result_columns(names)


def result_row(exp, seconds: float | None = None) -> dict[str, Any]:
    """The flat result row of one experiment (see ``docs/sweeps.md`` for every column).

    ``exp`` is a :class:`simcomp.experiment.Experiment`.  Values are plain
    JSON types; ``None`` marks never / not applicable (an empty CSV cell).
    """
    from . import theory
    from .experiment import comparison, run_summary

    cfg = exp.cfg
    names = list(cfg.names)
    runs = {run.name: run_summary(cfg, exp.data, run, exp.predictions[run.name])
            for run in exp.runs}
    row: dict[str, Any] = {"seed": cfg.seed}
    row.update({col: None for col in result_columns(names)})
    joint = runs.get("joint")
    for name in names:
        alone = runs.get(f"unimodal-{name}")
        any_run = joint if joint is not None else alone
        if any_run is not None:
            row[f"gamma_{name}"] = any_run["initial_leading_alignment"][name]
            row[f"pi_{name}"] = any_run["presence_fraction"][name]
        for suffix, run in (("joint", joint), ("alone", alone)):
            if run is not None:
                row[f"learned_step_{suffix}_{name}"] = run["learned_step"][name]
                row[f"race_step_{suffix}_{name}"] = run["race_learned_step"][name]
                row[f"predicted_step_{suffix}_{name}"] = run["predicted_learned_step"][name]
                row[f"final_alignment_{suffix}_{name}"] = run["final_leading_alignment"][name]
        if joint is not None:
            row[f"learned_by_T_joint_{name}"] = joint["learned_step"][name] is not None
            row[f"predicted_by_T_joint_{name}"] = joint["learned_by_horizon"][name]
        if alone is not None:
            row[f"test_error_alone_{name}"] = alone["test_error"]
            predicted = alone["predicted_test_error"]
            row[f"predicted_error_alone_noiseless_{name}"] = predicted["noiseless"]
            row[f"predicted_error_alone_coinflip_{name}"] = predicted["coin_flip"]
    if joint is not None:
        row["winner"] = joint["winner"]
        row["predicted_winner"] = joint["predicted_winner"]
        row["test_error_joint"] = joint["test_error"]
        row["predicted_error_joint_noiseless"] = joint["predicted_test_error"]["noiseless"]
        row["predicted_error_joint_coinflip"] = joint["predicted_test_error"]["coin_flip"]
        if cfg.K == 2:
            pred = exp.predictions["joint"]
            q = 1.0 if cfg.model.activation == "relu" else cfg.model.q  # as theory.predict's race
            row["x"] = theory.winner_coordinate(pred.kappa, pred.gamma, q)
    comp = comparison(runs)
    if comp is not None:
        row["best_unimodal"] = comp["best_unimodal"]
        row["best_unimodal_error"] = comp["best_unimodal_test_error"]
        row["gap"] = comp["gap"]
    bad = [f"{name}={run['status']}" for name, run in runs.items() if run["status"] != "ok"]
    row["status"] = ";".join(bad) if bad else "ok"
    row["seconds"] = seconds
    return json.loads(dumps_json(row))  # plain JSON values: numpy unwrapped, inf/nan -> None


def run_batch(configs: list[Config]) -> list[dict[str, Any]]:
    """Train and predict every config of a batch; one result row per config, in order.

    The single point where a sweep executes runs (local pools and Dask
    workers call it).  Runs of equal shape across the batch train together
    inside compiled calls (:func:`simcomp.train.train_batch`), traced only at
    their first and last step: a row needs nothing in between.
    """
    from .experiment import run_experiments

    start = time.perf_counter()
    experiments = run_experiments(list(configs), record=False)
    share = (time.perf_counter() - start) / max(len(experiments), 1)
    return [result_row(exp, share) for exp in experiments]


# --------------------------------------------------------------------------- batch size


def _estimate_seconds(cfg: Config) -> float:
    """A rough single-thread cost of one run of ``cfg`` (only used to size batches)."""
    from .train import run_plan

    n_train = 2 ** (cfg.K + 1) if cfg.data.population else cfg.data.n_train
    n_test = 0 if cfg.data.population else cfg.data.n_test
    per_neuron = cfg.model.banks * cfg.model.width
    records = cfg.train.steps / cfg.train.trace_every + 1
    madds, plan = 0.0, run_plan(cfg)
    for _, trained in plan:
        width = max(cfg.data.modality[r].dim for r in trained)
        unit = len(trained) * width * per_neuron
        madds += 2.0 * cfg.train.steps * n_train * unit + records * (n_train + n_test) * unit
    return (madds / _MADDS_PER_SECOND + len(plan) * (_SECONDS_PER_RUN + cfg.train.steps
                                                    * _SECONDS_PER_STEP))


def default_batch_size(runs: Sequence[SweepRun], workers: int) -> int:
    """Runs per batch: about :data:`_BATCH_SECONDS` of work, but enough batches for every worker."""
    if not runs:
        return 1
    sample = runs[:: max(1, len(runs) // 200)]  # grids may change the cost (steps, n, dim)
    per_run = max(sum(_estimate_seconds(run.cfg) for run in sample) / len(sample), 1e-3)
    by_time = max(1, int(_BATCH_SECONDS / per_run))
    by_balance = max(1, math.ceil(len(runs) / (_BATCHES_PER_WORKER * max(workers, 1))))
    return max(1, min(by_time, by_balance))


# --------------------------------------------------------------------------- the store


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            out.update(_flatten(value, f"{prefix}{index}."))
    else:
        out[prefix[:-1]] = obj
    return out


def _comparable(definition: dict[str, Any]) -> dict[str, Any]:
    """The parts of a definition that decide the runs (not the grid text, not train.threads)."""
    base = json.loads(json.dumps(definition.get("base_config")))
    if isinstance(base, dict) and isinstance(base.get("train"), dict):
        base["train"].pop("threads", None)
    return {
        "base_config": base,
        "grids": [[g.get("key"), g.get("values")] for g in definition.get("grids", [])],
        "seeds": definition.get("seeds"),
        "seed_rule": definition.get("seed_rule"),
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two comparable definitions (stored vs. now)."""
    out = []
    if old["seeds"] != new["seeds"]:
        out.append(f"--seeds {old['seeds']} (stored) vs {new['seeds']} (now)")
    old_keys = [g[0] for g in old["grids"]]
    new_keys = [g[0] for g in new["grids"]]
    if old_keys != new_keys:
        out.append(f"grid keys {', '.join(old_keys) or '(none)'} (stored) vs "
                   f"{', '.join(new_keys) or '(none)'} (now)")
    else:
        for (key, old_vals), (_, new_vals) in zip(old["grids"], new["grids"]):
            if old_vals != new_vals:
                out.append(f"grid {key} values {old_vals} (stored) vs {new_vals} (now)")
    if old["base_config"] != new["base_config"]:
        flat_old, flat_new = _flatten(old["base_config"]), _flatten(new["base_config"])
        for key in sorted(set(flat_old) | set(flat_new)):
            if flat_old.get(key, "(unset)") != flat_new.get(key, "(unset)"):
                out.append(f"base config {key} = {flat_old.get(key, '(unset)')!r} (stored) vs "
                           f"{flat_new.get(key, '(unset)')!r} (now)")
    if old["seed_rule"] != new["seed_rule"]:
        out.append("the seed derivation rule (the directory was made by another simcomp version)")
    return out


class _Store:
    """The sweep directory: sweep.json, runs/<run_id>.json records, results.csv, a lock."""

    SWEEP_JSON = "sweep.json"
    RESULTS = "results.csv"
    RUNS = "runs"
    LOCK = ".simcomp-sweep.lock"

    def __init__(self, path: Path):
        self.path = path
        self.runs_dir = path / self.RUNS
        self._lock_handle = None

    # ---- opening

    @classmethod
    def open(cls, path: str | Path, plan: SweepPlan, force: bool) -> "_Store":
        """Check DIR against the plan, lock it; with ``force`` remove the old sweep's files."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise OutputError(f"output path {str(path)!r} exists and is not a directory")
        parent = path.absolute().parent
        if not parent.is_dir():
            raise OutputError(f"cannot create {str(path)!r}: parent directory {str(parent)!r} "
                              f"does not exist")
        store = cls(path)
        sweep_json = path / cls.SWEEP_JSON
        if path.is_dir() and not sweep_json.exists() and not force:
            foreign = [p.name for p in path.iterdir() if p.name != cls.LOCK]
            if foreign:
                raise OutputError(
                    f"output directory {str(path)!r} is not empty and holds no sweep (no "
                    f"sweep.json); choose another --out or pass --force to write a sweep there"
                )
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {str(path)!r}: {exc.strerror}") from None
        store._lock()
        try:
            if sweep_json.exists() and not force:
                try:
                    stored = json.loads(sweep_json.read_text(encoding="utf-8"))["definition"]
                    old = _comparable(stored)
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    raise OutputError(
                        f"{str(sweep_json)!r} cannot be read as a simcomp sweep; choose another "
                        f"--out or pass --force to start over"
                    ) from None
                new = _comparable(json.loads(dumps_json(plan.definition())))
                diffs = _differences(old, new)
                if diffs:
                    shown = "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")
                    raise OutputError(
                        f"{str(path)!r} holds a different sweep: {shown}. Choose another --out, "
                        f"or pass --force to delete its runs and start over"
                    )
            if force:
                shutil.rmtree(store.runs_dir, ignore_errors=True)
                (path / cls.RESULTS).unlink(missing_ok=True)
                sweep_json.unlink(missing_ok=True)
            store.runs_dir.mkdir(exist_ok=True)
            for tmp in store.runs_dir.glob(".*.tmp"):  # left by a process killed mid-write
                tmp.unlink(missing_ok=True)
        except BaseException:
            store.close()
            raise
        return store

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            return
        handle = open(self.path / self.LOCK, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise OutputError(
                f"another simcomp sweep is writing to {str(self.path)!r}; wait for it or choose "
                f"another --out"
            ) from None
        self._lock_handle = handle

    def close(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # ---- records

    def record_path(self, rid: str) -> Path:
        return self.runs_dir / f"{rid}.json"

    def load(self, run: SweepRun) -> dict[str, Any] | None:
        """The record of a finished run, or None (missing or unreadable: run it again)."""
        try:
            record = json.loads(self.record_path(run.run_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("run_id") != run.run_id or not isinstance(
                record.get("row"), dict):
            return None
        return record

    def write(self, run: SweepRun, row: dict[str, Any]) -> dict[str, Any]:
        record = {
            "format": FORMAT_VERSION,
            "run_id": run.run_id,
            "point": dict(run.point),
            "repeat": run.repeat,
            "seed": run.seed,
            "config": run.cfg.to_dict(),
            "row": row,
        }
        text = dumps_json(record)
        write_text_atomic(self.record_path(run.run_id), text)
        return json.loads(text)  # exactly what a later invocation will read back

    def write_sweep_json(self, content: dict[str, Any]) -> None:
        write_text_atomic(self.path / self.SWEEP_JSON, dumps_json(content))

    def write_results(self, text: str) -> None:
        write_text_atomic(self.path / self.RESULTS, text)

    def remove_results(self) -> None:
        (self.path / self.RESULTS).unlink(missing_ok=True)


# --------------------------------------------------------------------------- results.csv


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def _results_text(plan: SweepPlan, rows: dict[str, dict[str, Any]]) -> str:
    """results.csv from the recorded rows (by run id), in plan order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = plan.columns
    writer.writerow(columns)
    result_cols = result_columns(plan.names)
    for run in plan.runs:
        row = rows[run.run_id]
        cells = [_cell(v) for _, v in run.point] + [_cell(run.repeat), _cell(run.seed)]
        cells += [_cell(row.get(col)) for col in result_cols]
        writer.writerow(cells)
    return buf.getvalue()


def read_results(path: str | Path) -> list[dict[str, str]]:
    """results.csv as a list of dicts of strings (empty string = None)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- executors


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int) -> None:
    """Worker processes leave Ctrl-C to the parent and exit when the parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _execute_serial(batches, on_done) -> None:
    for batch in batches:
        on_done(batch, run_batch([run.cfg for run in batch]))


def _execute_pool(batches, workers: int, kind: str, on_done) -> None:
    import concurrent.futures as cf
    import multiprocessing

    if kind == "threads":
        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simcomp-sweep")
    else:
        # spawn: numba's thread pools are not fork-safe, and a fresh process costs ~1 s once.
        pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init, initargs=(os.getpid(),),
        )
    futures: dict = {}
    try:
        futures = {pool.submit(run_batch, [run.cfg for run in batch]): batch for batch in batches}
        for future in cf.as_completed(futures):
            try:
                rows = future.result()
            except cf.process.BrokenProcessPool:
                raise SweepRunError(
                    "a worker process died (killed? out of memory? or, from a Python script, a "
                    "missing `if __name__ == '__main__':` guard: workers are started with spawn); "
                    "the runs recorded so far are kept, rerun the same command to resume"
                ) from None
            on_done(futures[future], rows)
    except BaseException:
        # Abandon the runs in flight: terminate the workers (shutdown() forgets them, so first).
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for future in futures:
            future.cancel()
        for proc in processes:
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise SweepError(
            "--scheduler needs dask.distributed, which is not installed; install "
            "simcomp[distributed] (pip install 'simcomp[distributed]')"
        ) from None
    return distributed


def _connect(address: str):
    """A Client of the dask scheduler at ``address``; a SweepError when there is none."""
    distributed = _import_distributed()
    try:
        return distributed.Client(address, timeout="30s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"--scheduler {address}: cannot connect to a dask scheduler there: "
                         f"{exc}") from None


def _execute_dask(batches, scheduler, workers: int, on_done, own_client: bool) -> None:
    """Run the batches on ``scheduler`` ("local" or a Client; closed after if ``own_client``)."""
    distributed = _import_distributed()
    cluster = None
    if scheduler == "local":
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
        )
        client, own_client = distributed.Client(cluster), True
    else:
        client = scheduler
    futures = []
    try:
        by_key = {}
        for batch in batches:
            future = client.submit(run_batch, [run.cfg for run in batch], retries=2, pure=False)
            futures.append(future)
            by_key[future.key] = batch
        for future in distributed.as_completed(futures):
            try:
                rows = future.result()
            except Exception as exc:
                raise SweepRunError(
                    f"a batch failed on the cluster after 2 retries ({type(exc).__name__}: {exc}); "
                    f"the runs recorded so far are kept, rerun the same command to resume"
                ) from exc
            on_done(by_key[future.key], rows)
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- running


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: counts, the rows in plan order, the files written."""

    plan: SweepPlan
    out: Path
    total: int
    done_before: int
    ran: int
    seconds: float
    rows: list = field(default_factory=list)  # full CSV rows (dicts), plan order, when complete
    results_path: Path | None = None
    sweep_json_path: Path | None = None
    executor: str = ""
    workers: int = 1
    batch_size: int = 1

    @property
    def not_ok(self) -> int:
        return sum(1 for row in self.rows if row.get("status") != "ok")


def run_sweep(
    plan: SweepPlan,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: Any = None,
    batch_size: int | None = None,
    force: bool = False,
    executor: str = "processes",
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Run the missing runs of ``plan`` into ``out`` and write results.csv once all are recorded.

    Parameters
    ----------
    plan : SweepPlan
        From :func:`plan_sweep`.
    out : path
        The sweep directory; an existing one must hold the same sweep
        (else :class:`OutputError`) unless ``force``, which deletes its runs.
    workers : int, optional
        Parallel workers (default ``os.cpu_count()``); with more than one,
        each run uses one numba thread (``train.threads = 1``).
    scheduler : str or distributed.Client, optional
        A dask scheduler address, ``"local"`` for a LocalCluster of
        ``workers`` single-threaded processes, or a connected Client.
    batch_size : int, optional
        Runs per dispatched batch (default: :func:`default_batch_size`).
    executor : {"processes", "threads"}
        The local pool when ``workers > 1`` and no scheduler is given.
    progress : callable, optional
        Called with the number of runs just recorded, after each batch.
    log : callable, optional
        Receives one-line status messages (resume counts).
    on_start : callable, optional
        Called with (runs already recorded, runs to do) before running.

    Raises
    ------
    KeyboardInterrupt
        Passed on after the in-flight runs are abandoned; every recorded run
        stays, and sweep.json says how many.
    """
    start = time.perf_counter()
    if executor not in ("processes", "threads"):
        raise SweepError(f"executor must be 'processes' or 'threads', got {executor!r}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SweepError(f"--workers must be a positive integer, got {workers!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise SweepError(f"--batch-size must be a positive integer, got {batch_size!r}")
    own_client = False
    scheduler_text = _scheduler_text(scheduler)
    if scheduler is not None:
        _import_distributed()  # fail before touching the directory
        if isinstance(scheduler, str) and scheduler != "local":
            scheduler, own_client = _connect(scheduler), True

    try:
        store = _Store.open(out, plan, force)
    except BaseException:
        if own_client:
            scheduler.close()
        raise
    try:
        records: dict[str, dict[str, Any]] = {}  # run id -> recorded row
        for run in plan.runs:
            record = store.load(run)
            if record is not None:
                records[run.run_id] = record["row"]
        pending = [run for run in plan.runs if run.run_id not in records]
        done_before = len(plan.runs) - len(pending)
        if scheduler is not None:
            kind = "dask"
        elif workers == 1 or len(pending) <= 1:
            kind = "serial"
        else:
            kind = executor
        if batch_size is None:
            batch_size = default_batch_size(pending, workers)
        batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
        if kind == "threads" or kind == "processes":
            workers = min(workers, len(batches))
        if kind != "serial":
            # Parallelism is across runs: one numba thread per run.
            batches = [[_single_threaded(run) for run in batch] for batch in batches]

        def counts(complete: bool) -> dict[str, Any]:
            return {
                "grid_points": len(plan.points),
                "seeds": plan.seeds,
                "runs": len(plan.runs),
                "done": len(records),
                "done_before": done_before,
                "ran": len(records) - done_before,
                "complete": complete,
            }

        def sweep_json(complete: bool) -> dict[str, Any]:
            out_obj = {"format": FORMAT_VERSION, "definition": plan.definition(),
                       "columns": plan.columns, "counts": counts(complete)}
            out_obj["execution"] = {"executor": kind, "workers": workers, "batch_size": batch_size,
                                    "scheduler": scheduler_text}
            out_obj["provenance"] = provenance()
            return out_obj

        if pending:
            store.remove_results()  # results.csv exists only for a complete sweep
        store.write_sweep_json(sweep_json(complete=not pending))
        if log is not None:
            if done_before and pending:
                log(f"{done_before}/{len(plan.runs)} runs already done, running {len(pending)}")
            elif not pending:
                log(f"all {len(plan.runs)} runs already done; rebuilding results.csv")
            else:
                log(f"running {len(plan.runs)} runs ({len(plan.points)} grid "
                    f"point{'s' * (len(plan.points) != 1)} x {plan.seeds} "
                    f"seed{'s' * (plan.seeds != 1)}), {kind}"
                    + ("" if kind == "serial" else f", {workers} workers")
                    + f", batches of {batch_size}")
        if on_start is not None:
            on_start(done_before, len(pending))

        def on_done(batch: list[SweepRun], rows: list[dict[str, Any]]) -> None:
            if len(rows) != len(batch):
                raise SweepRunError(f"run_batch returned {len(rows)} rows for {len(batch)} runs")
            for run, row in zip(batch, rows):
                records[run.run_id] = store.write(run, row)["row"]
            if progress is not None:
                progress(len(batch))

        try:
            if not batches:
                pass
            elif kind == "serial":
                _execute_serial(batches, on_done)
            elif kind == "dask":
                owned, own_client = own_client, False  # _execute_dask closes it
                _execute_dask(batches, scheduler, workers, on_done, owned)
            else:
                _execute_pool(batches, workers, kind, on_done)
        except BaseException:
            store.write_sweep_json(sweep_json(complete=False))
            raise

        store.write_results(_results_text(plan, records))
        store.write_sweep_json(sweep_json(complete=True))
    finally:
        store.close()
        if own_client:  # connected, but nothing was left to run on it
            scheduler.close()
    rows = []
    for run in plan.runs:
        row = dict(run.point)
        row.update({"repeat": run.repeat, "seed": run.seed})
        row.update({col: records[run.run_id].get(col) for col in result_columns(plan.names)})
        rows.append(row)
    return SweepResult(
        plan=plan, out=Path(out), total=len(plan.runs), done_before=done_before,
        ran=len(plan.runs) - done_before, seconds=time.perf_counter() - start,
        rows=rows, results_path=Path(out) / _Store.RESULTS,
        sweep_json_path=Path(out) / _Store.SWEEP_JSON, executor=kind, workers=workers,
        batch_size=batch_size,
    )


def _scheduler_text(scheduler: Any) -> str | None:
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    return getattr(getattr(scheduler, "scheduler", None), "address", None) or repr(scheduler)


def _single_threaded(run: SweepRun) -> SweepRun:
    if run.cfg.train.threads == 1:
        return run
    return SweepRun(index=run.index, point=run.point, repeat=run.repeat, seed=run.seed,
                    cfg=run.cfg.replace(**{"train.threads": 1}), run_id=run.run_id)


# --------------------------------------------------------------------------- report


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    with_joint = [r for r in rows if r.get("test_error_joint") is not None]
    gaps = [r["gap"] for r in rows if r.get("gap") is not None]
    return {
        "runs": len(rows),
        "not_ok": sum(1 for r in rows if r.get("status") != "ok"),
        "joint": len(with_joint),
        "match": sum(1 for r in with_joint if r.get("winner") == r.get("predicted_winner")),
        "gap": _mean(gaps),
        "gaps": len(gaps),
        "loses": sum(1 for g in gaps if g > 0),
        "err_joint": _mean([r.get("test_error_joint") for r in rows]),
        "err_best": _mean([r.get("best_unimodal_error") for r in rows]),
    }


def sweep_report(result: SweepResult, max_points: int = 20) -> str:
    """The table ``simcomp sweep`` prints: per grid point (up to ``max_points``) and overall."""
    plan = result.plan

    def fmt(value, spec="+.4f"):
        return "-" if value is None else format(value, spec)

    def line(label, st):
        match = f"{st['match']}/{st['joint']}" if st["joint"] else "-"
        loses = f"{st['loses']}/{st['gaps']}" if st["gaps"] else "-"
        return (f"{label:<{width}}{st['runs']:>6}{match:>13}{fmt(st['gap']):>10}{loses:>8}"
                f"{fmt(st['err_joint'], '.4f'):>11}{fmt(st['err_best'], '.4f'):>10}")

    groups = []
    if 1 < len(plan.points) <= max_points:
        per = plan.seeds
        for p, point in enumerate(plan.points):
            label = " ".join(f"{key}={value}" for key, value in point)
            groups.append((label, result.rows[p * per:(p + 1) * per]))
    width = max([len(label) for label, _ in groups] + [12]) + 2
    total = _stats(result.rows)
    lines = [
        f"sweep: {result.total} runs ({len(plan.points)} grid "
        f"point{'s' * (len(plan.points) != 1)} x "
        f"{plan.seeds} seed{'s' * (plan.seeds != 1)}): {result.ran} run now, {result.done_before} "
        f"from earlier records, {total['not_ok']} not ok; {result.seconds:.1f} s",
        "",
        f"{'grid point':<{width}}{'runs':>6}{'winner=pred':>13}{'mean gap':>10}{'gap>0':>8}"
        f"{'err joint':>11}{'err best':>10}",
    ]
    lines += [line(label, _stats(rows)) for label, rows in groups]
    lines.append(line("all", total))
    lines += [
        "",
        "(winner=pred: runs whose measured joint winner is the predicted one; gap: joint test "
        "error minus best uni-modal test error; err best: best uni-modal test error)",
        f"results in {result.results_path} ({result.total} rows), {result.sweep_json_path}, "
        f"{result.out / _Store.RUNS}/ (one record per run)",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_sweep_parser(sub) -> Any:
    """Register the ``sweep`` subcommand on an argparse subparsers object."""
    parser = sub.add_parser(
        "sweep", help="run grids of configs times seeds in parallel (local or Dask), resumably",
        description="Run every grid point of the cartesian product of the --grid axes, --seeds "
        "times each, and tabulate measured against predicted in DIR/results.csv. Rerunning the "
        "same command resumes an interrupted sweep. See docs/sweeps.md.",
    )
    parser.add_argument(
        "--config", metavar="FILE",
        help="TOML experiment file for the base config (default: the embedded default)",
    )
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
        help="override one base config value, e.g. train.steps=2000 (repeatable)",
    )
    parser.add_argument(
        "--grid", metavar="KEY=START:STOP:NUM|KEY=V1,V2,...", action="append", default=[],
        dest="grids",
        help="a grid axis: NUM evenly spaced values from START to STOP, or a list of TOML values "
        "(repeatable; the sweep is the cartesian product)",
    )
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="runs per grid point, each with its own derived seed (default: 1)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="sweep directory (results.csv, sweep.json, runs/); rerun to resume")
    parser.add_argument("--workers", type=int, default=None, metavar="W",
                        help="parallel local worker processes, or LocalCluster workers "
                        f"(default: the number of cores, {os.cpu_count()})")
    parser.add_argument("--scheduler", metavar="ADDRESS|local",
                        help="run on a dask.distributed scheduler at ADDRESS, or 'local' for a "
                        "LocalCluster (needs simcomp[distributed])")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="runs per dispatched batch (default: a few seconds of work)")
    parser.add_argument("--force", action="store_true",
                        help="start over: delete the runs of a different (or the same) sweep "
                        "in DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, messages or table")
    parser.set_defaults(runner=run_sweep_command)
    return parser


def run_sweep_command(args) -> int:
    """The runner of ``simcomp sweep``: exit 0 when every run is recorded (see docs/sweeps.md)."""
    from .progress import ProgressBar

    base = build_config(args.config, args.overrides)
    plan = plan_sweep(base, args.grids, args.seeds)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"simcomp sweep: {message}", file=sys.stderr)

    bar = None

    def on_start(done_before: int, pending: int) -> None:
        # The bar counts the runs still to do, known once the directory is read.
        nonlocal bar
        bar = ProgressBar(pending, "sweep", enabled=not args.quiet and pending > 0)

    def progress(amount: int) -> None:
        if bar is not None:
            bar.update(amount)

    try:
        result = run_sweep(
            plan, args.out, workers=args.workers, scheduler=args.scheduler,
            batch_size=args.batch_size, force=args.force, progress=progress, log=log,
            on_start=on_start,
        )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"simcomp: sweep interrupted; the finished runs are recorded in {args.out}/runs, "
              f"rerun the same command to resume", file=sys.stderr)
        return 130
    except SweepRunError as exc:
        if bar is not None:
            bar.close()
        print(f"simcomp: error: {exc}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.close()
    if not args.quiet:
        print(sweep_report(result))
    if result.not_ok:
        print(f"simcomp: {result.not_ok} of {result.total} runs did not end ok (see the status "
              f"column of results.csv)", file=sys.stderr)
    return 0
