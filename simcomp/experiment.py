"""One experiment end to end: train every run of the mode, predict each, summarise.

This is the layer that puts the simulation (``train``) and the prediction
(``theory``) side by side; neither of them imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import theory
from .config import Config
from .data import ExperimentData, empirical_patterns, make_experiment_data
from .results import comparison, run_summary, summarize
from .train import run_plan, train_batch, train_run

__all__ = [
    "Experiment",
    "run_experiment",
    "run_experiments",
    "predict_run",
    "summarize",
    "run_summary",
    "comparison",
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
