"""pandas views of simcomp's results (optional: pandas is not a dependency of simcomp).

Every function imports pandas when called and raises an ImportError that
says how to get it when it is missing.
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["require_pandas", "modality_rows_frame", "records_frame", "trace_frame"]


def require_pandas():
    """The pandas module, or an ImportError saying how to install it."""
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("converting simcomp results to a DataFrame needs pandas, an optional "
                          "dependency: pip install pandas (or, in simcomp's source directory, "
                          "pip install '.[pandas]')") from None
    return pandas


def records_frame(records: Iterable[dict[str, Any]]):
    """A DataFrame of flat records (e.g. the rows of a sweep's results.csv)."""
    return require_pandas().DataFrame(list(records))


def modality_rows_frame(entries: Iterable[dict[str, Any]]):
    """Per-run dicts (summary.json / theory layout) -> one row per (run, modality).

    Run-level scalars are repeated on every row of the run; per-modality
    objects (dicts keyed by modality name) become one column each; nested
    objects other than those (e.g. ``method_prediction``) are left out.
    """
    pd = require_pandas()
    rows = []
    for entry in entries:
        mods = list(entry.get("trained_modalities", []))
        for mod in mods:
            row = {"run": entry.get("run"), "modality": mod}
            for key, value in entry.items():
                if key in ("run", "trained_modalities", "prediction"):
                    continue
                if isinstance(value, dict):
                    if set(value) <= set(mods) and value:
                        row[key] = value.get(mod)
                elif not isinstance(value, (list, tuple)):
                    row[key] = value
            rows.append(row)
    return pd.DataFrame(rows)


def trace_frame(trace: dict, names: list[str]):
    """A run's trace (``trace.npz`` arrays) as a DataFrame: one row per recorded step.

    Scalar-per-step arrays become one column; per-modality arrays (records x
    K) one column per modality (``<key>_<M>``); the leading alignment is the
    max over banks and neurons of ``alignment``.
    """
    import numpy as np

    pd = require_pandas()
    steps = np.asarray(trace["steps"])
    cols: dict[str, Any] = {"step": steps}
    for key, arr in trace.items():
        arr = np.asarray(arr)
        if key == "steps" or arr.ndim == 0 or arr.shape[0] != steps.size:
            continue
        if arr.ndim == 1:
            cols[key] = arr
        elif key == "alignment":
            lead = arr.reshape(arr.shape[0], arr.shape[1], -1).max(axis=2)
            for k, name in enumerate(names):
                cols[f"leading_alignment_{name}"] = lead[:, k]
        elif arr.ndim == 2 and arr.shape[1] == len(names):
            for k, name in enumerate(names):
                cols[f"{key}_{name}"] = arr[:, k]
    return pd.DataFrame(cols)
