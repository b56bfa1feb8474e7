"""The result schema: every reported quantity, defined once.

Each :class:`Quantity` of :data:`QUANTITIES` has a name, a meaning, a type,
a level and a getter that reads it from the trained run and the theory's
prediction.  This module holds the table, its getters and the views they
read; the outputs are written from the table by

- :mod:`simcomp.summary`: the ``runs.<run>`` entries of ``summary.json``
  (:func:`~simcomp.summary.run_summary`, :func:`~simcomp.summary.summarize`),
  in table order;
- :mod:`simcomp.columns`: the result columns of a sweep's ``results.csv``
  (:func:`~simcomp.columns.result_columns`) and the row of one experiment
  (:func:`~simcomp.columns.result_row`), built directly from the result
  objects, not from a summary;
- the objects of the Python API, which hold exactly these dicts.

A quantity keeps its name everywhere: the JSON key, the CSV column's stem
and the dict key are the same word.  "Never" / "not applicable" is ``None``
in Python, ``null`` in JSON and an empty CSV cell; the kernels' -1 and the
theory's inf are turned into ``None`` here, in the getters, and nowhere else.

Levels
------
``modality``
    One value per trained modality of a run: a dict keyed by modality name
    in ``summary.json``; CSV columns ``<name>_joint_<M>`` and
    ``<name>_alone_<M>`` (the run that trains M alone).
``run``
    One value per run: CSV columns ``<name>_joint`` and ``<name>_alone_<M>``.
``comparison``
    One value per experiment (joint against the best uni-modal network):
    ``summary.json``'s ``comparison`` object; CSV column ``<name>``.

``csv`` says which runs get columns: ``"all"`` (joint and every uni-modal
run), ``"joint"``, ``"shared"`` (a per-modality value that is the same in
every run of an experiment, such as the initial alignment: one column
``<name>_<M>``) or ``""`` (summary only).

Adding a quantity
-----------------
One entry in :data:`QUANTITIES`; for example, a method's per-modality
coefficient kept on the run as ``run.coefficient``::

    Quantity("coefficient", "modality", "float", "all",
             "the training rule's per-modality coefficient at the horizon",
             lambda v: [_float(c) for c in v.run.coefficient]),

gives ``summary.json`` its ``coefficient`` object, ``results.csv`` its
``coefficient_joint_<M>`` and ``coefficient_alone_<M>`` columns, and the
Python API its key; ``tests/test_results.py`` checks every entry in every
format.  A per-experiment value (a predicted gap, a Shapley value) is a
``comparison`` entry whose getter receives the :class:`ExperimentView`
(``view.value(run_name, quantity_name)`` reads any run's quantity).  A
prediction that needs no training is marked ``before_training=True`` and
then also appears in :func:`simcomp.summary.theory_summary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .config import Config

__all__ = [
    "Quantity",
    "RunView",
    "ExperimentView",
    "QUANTITIES",
    "quantity",
    "run_views",
    "experiment_view",
    "FusionRunRecord",
    "FusionExperiment",
    "fusion_experiment",
    "engine_of",
    "applies",
]


@dataclass(frozen=True)
class Quantity:
    """One reported quantity (see the module docstring for the levels and ``csv``)."""

    name: str
    level: str  # "modality", "run" or "comparison"
    kind: str  # "int", "float", "str", "bool", "names", "rate" (float or per-bank list)
    csv: str  # "all", "joint", "shared" or ""
    meaning: str
    get: Callable[[Any], Any]
    # Known before training: from the data, the initial weights and the theory alone
    # (what ``simcomp theory`` reports, see :func:`theory_summary`).
    before_training: bool = False
    # The engines whose runs report it ("original": the fixed-head late-fusion learner,
    # "fusion": the fusion engine, docs/architectures.md); on other runs it is None.
    engines: tuple = ("original",)


@dataclass(frozen=True)
class RunView:
    """What a getter of a run-level or modality-level quantity reads."""

    cfg: Config
    data: Any  # simcomp.data.ExperimentData
    run: Any  # simcomp.train.RunResult
    prediction: Any  # simcomp.theory.Prediction (with .noise_aware where that theory applies)
    expected: Any = None  # simcomp.theory.ExpectedTestError of the trained weights, or None
    outcome: Any = None  # simcomp.experiment.MethodOutcome (None before training)

    @property
    def names(self) -> list[str]:
        return [self.cfg.names[r] for r in self.run.trained]


@dataclass(frozen=True)
class ExperimentView:
    """What a getter of a comparison quantity reads: every run of the experiment, by run name."""

    cfg: Config
    runs: dict  # run name -> RunView
    ensemble: Any = None  # simcomp.experiment.Ensemble (compare mode)

    def value(self, run: str, name: str):
        """The run-level quantity ``name`` of run ``run`` (as in its summary)."""
        return _BY_NAME[name].get(self.runs[run])


# --------------------------------------------------------------------------- value helpers


def _float(x) -> float | None:
    """A plain float; inf and nan (diverged, never) become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _step(x) -> int | None:
    """A step of the kernels (-1: never) as an int or None."""
    return None if x is None or x < 0 else int(x)


def _rate(row) -> float | list | None:
    """A per-bank value: a float for one bank, [c = +1, c = -1] for class banks."""
    row = np.asarray(row, dtype=float).ravel()
    return _float(row[0]) if row.size == 1 else [_float(v) for v in row]


def _last(view: RunView, key: str):
    # A run whose very first loss is not finite has no record at all.
    records = view.run.trace.records[key]
    return records[-1] if records else None


def _last_per_modality(view: RunView, key: str) -> list:
    last = _last(view, key)
    return [None] * len(view.names) if last is None else [_float(v) for v in last]


def _noisy_race(view: RunView) -> list:
    noisy = view.prediction.race_learned_step_noisy
    return [None] * len(view.names) if noisy is None else [_float(v) for v in noisy]


def _expected(view: RunView, what: str):
    """A field of the trained weights' expected test error; None where it was not computed."""
    exp = view.expected
    if exp is None:
        return None if what in ("fused", "fused_stderr") else [None] * len(view.names)
    value = getattr(exp, what)
    return _float(value) if what in ("fused", "fused_stderr") else [_float(v) for v in value]


def _theory_steps(view: RunView) -> np.ndarray:
    """Learned steps (-1 never) of the run's theory: noise-aware where it applies, else reduced."""
    noisy = view.prediction.noise_aware
    return view.prediction.predicted_learned_step if noisy is None else noisy.learned_step


def _theory_winner(view: RunView) -> str | None:
    """Noise-aware: first modality its dynamics learns by the horizon; reduced: the race's;
    fusion engine: the modality with the smallest predicted half step (None: none has one)."""
    if engine_of(view) == "fusion":
        halves = _fusion(view, "pred_predicted_half_step")
        known = [(t, k) for k, t in enumerate(halves) if t is not None]
        return view.names[min(known)[1]] if known else None
    noisy = view.prediction.noise_aware
    return _winner(view.prediction.predicted_winner if noisy is None else noisy.predicted_winner,
                   view)


def _theory_error(view: RunView, what: str):
    """The predicted test error of the run's theory (fused or per encoder, or a stderr).

    Noise-aware: the expected test error of its predicted final network; reduced: the
    noiseless prediction of docs/model.md section 5.5 (exact without noise: stderr 0).
    """
    pred = view.prediction
    noisy = pred.noise_aware
    if noisy is not None:
        return _float(getattr(noisy.test_error, what)) if what.startswith("fused") else \
            [_float(v) for v in getattr(noisy.test_error, what)]
    if what == "fused":
        return _float(pred.test_error_noiseless)
    if what == "fused_stderr":
        return 0.0
    if what == "per_modality":
        return [_float(v) for v in pred.modality_test_error_noiseless]
    return [0.0] * len(view.names)


def _tracked(view: RunView, what: str):
    """A value of the tracked dynamics (run-conditioned; None where it was not computed)."""
    tr = view.prediction.tracked
    if what == "learned_step":
        return [None] * len(view.names) if tr is None else [_step(s) for s in tr.learned_step]
    if tr is None:
        return None
    if what == "winner":
        return _winner(tr.predicted_winner, view)
    return _float(tr.test_error.fused)


def _winner(index, view: RunView) -> str | None:
    return None if index is None else view.names[index]


def _winner_coordinate(view: RunView) -> float | None:
    if len(view.run.trained) != 2:
        return None
    from .theory import winner_coordinate

    cfg, pred = view.cfg, view.prediction
    q = 1.0 if cfg.model.activation == "relu" else cfg.model.q  # as the theory's race
    return _float(winner_coordinate(pred.kappa, pred.gamma, q))


def _best(view: ExperimentView) -> str | None:
    """The uni-modal run of lowest test error; None without joint and uni-modal runs."""
    errors = {name: view.value(name, "test_error") for name in view.runs}
    unimodal = [name for name in errors if name.startswith("unimodal-")]
    if "joint" not in errors or not unimodal or None in errors.values():
        return None
    return min(unimodal, key=lambda name: (errors[name], name))


def _best_by(view: ExperimentView, quantity_name: str, what: str):
    """Joint against the best uni-modal run by ``quantity_name``: the gap or the best's name."""
    values = {name: view.value(name, quantity_name) for name in view.runs}
    unimodal = [name for name in values if name.startswith("unimodal-")]
    if "joint" not in values or not unimodal or None in values.values():
        return None
    best = min(unimodal, key=lambda name: (values[name], name))
    return best.removeprefix("unimodal-") if what == "name" else values["joint"] - values[best]


def _method_gap(view: ExperimentView):
    """The method's predicted predictor error minus the best uni-modal predicted_test_error."""
    joint = view.runs.get("joint")
    method = None if joint is None else getattr(joint.prediction, "method", None)
    if method is None:
        return None
    uni = [view.value(name, "predicted_test_error") for name in view.runs
           if name.startswith("unimodal-")]
    if not uni or None in uni:
        return None
    return _float(method.test_error_noiseless - min(uni))


def _comparison_value(view: ExperimentView, what: str):
    best = _best(view)
    if best is None:
        return None
    joint, alone = view.value("joint", "test_error"), view.value(best, "test_error")
    return {"joint": joint, "name": best.removeprefix("unimodal-"), "best": alone,
            "gap": joint - alone}[what]


def _method_last(view: RunView, key: str) -> list:
    """A method statistic of the last traced step; None where the run has none (plain training)."""
    records = view.run.trace.records.get(key)
    if not records:
        return [None] * len(view.names)
    return [_float(v) for v in records[-1]]


def _outcome(view: RunView, what: str):
    out = view.outcome
    if out is None:
        return [None] * len(view.names) if what in ("shapley", "learned_step") else None
    if what == "method":
        return out.method
    if what == "shapley":
        return [_float(v) for v in out.shapley]
    if what == "test_error":
        return _float(out.test_error)
    pred = out.prediction
    if pred is None:
        return [None] * len(view.names) if what == "learned_step" else None
    return {"learned_step": lambda: [_step(s) for s in pred.predicted_learned_step],
            "co_learned": lambda: bool(pred.co_learned),
            "error": lambda: _float(pred.test_error_noiseless),
            "diverged": lambda: bool(pred.diverged)}[what]()


def _co_learned(view: RunView) -> bool:
    return bool(np.all(np.asarray(view.run.learned_step) >= 0))


def _ensemble_value(view: ExperimentView, what: str):
    ens = view.ensemble
    if ens is None:
        return None
    if what == "error":
        return _float(ens.test_error)
    own = view.value("joint", "method_test_error")
    return None if own is None else own - ens.test_error


def _fusion(view: RunView, key: str):
    """A fusion-engine run's value (its result dict, or the theory's dict for ``pred_``
    keys); None-per-modality or None on the original learner's runs, which have none."""
    modality = key in ("total_weight", "half_step", "pred_predicted_half_step")
    res = getattr(view.run, "fusion", None)
    if res is None:
        return [None] * len(view.names) if modality else None
    source = view.prediction if key.startswith("pred_") else res
    value = source[key.removeprefix("pred_")]
    if modality:
        return [_float(value[name]) for name in view.names]
    return _float(value) if isinstance(value, (int, float, np.floating)) else value


def _final_total_weight(view: RunView) -> list:
    res = getattr(view.run, "fusion", None)
    if res is None:
        return [None] * len(view.names)
    return [_float(res["final_total_weight"][name]) for name in view.names]


def _half_step_ratio(view: RunView):
    """Last over first half step of the run's modalities (all of them must have one)."""
    halves = _fusion(view, "half_step")
    if None in halves or not halves or min(halves) <= 0:
        return None
    return _float(max(halves) / min(halves))


# --------------------------------------------------------------------------- the table

_BOTH = ("original", "fusion")

QUANTITIES: tuple[Quantity, ...] = (
    # what was trained and how it ended
    Quantity("trained_modalities", "run", "names", "",
             "names of the modalities this run trains, in config order",
             lambda v: v.names,
             before_training=True, engines=_BOTH),
    Quantity("status", "run", "str", "",
             "ok, stop_loss (train.stop_loss reached), nonfinite (the loss overflowed) or diverged "
             "(weights, alignments or loss past 1e12 while still finite, e.g. umt at a large "
             "distill_weight)",
             lambda v: v.run.status, engines=_BOTH),
    Quantity("failed_step", "run", "int", "",
             "the step whose loss was not finite (nonfinite) or the first recorded step past the "
             "divergence bound (diverged); None otherwise",
             lambda v: v.run.failed_step, engines=_BOTH),
    Quantity("steps_run", "run", "int", "",
             "GD steps taken (train.steps unless the run stopped early)",
             lambda v: int(v.run.steps_run), engines=_BOTH),
    # measured, per modality
    Quantity("initial_leading_alignment", "modality", "float", "shared",
             "Lambda_M(0): the largest alignment of M's neurons with its signal atom at step 0 "
             "(the theory's Gamma is max(0, this))",
             lambda v: [_float(a) for a in
                        v.run.initial_alignment.reshape(len(v.names), -1).max(axis=1)],
             before_training=True),
    Quantity("presence_fraction", "modality", "float", "shared",
             "pi_M: weight of the training samples in which M carries signal",
             lambda v: [_float(p) for p in
                        v.data.train.weight @ v.data.train.presence[:, v.run.trained]],
             before_training=True),
    Quantity("learned_step", "modality", "int", "all",
             "measured step at which M is learned (its leading alignment reaches the "
             "threshold); None: not by the horizon",
             lambda v: [_step(s) for s in v.run.learned_step]),
    Quantity("learned_by_horizon", "modality", "bool", "joint",
             "whether M was learned within train.steps (learned_step is not None)",
             lambda v: [bool(s >= 0) for s in v.run.learned_step]),
    Quantity("final_leading_alignment", "modality", "float", "all",
             "leading alignment of M at the last traced step",
             lambda v: _last_per_modality(v, "leading_alignment")),
    Quantity("modality_test_error", "modality", "float", "",
             "test error of M's encoder alone as a classifier, at the last traced step",
             lambda v: _last_per_modality(v, "modality_test_error")),
    # measured, per run
    Quantity("winner", "run", "str", "joint",
             "the modality learned first (ties: config order); None: none learned",
             lambda v: _winner(v.run.winner, v), engines=_BOTH),
    Quantity("test_error", "run", "float", "all",
             "test error of the network at the last traced step (an output of 0 counts half)",
             lambda v: _float(_last(v, "test_error"))),
    Quantity("expected_test_error", "run", "float", "all",
             "exact expected test error of the trained weights on the data distribution "
             "(quasi-Monte Carlo over the Gaussian noise, docs/theory.md section 10): the value "
             "test_error estimates, free of the test set's sampling noise; None: diverged",
             lambda v: _expected(v, "fused")),
    Quantity("expected_test_error_stderr", "run", "float", "all",
             "standard error of expected_test_error (0: exact, no noise or distractors)",
             lambda v: _expected(v, "fused_stderr")),
    Quantity("expected_modality_test_error", "modality", "float", "joint",
             "exact expected test error of M's trained encoder alone as a classifier",
             lambda v: _expected(v, "per_modality")),
    Quantity("expected_modality_test_error_stderr", "modality", "float", "",
             "standard error of expected_modality_test_error",
             lambda v: _expected(v, "per_modality_stderr")),
    Quantity("train_error", "run", "float", "",
             "training error at the last traced step",
             lambda v: _float(_last(v, "train_error"))),
    Quantity("train_loss", "run", "float", "",
             "training loss at the last traced step",
             lambda v: _float(_last(v, "train_loss"))),
    # predicted
    Quantity("prediction_theory", "run", "str", "all",
             "the theory behind predicted_learned_step, predicted_learned_by_horizon, "
             "predicted_winner and predicted_test_error: noise_aware (a trained modality has "
             "noise or distractors: the noise-aware dynamics averaged over the noise's law, "
             "docs/theory.md section 12) or reduced (docs/model.md sections 5.3-5.5)",
             lambda v: v.prediction.theory,
             before_training=True),
    Quantity("kappa", "modality", "rate", "",
             "the theory's growth rate of M's leading alignment (per bank for class banks)",
             lambda v: [_rate(row) for row in v.prediction.kappa],
             before_training=True),
    Quantity("race_learned_step", "modality", "float", "all",
             "learned step predicted by the leading-neuron race (fractional); None: never",
             lambda v: [_float(s) for s in v.prediction.race_learned_step],
             before_training=True),
    Quantity("race_learned_step_noisy", "modality", "float", "",
             "the same race with the noise's share of the pre-activation; None: never, or "
             "no trained modality has noise",
             _noisy_race,
             before_training=True),
    Quantity("predicted_learned_step", "modality", "int", "all",
             "learned step predicted by the run's theory (prediction_theory); None: not by the "
             "horizon",
             lambda v: [_step(s) for s in _theory_steps(v)],
             before_training=True),
    Quantity("predicted_learned_by_horizon", "modality", "bool", "joint",
             "whether the run's theory learns M within train.steps",
             lambda v: [bool(s >= 0) for s in _theory_steps(v)],
             before_training=True),
    Quantity("reduced_learned_step", "modality", "int", "all",
             "learned step predicted by the (noise-free) reduced dynamics; None: not by the "
             "horizon",
             lambda v: [_step(s) for s in v.prediction.predicted_learned_step],
             before_training=True),
    Quantity("reduced_learned_by_horizon", "modality", "bool", "joint",
             "whether the reduced dynamics learns M within train.steps",
             lambda v: [bool(b) for b in v.prediction.learned_by_horizon],
             before_training=True),
    Quantity("predicted_winner", "run", "str", "joint",
             "the modality predicted to be learned first: noise_aware, the first its "
             "distribution-level dynamics learns by the horizon (None: none); reduced, the "
             "race's winner; fusion engine, the modality with the smallest "
             "predicted_half_step (None: no prediction)",
             _theory_winner,
             before_training=True, engines=_BOTH),
    Quantity("race_winner", "run", "str", "joint",
             "the modality the leading-neuron race predicts to be learned first; None: none",
             lambda v: _winner(v.prediction.predicted_winner, v),
             before_training=True),
    Quantity("winner_coordinate", "run", "float", "joint",
             "two modalities only: ln(kappa_2 Gamma_2^(q-2) / (kappa_1 Gamma_1^(q-2))); > 0 "
             "predicts the second wins; None: K != 2 or a Gamma of 0",
             _winner_coordinate,
             before_training=True),
    Quantity("predicted_test_error", "run", "float", "all",
             "test error predicted by the run's theory: noise_aware, the expected test error of "
             "its predicted final network; reduced, predicted_test_error_noiseless",
             lambda v: _theory_error(v, "fused"),
             before_training=True),
    Quantity("predicted_test_error_stderr", "run", "float", "",
             "standard error of predicted_test_error (its quasi-Monte Carlo part; 0: reduced)",
             lambda v: _theory_error(v, "fused_stderr"),
             before_training=True),
    Quantity("predicted_modality_test_error", "modality", "float", "",
             "test error of M's encoder alone predicted by the run's theory",
             lambda v: _theory_error(v, "per_modality"),
             before_training=True),
    # the tracked dynamics: the run's own training noise, a check, not a prediction
    Quantity("tracked_learned_step", "modality", "int", "joint",
             "learned step of the tracked dynamics: the noise-aware dynamics fed with the run's "
             "own training noise and initial noise pre-activations (a check of the "
             "signal-noise decomposition, not a prediction; docs/theory.md section 11); None: "
             "not by the horizon, or no noise (not computed)",
             lambda v: _tracked(v, "learned_step")),
    Quantity("tracked_winner", "run", "str", "",
             "the first modality the tracked dynamics learns (a check, not a prediction)",
             lambda v: _tracked(v, "winner")),
    Quantity("tracked_test_error", "run", "float", "all",
             "expected test error of the tracked dynamics' final network (a check, not a "
             "prediction); None: not computed",
             lambda v: _tracked(v, "test_error")),
    Quantity("predicted_test_error_noiseless", "run", "float", "all",
             "predicted test error: learned modalities classify perfectly",
             lambda v: _float(v.prediction.test_error_noiseless),
             before_training=True),
    Quantity("predicted_test_error_coin_flip", "run", "float", "all",
             "predicted test error: samples without a learned modality are a coin flip",
             lambda v: _float(v.prediction.test_error_coinflip),
             before_training=True),
    # the training method (docs/methods.md)
    Quantity("method", "run", "str", "joint",
             "the training method whose predictor the run reports (method.name for the joint "
             "run; none for uni-modal runs, which are always trained plainly)",
             lambda v: _outcome(v, "method")),
    Quantity("co_learned", "run", "bool", "joint",
             "whether every trained modality was learned within train.steps",
             _co_learned),
    Quantity("shapley_value", "modality", "float", "joint",
             "exact Shapley value of M for the run's test accuracy (absent modalities dropped "
             "from the fused output; the values sum to accuracy minus 1/2; null above 8 "
             "modalities, whose 2^K coalitions are not evaluated)",
             lambda v: _outcome(v, "shapley")),
    Quantity("method_test_error", "run", "float", "joint",
             "test error of the method's own predictor (alternating: sum_r mix_r phi_r; ume: "
             "the uni-modal ensemble, None without uni-modal runs; else the fused output)",
             lambda v: _outcome(v, "test_error")),
    Quantity("method_score", "modality", "float", "",
             "the method's score of M at the last traced step (ogm: sum_j omega_j p_j; agm: "
             "sum_j omega_j (-log p_j)); None: the method has none",
             lambda v: _method_last(v, "method_score")),
    Quantity("method_ratio", "modality", "float", "",
             "the method's ratio of M at the last traced step (ogm, agm); None: none",
             lambda v: _method_last(v, "method_ratio")),
    Quantity("method_scale", "modality", "float", "joint",
             "the gradient scale k_M applied at the last traced step (ogm, agm, mmpareto); "
             "None: the method has none",
             lambda v: _method_last(v, "method_scale")),
    Quantity("method_cosine", "modality", "float", "",
             "mmpareto: cos(g_m, g_u) of M's encoder at the last traced step; None otherwise",
             lambda v: _method_last(v, "method_cosine")),
    Quantity("method_predicted_learned_step", "modality", "int", "joint",
             "learned step of M predicted by the method's reduced dynamics (expected update for "
             "dropout and ogm_ge); None: not by the horizon, or not a joint run",
             lambda v: _outcome(v, "learned_step")),
    Quantity("method_predicted_co_learned", "run", "bool", "joint",
             "whether the method's reduced dynamics learns every modality within train.steps",
             lambda v: _outcome(v, "co_learned")),
    Quantity("method_predicted_test_error", "run", "float", "joint",
             "the method's predictor's test error predicted by its reduced dynamics (noiseless)",
             lambda v: _outcome(v, "error")),
    Quantity("method_predicted_diverged", "run", "bool", "",
             "whether the method's reduced dynamics overflowed (e.g. umt with a too large "
             "distill_weight)",
             lambda v: _outcome(v, "diverged")),
    # the fusion engine (docs/architectures.md, docs/fusion.md); None on the original learner
    Quantity("total_weight", "modality", "float", "joint",
             "fusion engine: M's total weight at the last recorded step (the input-output "
             "coefficient of M projected on the target's, 1 when M is learned exactly)",
             _final_total_weight, engines=("fusion",)),
    Quantity("half_step", "modality", "float", "joint",
             "fusion engine: first (interpolated) step at which M's total weight reaches half "
             "its final value; None: never",
             lambda v: _fusion(v, "half_step"), engines=("fusion",)),
    Quantity("predicted_half_step", "modality", "float", "joint",
             "fusion engine: the linear theory's half step of M (docs/theory.md section 14); "
             "None: no formula for this configuration (theory_formula says why)",
             lambda v: _fusion(v, "pred_predicted_half_step"), before_training=True,
             engines=("fusion",)),
    Quantity("half_step_ratio", "run", "float", "joint",
             "fusion engine: the last half step over the first (the length of the unimodal "
             "phase in units of the first); None: a modality has no half step",
             _half_step_ratio, engines=("fusion",)),
    Quantity("predicted_half_step_ratio", "run", "float", "joint",
             "fusion engine: the theory's ratio of the half steps; None: no formula",
             lambda v: _fusion(v, "pred_ratio"), before_training=True, engines=("fusion",)),
    Quantity("misattribution", "run", "float", "joint",
             "fusion engine: the first-learned modality's total weight halfway through the "
             "unimodal phase, minus its final value, relative to it; None: fewer than two "
             "modalities have a half step",
             lambda v: _fusion(v, "misattribution"), engines=("fusion",)),
    Quantity("misattributed_modality", "run", "str", "joint",
             "fusion engine: the modality misattribution is measured on (the first learned)",
             lambda v: _fusion(v, "misattributed_modality"), engines=("fusion",)),
    Quantity("predicted_misattribution", "run", "float", "joint",
             "fusion engine: the theory's misattribution; None: no formula",
             lambda v: _fusion(v, "pred_misattribution"), before_training=True,
             engines=("fusion",)),
    Quantity("theory_formula", "run", "str", "",
             "fusion engine: which closed form gave the predicted half steps, or why there is "
             "none",
             lambda v: _fusion(v, "pred_formula"), before_training=True, engines=("fusion",)),
    Quantity("final_loss", "run", "float", "joint",
             "fusion engine: the training loss at the last recorded step",
             lambda v: _fusion(v, "final_loss"), engines=("fusion",)),
    Quantity("gradient_route", "run", "str", "",
             "fusion engine: how its gradient was computed (moments: from the data's second "
             "moments; samples: per sample)",
             lambda v: _fusion(v, "route"), engines=("fusion",)),
    # execution (not a result: depends on the machine)
    Quantity("seconds", "run", "float", "", "wall time of the run's training",
             lambda v: _float(v.run.seconds), engines=_BOTH),
    Quantity("threads", "run", "int", "", "numba threads the run could use",
             lambda v: int(v.run.threads)),
    Quantity("parallel", "run", "bool", "",
             "whether the parallel gradient kernel was used (results do not depend on it)",
             lambda v: bool(v.run.parallel)),
    # joint against the best uni-modal network (compare mode)
    Quantity("joint_test_error", "comparison", "float", "",
             "test error of the joint network (the joint run's test_error)",
             lambda e: _comparison_value(e, "joint")),
    Quantity("best_unimodal", "comparison", "str", "all",
             "the modality whose uni-modal network has the lowest test error",
             lambda e: _comparison_value(e, "name")),
    Quantity("best_unimodal_test_error", "comparison", "float", "all",
             "test error of that uni-modal network",
             lambda e: _comparison_value(e, "best")),
    Quantity("gap", "comparison", "float", "all",
             "joint_test_error - best_unimodal_test_error; positive: joint training loses",
             lambda e: _comparison_value(e, "gap")),
    Quantity("expected_gap", "comparison", "float", "all",
             "the gap of the expected test errors: joint expected_test_error - the lowest "
             "uni-modal one (free of test-set sampling noise)",
             lambda e: _best_by(e, "expected_test_error", "gap")),
    Quantity("predicted_best_unimodal", "comparison", "str", "all",
             "the modality whose uni-modal network has the lowest predicted_test_error",
             lambda e: _best_by(e, "predicted_test_error", "name"),
             before_training=True),
    Quantity("predicted_gap", "comparison", "float", "all",
             "joint predicted_test_error - the lowest uni-modal predicted_test_error",
             lambda e: _best_by(e, "predicted_test_error", "gap"),
             before_training=True),
    Quantity("method_predicted_gap", "comparison", "float", "all",
             "the joint run's method_predicted_test_error (its method's reduced dynamics, "
             "noiseless; ume: the uni-modal ensemble) - the lowest uni-modal "
             "predicted_test_error: predicted_gap under the method",
             _method_gap,
             before_training=True),
    Quantity("tracked_gap", "comparison", "float", "all",
             "joint tracked_test_error - the lowest uni-modal one (the tracked dynamics: a "
             "check of the signal-noise decomposition, not a prediction)",
             lambda e: _best_by(e, "tracked_test_error", "gap")),
    Quantity("ensemble_test_error", "comparison", "float", "all",
             "test error of the uni-modal ensemble sign(sum_r phi_r) of the uni-modal networks",
             lambda e: _ensemble_value(e, "error")),
    Quantity("gap_to_ensemble", "comparison", "float", "all",
             "the joint run's method_test_error - ensemble_test_error; positive: the ensemble "
             "of uni-modal networks beats the method",
             lambda e: _ensemble_value(e, "gap")),
)

_BY_NAME = {q.name: q for q in QUANTITIES}
assert len(_BY_NAME) == len(QUANTITIES), "quantity names must be unique"


def quantity(name: str) -> Quantity:
    """The :class:`Quantity` called ``name`` (KeyError if there is none)."""
    return _BY_NAME[name]


# --------------------------------------------------------------------------- views of an experiment


def run_views(exp) -> dict[str, RunView]:
    """A :class:`RunView` of every run of a finished experiment, by run name."""
    expected = getattr(exp, "expected_errors", {})
    outcomes = getattr(exp, "outcomes", {})
    return {run.name: RunView(exp.cfg, exp.data, run, exp.predictions[run.name],
                              expected=expected.get(run.name), outcome=outcomes.get(run.name))
            for run in exp.runs}


def experiment_view(exp) -> ExperimentView:
    """The :class:`ExperimentView` of a finished experiment (what comparison getters read)."""
    return ExperimentView(exp.cfg, run_views(exp), getattr(exp, "ensemble", None))


# --------------------------------------------------------------------------- the fusion engine


@dataclass(frozen=True)
class FusionRunRecord:
    """A fusion-engine run as the getters read it (the joint run; ``fusion``: its result
    dict from :func:`simcomp.fusion_train.train_fusion`)."""

    name: str
    trained: list
    status: str
    failed_step: int | None
    steps_run: int
    winner: int | None  # index of the modality whose half step comes first
    seconds: float
    fusion: dict


@dataclass(frozen=True)
class FusionExperiment:
    """One fusion-engine experiment in the shape :func:`run_views` reads (no data object:
    its quantities come from the run's result and the theory's dict)."""

    cfg: Config
    runs: list
    predictions: dict
    data: Any = None


def fusion_experiment(cfg: Config, res: dict, pred: dict) -> FusionExperiment:
    """The :class:`FusionExperiment` of a trained fusion run ``res`` and its theory ``pred``."""
    halves = [res["half_step"][name] for name in cfg.names]
    known = [(t, k) for k, t in enumerate(halves) if t is not None]
    steps_run = cfg.train.steps if res["failed_step"] is None else res["failed_step"]
    record = FusionRunRecord(
        name="joint", trained=list(range(cfg.K)), status=res["status"],
        failed_step=res["failed_step"], steps_run=steps_run,
        winner=min(known)[1] if known else None, seconds=res["seconds"],
        fusion={**res, "final_loss": float(res["trace"]["loss"][-1])
                if len(res["trace"]["loss"]) else None})
    return FusionExperiment(cfg, [record], {"joint": pred})


def engine_of(view: RunView) -> str:
    """``"fusion"`` for a fusion-engine run, else ``"original"``."""
    return "fusion" if isinstance(view.run, FusionRunRecord) else "original"


def applies(q: Quantity, view: RunView) -> bool:
    """Whether the run of ``view`` reports ``q`` (its engine is one of ``q.engines``)."""
    return engine_of(view) in q.engines
