"""results.csv: the columns of one experiment's row and the row itself, from :mod:`simcomp.results`.

A row holds every modality's settings (:data:`SETTINGS`), the data's
``presence_correlation``, then every quantity
of :data:`simcomp.results.QUANTITIES` whose ``csv`` is set, in table order,
then ``status``.  The table is read when a row is built, so an entry added to
it appears here with no change to this module.  The sweep's store writes the
rows (:mod:`simcomp.sweep.store`); this module only says what they hold.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Sequence

from . import results
from .config import ModalityConfig

__all__ = ["SETTINGS", "setting_columns", "result_columns", "result_row", "csv_cell"]

# The settings of every modality written to results.csv (``<field>_<M>``), so that a table
# stands alone: the unswept modalities' values are there too.
SETTINGS: tuple[str, ...] = tuple(f.name for f in fields(ModalityConfig) if f.name != "name")


def setting_columns(names: Sequence[str]) -> list[str]:
    """``<setting>_<M>`` for every modality setting of :data:`SETTINGS`, grouped by setting,
    then ``presence_correlation`` (data.presence_correlation, shared by the modalities)."""
    return [f"{s}_{name}" for s in SETTINGS for name in names] + ["presence_correlation"]


def _columns_of(q: results.Quantity, names: Sequence[str]) -> list[str]:
    if q.level == "comparison":
        return [q.name] if q.csv else []
    tags = {"all": ["joint"] + [f"alone_{m}" for m in names], "joint": ["joint"],
            "shared": [""], "": []}[q.csv]
    out = []
    for tag in tags:
        if q.level == "run":
            out.append(f"{q.name}_{tag}")
        elif tag == "":
            out += [f"{q.name}_{m}" for m in names]
        elif tag == "joint":
            out += [f"{q.name}_joint_{m}" for m in names]
        else:
            out.append(f"{q.name}_{tag}")  # alone_<M>: the one modality of that run
    return out


def result_columns(names: Sequence[str]) -> list[str]:
    """The columns of one experiment's row: settings, then every CSV quantity, then ``status``.

    Grid keys, ``repeat`` and ``seed`` come before these in results.csv.
    """
    cols = setting_columns(names)
    for q in results.QUANTITIES:
        cols += _columns_of(q, names)
    return cols + ["status"]


def result_row(exp, seconds: float | None = None) -> dict[str, Any]:
    """The result row of one experiment: ``seed``, :func:`result_columns`, and ``seconds``.

    Built from the run objects through the getters of :data:`~simcomp.results.QUANTITIES`;
    values are plain Python (``None``: never / not applicable).  ``status``
    is ``ok`` or the runs that did not end ok (``joint=nonfinite;...``).
    ``seconds`` (the wall time, not a function of the config) is kept in the
    record but not in results.csv.
    """
    cfg = exp.cfg
    names = list(cfg.names)
    row: dict[str, Any] = {"seed": cfg.seed}
    for s in SETTINGS:
        for r, name in enumerate(names):
            row[f"{s}_{name}"] = getattr(cfg.data.modality[r], s)
    row["presence_correlation"] = cfg.data.presence_correlation
    experiment = results.experiment_view(exp)
    views = experiment.runs
    # a comparison needs uni-modal runs (the fusion engine has only its joint run)
    compared = len(views) > 1 and results._best(experiment) is not None
    by_tag = {("joint" if name == "joint" else "alone_" + name.removeprefix("unimodal-")): view
              for name, view in views.items()}
    for q in results.QUANTITIES:
        if not q.csv:
            continue
        if q.level == "comparison":
            row[q.name] = q.get(experiment) if compared else None  # as summary.json's null
            continue
        for col in _columns_of(q, names):
            row[col] = None
        if q.csv == "shared":
            seen: set[str] = set()
            for view in views.values():  # joint first: the first run holding M gives its value
                if not results.applies(q, view):
                    continue
                for name, value in zip(view.names, q.get(view)):
                    if name not in seen:
                        row[f"{q.name}_{name}"] = value
                        seen.add(name)
            continue
        for tag, view in by_tag.items():
            if q.csv == "joint" and tag != "joint":
                continue
            if not results.applies(q, view):  # another engine's quantity: left None
                continue
            value = q.get(view)
            if q.level == "run":
                row[f"{q.name}_{tag}"] = value
            elif tag == "joint":
                row.update({f"{q.name}_joint_{m}": x for m, x in zip(view.names, value)})
            else:
                row[f"{q.name}_{tag}"] = value[0]
    bad = [f"{run.name}={run.status}" for run in exp.runs if run.status != "ok"]
    row["status"] = ";".join(bad) if bad else "ok"
    row["seconds"] = results._float(seconds)
    return row


def csv_cell(value: Any) -> str:
    """One results.csv cell: None empty, booleans 1/0, floats in shortest round-trip form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)
