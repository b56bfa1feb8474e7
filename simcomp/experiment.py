"""One experiment end to end: train every run of the mode, predict each, summarise.

This is the layer that puts the simulation (``train``) and the prediction
(``theory``) side by side; neither of them imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    "noise_aware_regime",
    "expected_error",
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
    # run name -> theory.ExpectedTestError of the trained weights (None: non-finite weights)
    expected_errors: dict = field(default_factory=dict)

    @property
    def failed(self) -> list:
        return [run for run in self.runs if run.status == "nonfinite"]


def total_steps(cfg: Config) -> int:
    """GD steps of all the runs of ``cfg`` (for progress bars)."""
    return cfg.train.steps * len(run_plan(cfg))


# Accuracy of the expected test errors: quasi-Monte Carlo points per random shift and
# shifts.  The standard error is reported with every value (about 1e-4 for the default
# config); more points cost time in every run of a sweep (docs/sweeps.md, Throughput).
EXPECTED_POINTS = 2048
EXPECTED_REPLICATES = 8


def noise_aware_regime(cfg: Config, trained) -> bool:
    """Whether a run is predicted by the noise-aware theory: a trained modality has noise
    or distractors (the reduced dynamics ignores both; without them the two agree)."""
    mods = [cfg.data.modality[r] for r in trained]
    return any(m.noise > 0.0 or (m.distractors > 0 and m.distractor_strength > 0.0)
               for m in mods)


def predict_run(cfg: Config, data: ExperimentData, trained: list[int], alignment0: np.ndarray,
                noise_aware: bool | None = None):
    """The theory's prediction for one run, from its initial state and its training set.

    The reduced dynamics and the race always; the noise-aware dynamics
    (``prediction.noise_aware``) where :func:`noise_aware_regime` says so and
    ``train.noise_theory`` is true, or as ``noise_aware`` forces (False: skip
    it, e.g. where only the race is needed).  The noise-aware theory is given
    the run's own training noise (two statistics per sample) and its initial
    noise pre-activations <w_i(0), N_k> -- the initial weights, as the initial
    alignments are -- never anything from training.
    """
    y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)
    pred = theory.predict(cfg, trained, alignment0, y_pat, s_pat, w_pat)
    if noise_aware is None:
        noise_aware = cfg.train.noise_theory and noise_aware_regime(cfg, trained)
    if noise_aware:
        train = data.train
        noise = [theory.training_noise(train.X[r], train.y, train.presence[:, r],
                                       cfg.data.modality[r].beta, data.signals[r], data.init[r])
                 for r in trained]
        pred.noise_aware = theory.noise_aware_predict(
            cfg, trained, alignment0, train.y, train.presence[:, trained], noise,
            points=EXPECTED_POINTS, replicates=EXPECTED_REPLICATES, weight=train.weight)
    return pred


def expected_error(cfg: Config, data: ExperimentData, run):
    """The exact expected test error of a trained run (``theory.expected_test_error``).

    None when its final weights, or their squares, are not finite (a diverged run),
    or when ``train.noise_theory`` is false (it is then not computed).
    """
    if not cfg.train.noise_theory:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        # weights that grew huge before the loss overflowed would give inf covariances
        if not all(np.isfinite(np.sum(np.square(w))) for w in run.final_weights):
            return None
    model = cfg.model
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return theory.expected_test_error(
                run.final_weights, [cfg.data.modality[r] for r in run.trained],
                [data.dictionaries[r] for r in run.trained], model.learner, model.activation,
                model.q, model.rho, points=EXPECTED_POINTS, replicates=EXPECTED_REPLICATES)
    except np.linalg.LinAlgError:
        return None


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
    runs, predictions, expected = [], {}, {}
    for name, trained in run_plan(cfg):
        run = train_run(cfg, data, name, trained, progress)
        runs.append(run)
        predictions[name] = predict_run(cfg, data, trained, run.initial_alignment)
        expected[name] = expected_error(cfg, data, run)
    return Experiment(cfg=cfg, data=data, runs=runs, predictions=predictions,
                      expected_errors=expected)


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
        expected = {run.name: expected_error(cfg, data, run) for run in runs}
        experiments.append(Experiment(cfg=cfg, data=data, runs=runs, predictions=predictions,
                                      expected_errors=expected))
    return experiments
