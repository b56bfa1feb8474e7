"""Reading a ``simcomp simulate`` directory back, every file checked before it is used.

A directory on disk may have been damaged since simcomp wrote it (a truncated
copy, a full disk, an editor, a renamed modality).  :func:`read_simulate_dir`
checks each file against what simcomp writes and against the other files,
and refuses a damaged one with :class:`~simcomp.outputs.DamagedOutputError`
(one line naming the file and what is wrong), so that ``simcomp.load`` and
``simcomp plot`` never fail deeper down with a traceback, nor draw a figure
from files that do not belong together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .outputs import SIMULATE_FORMAT, DamagedOutputError, dumps_json

__all__ = ["read_simulate_dir"]


def _damaged(path: Path, why: str) -> DamagedOutputError:
    return DamagedOutputError(f"{str(path)!r} is damaged or was not written by simcomp: {why}")


def _read_summary(root: Path) -> dict[str, Any]:
    path = root / "summary.json"
    if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
        raise _damaged(path, "it is not a regular file")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedOutputError(f"{str(root)!r} is not a simcomp simulate directory "
                                 f"({str(path)!r} is missing)") from None
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _damaged(path, f"it cannot be read as JSON ({exc.__class__.__name__})") from None
    if not isinstance(summary, dict) or summary.get("format") != SIMULATE_FORMAT:
        raise DamagedOutputError(f"{str(root)!r} is not a simcomp simulate directory "
                                 f"({str(path)!r} has no format {SIMULATE_FORMAT!r})")
    if not isinstance(summary.get("runs"), dict) or not summary["runs"]:
        raise _damaged(path, "its 'runs' is not an object naming the runs")
    if not isinstance(summary.get("config"), dict):
        raise _damaged(path, "it has no recorded 'config' object")
    return summary


def _read_config(root: Path, summary: dict[str, Any]):
    from .config import ConfigError, config_from_dict
    from .config_file import load_config

    path = root / "config.toml"
    try:
        cfg = config_from_dict(load_config(path))
    except ConfigError as exc:
        raise _damaged(path, str(exc)) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise _damaged(path, f"it cannot be read ({exc.__class__.__name__})") from None
    # The traces were made with the config recorded in summary.json: a config.toml edited
    # since would give theory curves and panels that do not belong to them.
    written = json.loads(dumps_json(cfg.to_dict()))
    if written != summary["config"]:
        first = _first_difference(summary["config"], written)
        raise DamagedOutputError(
            f"{str(path)!r} was edited after simcomp wrote it: it differs from the config "
            f"recorded in summary.json ({first}), which the traces were made with; restore it "
            f"(`simcomp config` can print the recorded one) or run simcomp simulate again")
    return cfg


def _first_difference(recorded: Any, now: Any, prefix: str = "") -> str:
    if isinstance(recorded, dict) and isinstance(now, dict):
        for key in sorted(set(recorded) | set(now), key=str):
            if recorded.get(key, "(unset)") != now.get(key, "(unset)"):
                return _first_difference(recorded.get(key, "(unset)"), now.get(key, "(unset)"),
                                         f"{prefix}{key}.")
    if isinstance(recorded, list) and isinstance(now, list) and len(recorded) == len(now):
        for index, (a, b) in enumerate(zip(recorded, now)):
            if a != b:
                return _first_difference(a, b, f"{prefix}{index}.")
    return f"{prefix[:-1] or 'config'}: {now!r} in config.toml, {recorded!r} recorded"


def _check_runs(root: Path, summary: dict[str, Any], cfg) -> dict[str, list[int]]:
    """The runs of the summary, checked against the config: name -> trained indices."""
    from .train import run_plan

    path = root / "summary.json"
    runs = summary["runs"]
    if summary.get("engine") == "fusion":  # one joint run, its own summary layout
        if sorted(runs) != ["joint"] or not isinstance(runs["joint"], dict):
            raise _damaged(path, "a fusion-engine output has exactly one run, 'joint'")
        return {"joint": list(range(cfg.K))}
    planned = dict(run_plan(cfg))
    if sorted(runs) != sorted(planned):
        raise _damaged(path, f"its runs ({', '.join(sorted(map(str, runs)))}) are not those of "
                       f"config.toml ({', '.join(sorted(planned))}); was a modality renamed?")
    for name, trained in planned.items():
        entry = runs[name]
        names = [cfg.names[r] for r in trained]
        if not isinstance(entry, dict) or entry.get("trained_modalities") != names:
            raise _damaged(path, f"run {name!r} does not list its trained modalities {names}")
        learned = entry.get("learned_step")
        if not isinstance(learned, dict) or any(
                not (learned.get(n) is None or (isinstance(learned.get(n), int)
                                               and not isinstance(learned.get(n), bool)))
                for n in names):
            raise _damaged(path, f"run {name!r} has no learned step (an integer or null) per "
                           f"trained modality")
    return planned


def _read_trace(path: Path, cfg, trained: list[int], fusion: bool = False
                ) -> dict[str, np.ndarray]:
    if path.exists() and not path.is_file():  # a FIFO would block np.load forever
        raise _damaged(path, "it is not a regular file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise _damaged(path, "it is missing") from None
    except Exception as exc:  # noqa: BLE001 - a damaged archive raises many kinds (EOFError,
        # BadZipFile, zlib.error, ValueError, OSError, KeyError): each is a damaged file
        raise _damaged(path, f"it cannot be read as a trace ({exc.__class__.__name__})") from None
    steps = arrays.get("steps")
    if steps is None or steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
        raise _damaged(path, "it has no 1-d integer 'steps'")
    records, K = steps.size, len(trained)
    if records == 0 or fusion:  # the loss was not finite at step 0: nothing recorded, nothing to check
        return arrays
    B, m = cfg.model.banks, cfg.model.width
    shapes = {"alignment": [(records, K, m)] if B == 1 else [(records, K, B, m)],
              "test_error": [(records,)], "modality_test_error": [(records, K)]}
    for key, allowed in shapes.items():
        arr = arrays.get(key)
        if key in ("alignment", "test_error") and arr is None:
            raise _damaged(path, f"it has no {key!r}")
        if arr is not None and (arr.shape not in allowed
                                or not np.issubdtype(arr.dtype, np.number)):
            raise _damaged(path, f"its {key!r} has shape {arr.shape} ({arr.dtype}); config.toml "
                           f"needs {allowed[0]} numbers")
    return arrays


def read_simulate_dir(root: str | Path):
    """``(config, summary, traces)`` of a simulate directory, every file checked.

    Raises
    ------
    DamagedOutputError
        ``root`` is not such a directory, or one of its files is damaged,
        does not match the others, or was edited (config.toml against the
        config recorded in summary.json); the message names the file.
    """
    root = Path(root)
    summary = _read_summary(root)
    cfg = _read_config(root, summary)
    planned = _check_runs(root, summary, cfg)
    fusion = summary.get("engine") == "fusion"  # its trace holds other arrays (total_weight)
    traces = {name: _read_trace(root / name / "trace.npz", cfg, trained, fusion)
              for name, trained in planned.items()}
    return cfg, summary, traces
