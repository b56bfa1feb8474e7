"""One experiment end to end: train every run of the mode, predict each, summarise.

This is the layer that puts the simulation (``train``) and the prediction
(``theory``) side by side; neither of them imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import theory
from .config import Config
from .data import ExperimentData, empirical_patterns, make_experiment_data
from .outputs import provenance
from .train import RunResult, run_plan, train_batch, train_run

__all__ = [
    "Experiment",
    "run_experiment",
    "run_experiments",
    "predict_run",
    "summarize",
    "total_steps",
]


@dataclass
class Experiment:
    cfg: Config
    data: ExperimentData
    runs: list  # RunResult
    predictions: dict  # run name -> theory.Prediction

    @property
    def failed(self) -> list:
        return [run for run in self.runs if run.status == "nonfinite"]


def total_steps(cfg: Config) -> int:
    """GD steps of all the runs of ``cfg`` (for progress bars)."""
    return cfg.train.steps * len(run_plan(cfg))


def predict_run(cfg: Config, data: ExperimentData, trained: list[int], alignment0: np.ndarray):
    """The theory's prediction for one run, from its initial alignments and its training set."""
    y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)
    return theory.predict(cfg, trained, alignment0, y_pat, s_pat, w_pat)


def run_experiment(
    cfg: Config,
    progress: Callable[[int], None] | None = None,
    data: ExperimentData | None = None,
) -> Experiment:
    """Draw the data, train every run of ``cfg.train.mode`` and predict each.

    A run whose loss turns non-finite stops there; the others still run, and
    :attr:`Experiment.failed` lists the failures.
    """
    if data is None:
        data = make_experiment_data(cfg)
    runs, predictions = [], {}
    for name, trained in run_plan(cfg):
        run = train_run(cfg, data, name, trained, progress)
        runs.append(run)
        predictions[name] = predict_run(cfg, data, trained, run.initial_alignment)
    return Experiment(cfg=cfg, data=data, runs=runs, predictions=predictions)


def run_experiments(cfgs: list[Config], record: bool = True) -> list[Experiment]:
    """Many experiments at once: runs of equal shape train together in compiled batches.

    Each experiment equals ``run_experiment`` of its config (bit for bit in
    its learned steps, final weights and the records it keeps); with
    ``record=False`` only step 0 and the last step are traced, which is all
    a sweep row needs.
    """
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    trained = train_batch(cfgs, datas, record=record)
    experiments = []
    for cfg, data, runs in zip(cfgs, datas, trained):
        predictions = {run.name: predict_run(cfg, data, run.trained, run.initial_alignment)
                       for run in runs}
        experiments.append(Experiment(cfg=cfg, data=data, runs=runs, predictions=predictions))
    return experiments


def _by_name(names: list[str], values) -> dict[str, Any]:
    return {name: value for name, value in zip(names, values)}


def _or_nones(values, names):
    return [None] * len(names) if values is None else values


def _step_or_none(step) -> int | None:
    return None if step is None or step < 0 else int(step)


def run_summary(cfg: Config, data: ExperimentData, run: RunResult, prediction) -> dict[str, Any]:
    """The ``summary.json`` entry of one run (format documented in the README)."""
    names = [cfg.names[r] for r in run.trained]
    pi = data.train.weight @ data.train.presence[:, run.trained]
    records = run.trace.records

    def last(key):
        # A run whose very first loss is not finite has no record at all.
        return records[key][-1] if records[key] else None

    winner = run.winner
    pred = prediction.to_json(names)
    return {
        "trained_modalities": names,
        "status": run.status,
        "failed_step": run.failed_step,
        "steps_run": run.steps_run,
        "initial_leading_alignment": _by_name(names, run.initial_alignment.reshape(len(names), -1).max(axis=1)),
        "presence_fraction": _by_name(names, pi),
        "learned_step": _by_name(names, [_step_or_none(s) for s in run.learned_step]),
        "final_leading_alignment": _by_name(names, _or_nones(last("leading_alignment"), names)),
        "modality_test_error": _by_name(names, _or_nones(last("modality_test_error"), names)),
        "winner": None if winner is None else names[winner],
        "test_error": last("test_error"),
        "train_error": last("train_error"),
        "train_loss": last("train_loss"),
        "predicted_learned_step": pred["predicted_learned_step"],
        "race_learned_step": pred["race_learned_step"],
        "race_learned_step_noisy": pred["race_learned_step_noisy"],
        "predicted_winner": pred["predicted_winner"],
        "predicted_test_error": {
            "noiseless": pred["test_error_noiseless"],
            "coin_flip": pred["test_error_coinflip"],
        },
        "learned_by_horizon": pred["learned_by_horizon"],
        "rate": pred["kappa"],
        "seconds": run.seconds,
        "threads": run.threads,
        "parallel": run.parallel,
    }


def comparison(runs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Joint vs. best uni-modal test error; the gap is positive when joint training loses."""
    if "joint" not in runs:
        return None
    unimodal = {name: run for name, run in runs.items() if name.startswith("unimodal-")}
    if not unimodal or any(run["test_error"] is None for run in runs.values()):
        return None
    best = min(unimodal, key=lambda name: (unimodal[name]["test_error"], name))
    joint_error = runs["joint"]["test_error"]
    best_error = unimodal[best]["test_error"]
    return {
        "joint_test_error": joint_error,
        "best_unimodal": best.removeprefix("unimodal-"),
        "best_unimodal_test_error": best_error,
        "gap": joint_error - best_error,
    }


def summarize(exp: Experiment) -> dict[str, Any]:
    """The whole ``summary.json`` object: provenance, seed, resolved config, runs, comparison."""
    runs = {
        run.name: run_summary(exp.cfg, exp.data, run, exp.predictions[run.name]) for run in exp.runs
    }
    out = provenance()
    out.update({
        "seed": exp.cfg.seed,
        "config": exp.cfg.to_dict(),
        "runs": runs,
        "comparison": comparison(runs),
    })
    return out
