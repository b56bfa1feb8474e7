"""summary.json: the result objects written as the quantities of :mod:`simcomp.results`.

Every entry comes from the getters of :data:`simcomp.results.QUANTITIES`, in
table order; the table is read when a summary is built, so an entry added to it
(or, in a test, patched into it) appears here with no change to this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import results
from .config import Config

__all__ = [
    "Unrun",
    "run_summary",
    "theory_summary",
    "theory_comparison",
    "comparison",
    "summarize",
    "ensemble_summary",
]


@dataclass(frozen=True)
class Unrun:
    """A run before training: what the ``before_training`` quantities read of a run."""

    trained: list
    initial_alignment: Any  # (K_run, m) or (K_run, B, m)


def theory_summary(cfg: Config, data, trained, alignment0, prediction) -> dict[str, Any]:
    """The quantities known before training, for one planned run, keyed as in summary.json.

    ``alignment0`` is the run's initial alignment, ``prediction`` the theory's
    :class:`~simcomp.theory.Prediction` of the run.
    """
    view = results.RunView(cfg, data, Unrun(list(trained), alignment0), prediction)
    out: dict[str, Any] = {}
    for q in results.QUANTITIES:
        if q.before_training and q.level != "comparison":
            out[q.name] = dict(zip(view.names, q.get(view))) if q.level == "modality" \
                else q.get(view)
    return out


def theory_comparison(cfg: Config, data, runs) -> dict[str, Any] | None:
    """The comparison quantities known before training (``predicted_gap``, ...).

    ``runs`` lists ``(name, trained, alignment0, prediction)`` of the planned
    runs; None unless they include the joint run and a uni-modal one.
    """
    views = {name: results.RunView(cfg, data, Unrun(list(trained), a0), pred)
             for name, trained, a0, pred in runs}
    if "joint" not in views or not any(name.startswith("unimodal-") for name in views):
        return None
    view = results.ExperimentView(cfg, views)
    return {q.name: q.get(view) for q in results.QUANTITIES
            if q.level == "comparison" and q.before_training}


def run_summary(cfg: Config, data, run, prediction, expected=None, outcome=None) -> dict[str, Any]:
    """The ``summary.json`` entry of one run: every run/modality quantity, in table order.

    ``expected`` is the run's :class:`~simcomp.theory.ExpectedTestError` (None: not
    computed); ``outcome`` its :class:`~simcomp.experiment.MethodOutcome` (None: the
    method quantities are None).
    """
    view = results.RunView(cfg, data, run, prediction, expected=expected, outcome=outcome)
    names = view.names
    out: dict[str, Any] = {}
    for q in results.QUANTITIES:
        if q.level == "modality":
            out[q.name] = dict(zip(names, q.get(view)))
        elif q.level == "run":
            out[q.name] = q.get(view)
    return out


def comparison(exp) -> dict[str, Any] | None:
    """Joint vs. best uni-modal network; None unless the experiment has both (compare mode)."""
    view = results.experiment_view(exp)
    if results._best(view) is None:
        return None
    return {q.name: q.get(view) for q in results.QUANTITIES if q.level == "comparison"}


def ensemble_summary(exp) -> dict[str, Any] | None:
    """summary.json's ``ensemble`` entry: the uni-modal ensemble as a run of its own.

    None unless every uni-modal run exists (compare mode).
    """
    ens = getattr(exp, "ensemble", None)
    if ens is None:
        return None
    names = [exp.cfg.names[r] for r in ens.trained]
    value = results._float
    return {"trained_modalities": names, "method": "ume", "test_error": value(ens.test_error),
            "modality_test_error": dict(zip(names, [value(e) for e in ens.modality_test_error])),
            "predicted_test_error": value(ens.predicted_test_error)}


def summarize(exp) -> dict[str, Any]:
    """The whole ``summary.json`` object: provenance, seed, resolved config, runs, comparison."""
    from .outputs import provenance

    out = provenance()
    out.update({
        "seed": exp.cfg.seed,
        "config": exp.cfg.to_dict(),
        "runs": {name: run_summary(exp.cfg, exp.data, view.run, view.prediction, view.expected,
                                   view.outcome)
                 for name, view in results.run_views(exp).items()},
        "comparison": comparison(exp),
        "ensemble": ensemble_summary(exp),
    })
    return out


