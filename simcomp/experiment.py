"""One experiment end to end: train every run of the mode, predict each, summarise.

This is the layer that puts the simulation (``train``) and the prediction
(``theory``) side by side; neither of them imports the other.

Training methods (docs/methods.md): the joint run is trained with the
config's ``[method]``, the uni-modal runs always plainly.  ``umt``'s
teachers are the uni-modal networks trained for ``method.teacher_steps``
steps (the compare-mode uni-modal runs themselves when that is
``train.steps``); ``ume`` trains no joint network of its own (its joint run
is plain) and reports the uni-modal ensemble as its predictor.  In compare
mode the ensemble of the uni-modal networks (sum_r phi_r) is reported for
every method (:class:`Ensemble`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .registry import REGISTRY
from . import methods as _methods
from . import theory
from .config import Config, ConfigError, MethodConfig
from .data import ExperimentData, empirical_patterns, make_experiment_data
from .summary import comparison, run_summary, summarize
from .shapley import predictor_error, shapley_values
from .theory.mitigation import MethodPrediction, predict_method
from .train import run_plan, train_batch, train_run

__all__ = [
    "Experiment",
    "Ensemble",
    "MethodOutcome",
    "run_experiment",
    "run_experiments",
    "predict_run",
    "tracked_predict",
    "predict_experiment",
    "noise_aware_regime",
    "expected_error",
    "predict_run_method",
    "run_rule",
    "run_method",
    "summarize",
    "run_summary",
    "comparison",
    "total_steps",
    "mark_diverged",
    "DIVERGED_BOUND",
]


@dataclass
class MethodOutcome:
    """What a training method adds to one run's results (see :mod:`simcomp.methods`).

    ``method`` is the method whose predictor the run reports (the config's
    method for the joint run, ``none`` for uni-modal runs); ``shapley`` the
    exact Shapley values of the run's modalities for test accuracy;
    ``test_error`` the test error of the method's predictor (None for ume
    without uni-modal runs); ``prediction`` the theory's
    :class:`~simcomp.theory.mitigation.MethodPrediction` of the run under the
    method (joint run only).
    """

    method: str
    shapley: np.ndarray
    test_error: float | None
    prediction: MethodPrediction | None = None


@dataclass
class Ensemble:
    """The uni-modal ensemble of compare mode: sign(sum_r phi_r) of the uni-modal networks."""

    name: str
    trained: list
    test_error: float
    modality_test_error: list
    predicted_test_error: float | None


@dataclass
class Experiment:
    cfg: Config
    data: ExperimentData
    runs: list  # RunResult
    predictions: dict  # run name -> theory.Prediction
    # run name -> theory.ExpectedTestError of the trained weights (None: non-finite weights)
    expected_errors: dict = field(default_factory=dict)
    outcomes: dict = field(default_factory=dict)  # run name -> MethodOutcome
    ensemble: Ensemble | None = None

    @property
    def failed(self) -> list:
        return [run for run in self.runs if run.status in ("nonfinite", "diverged")]


def _needs_teachers(cfg: Config, name: str) -> bool:
    return name == "joint" and cfg.method.name == "umt"


def _teacher_cfg(cfg: Config) -> Config:
    steps = _methods.teacher_steps(cfg)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps))


def _teacher_plan(cfg: Config, done: set) -> list:
    """umt's teacher runs still to train: all but the uni-modal runs of ``done`` of equal length."""
    steps = _methods.teacher_steps(cfg)
    if steps == 0:
        return []  # the teachers are the initial encoders
    reuse = steps == cfg.train.steps
    return [(f"teacher-{name}", [r]) for r, name in enumerate(cfg.names)
            if not (reuse and f"unimodal-{name}" in done)]


def total_steps(cfg: Config) -> int:
    """GD steps of all the runs of ``cfg`` (for progress bars), umt's teachers included."""
    plan = run_plan(cfg)
    steps = cfg.train.steps * len(plan)
    if any(_needs_teachers(cfg, name) for name, _ in plan):
        steps += _methods.teacher_steps(cfg) * len(_teacher_plan(cfg, {n for n, _ in plan}))
    return steps


def run_method(cfg: Config, name: str) -> str:
    """The method whose predictor run ``name`` reports: the config's for joint, else none."""
    return cfg.method.name if name == "joint" else "none"


def run_rule(cfg: Config, name: str, trained: list[int], teacher_units=None):
    """The training rule of run ``name`` (None: plain training, bit-identical to no rule)."""
    if name != "joint" or REGISTRY[cfg.method.name].kernel == "none":
        return None
    from .kernels import make_rule

    kwargs = _methods.rule_kwargs(cfg, trained, teacher_units)
    return make_rule(kwargs.pop("name"), kwargs.pop("K"), **kwargs)


def _teacher_units(cfg: Config, data: ExperimentData, trained: list[int], runs: dict) -> np.ndarray:
    """umt's teacher unit outputs on the training set from the trained teacher runs."""
    weights = []
    for r in trained:
        name = cfg.names[r]
        if _methods.teacher_steps(cfg) == 0:
            weights.append(data.init[r])
            continue
        run = runs.get(f"teacher-{name}") or runs[f"unimodal-{name}"]
        weights.append(run.final_weights[0])
    return _methods.unit_outputs(cfg, weights, [data.train.X[r] for r in trained])


# Accuracy of the expected test errors: quasi-Monte Carlo points per random shift and
# shifts.  The standard error is reported with every value (about 1e-4 for the default
# config); more points cost time in every run of a sweep (docs/sweeps.md, Throughput).
EXPECTED_POINTS = 2048
EXPECTED_REPLICATES = 8


# The rule deciding between the noise-aware and the reduced theory lives in the theory
# (the results and the figure, which draws the prediction, follow it); re-exported here.
noise_aware_regime = theory.noise_aware_regime


def predict_run(cfg: Config, data: ExperimentData, trained: list[int], alignment0: np.ndarray,
                noise_aware: bool | None = None, tracked: bool | None = None,
                name: str | None = None):
    """The theory's prediction for one run, from its initial state and its training set.

    The reduced dynamics and the race always.  Where :func:`noise_aware_regime`
    says so and ``train.noise_theory`` is true (or as ``noise_aware`` forces;
    False skips it, e.g. where only the race is needed):

    * ``prediction.noise_aware``: the distribution-level noise-aware
      prediction (:func:`simcomp.theory.distribution_predict`), from the
      configuration, the initial weights and the training set's (y, s)
      pattern weights -- never its noise; every ``predicted_*`` quantity;
    * ``prediction.tracked`` (unless ``tracked`` is False): the same
      dynamics fed with the run's own training noise and initial noise
      pre-activations, a check of the signal-noise decomposition
      (``tracked_*``), not a prediction.

    ``name`` is the run's name: the joint run (the one trained with the
    config's method) gets ``prediction.method``, the method's prediction
    (:func:`predict_run_method`; method ``none`` reuses the reduced
    dynamics).  This is the one place a run's prediction is made: the
    simulation, ``simcomp theory``, :func:`simcomp.predict` and the
    figures all read it.
    """
    y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)
    pred = theory.predict(cfg, trained, alignment0, y_pat, s_pat, w_pat)
    if name == "joint":
        pred.method = predict_run_method(cfg, data, trained, alignment0, plain=pred.reduced)
    if noise_aware is None:
        noise_aware = theory.noise_aware_regime(cfg, trained)
    if noise_aware:
        grams = [theory.weight_geometry(data.init[r], data.signals[r]) for r in trained]
        pred.noise_aware = theory.distribution_predict(
            cfg, trained, alignment0, y_pat, s_pat, w_pat, grams,
            points=EXPECTED_POINTS, replicates=EXPECTED_REPLICATES)
        if tracked is None or tracked:
            pred.tracked = tracked_predict(cfg, data, trained, alignment0)
    return pred


def predict_experiment(cfg: Config, data: ExperimentData | None = None):
    """The theory's predictions of every planned run of ``cfg``, before any training.

    What ``simcomp theory`` prints and :func:`simcomp.predict` returns: one
    function, so the two cannot disagree.

    Returns
    -------
    SimpleNamespace
        ``rows`` (one dict per planned run: ``run`` and every quantity known
        before training, keyed as in summary.json, plus ``method_prediction``
        for the joint run), ``comparison`` (None outside compare mode),
        ``predictions`` (run name -> :class:`simcomp.theory.Prediction`) and
        ``data``.
    """
    from types import SimpleNamespace

    from .summary import theory_comparison, theory_summary
    from .trace import geometry

    data = make_experiment_data(cfg) if data is None else data
    rows, predictions, planned = [], {}, []
    for name, trained in run_plan(cfg):
        alignment0 = geometry([data.init[r] for r in trained],
                              [data.dictionaries[r] for r in trained])[0]
        pred = predict_run(cfg, data, trained, alignment0, tracked=False, name=name)
        predictions[name] = pred
        planned.append((name, trained, alignment0, pred))
        row = {"run": name, **theory_summary(cfg, data, trained, alignment0, pred)}
        if pred.method is not None:
            row["method_prediction"] = pred.method.to_json([cfg.names[r] for r in trained])
        rows.append(row)
    return SimpleNamespace(rows=rows, comparison=theory_comparison(cfg, data, planned),
                           predictions=predictions, data=data)


def tracked_predict(cfg: Config, data: ExperimentData, trained: list[int], alignment0):
    """The tracked dynamics of one run: the noise-aware dynamics fed with the run's own
    training noise (two statistics per sample) and initial noise pre-activations.

    A check of the signal-noise decomposition (it follows the run's draw), not a prediction.
    """
    train = data.train
    noise = [theory.training_noise(train.X[r], train.y, train.presence[:, r],
                                   cfg.data.modality[r].beta, data.signals[r], data.init[r])
             for r in trained]
    return theory.noise_aware_predict(
        cfg, trained, alignment0, train.y, train.presence[:, trained], noise,
        points=EXPECTED_POINTS, replicates=EXPECTED_REPLICATES, weight=train.weight)


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
                model.q, model.rho, points=EXPECTED_POINTS, replicates=EXPECTED_REPLICATES,
                correlation=cfg.data.presence_correlation)
    except np.linalg.LinAlgError:
        return None


def predict_run_method(cfg: Config, data: ExperimentData, trained: list[int],
                       alignment0: np.ndarray, plain=None) -> MethodPrediction:
    """The theory's prediction of a run trained with ``cfg``'s method (docs/methods.md).

    A method that compares with a held-out sample is predicted on the patterns of the
    training set and of its held-out sample together (``simcomp.methods.holdout_patterns``).
    """
    if REGISTRY[cfg.method.name].holdout:
        y_pat, s_pat, w_pat, w_hold = _methods.holdout_patterns(cfg, data, trained)
        return predict_method(cfg, trained, alignment0, y_pat, s_pat, w_pat, plain=plain,
                              w_holdout=w_hold)
    y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)
    return predict_method(cfg, trained, alignment0, y_pat, s_pat, w_pat, plain=plain)


def _test_outputs(cfg: Config, data: ExperimentData, run) -> np.ndarray:
    """phi_r of the run's encoders on the test samples, (n_test, K_run) float64."""
    units = _methods.unit_outputs(cfg, run.final_weights, [data.test.X[r] for r in run.trained])
    signs = np.array([1.0, -1.0])[: units.shape[1]]
    return np.einsum("rbin,b->nr", units, signs)


# A run whose weights or loss pass this bound has blown up even though its loss is still
# finite (e.g. umt at a large distill_weight: alignments of 1e274); learned alignments stay
# O(rho / beta), and the theory's method dynamics uses the same bound.
DIVERGED_BOUND = 1e12


def mark_diverged(run):
    """Set ``status`` "diverged" on a run that ended "ok"/"stop_loss" with blown-up weights
    or loss (:data:`DIVERGED_BOUND`); ``failed_step`` is the first recorded step past it."""
    if run.status not in ("ok", "stop_loss"):
        return run
    with np.errstate(over="ignore", invalid="ignore"):
        big = [float(np.max(np.abs(w), initial=0.0)) for w in run.final_weights]
        blown = any(not np.isfinite(b) or b > DIVERGED_BOUND for b in big)
        rec = run.trace.records
        steps = list(rec.get("steps", []))
        first = None
        for i, step in enumerate(steps):
            loss = rec["train_loss"][i] if i < len(rec.get("train_loss", [])) else 0.0
            align = rec["alignment"][i] if i < len(rec.get("alignment", [])) else 0.0
            if not (abs(loss) <= DIVERGED_BOUND
                    and np.max(np.abs(align), initial=0.0) <= DIVERGED_BOUND):
                first = int(step)
                break
    if blown or first is not None:
        run.status = "diverged"
        run.failed_step = first if first is not None else int(run.steps_run)
    return run


def _assemble(cfg: Config, data: ExperimentData, runs: list) -> Experiment:
    """Predictions, method outcomes and the ensemble of trained runs."""
    runs = [mark_diverged(run) for run in runs]
    predictions = {run.name: predict_run(cfg, data, run.trained, run.initial_alignment,
                                         name=run.name)
                   for run in runs}
    y, w = data.test.y, data.test.weight
    phi = {run.name: _test_outputs(cfg, data, run) for run in runs}
    unimodal = [f"unimodal-{name}" for name in cfg.names]
    ensemble = None
    phi_uni = None
    if all(name in phi for name in unimodal):
        phi_uni = np.concatenate([phi[name] for name in unimodal], axis=1)
        joint = next((run for run in runs if run.name == "joint"), None)
        predicted = None
        if joint is not None:
            shared = predictions[joint.name].method
            if shared is not None and shared.method == "ume":  # the joint run's own: reuse it
                predicted = shared.test_error_noiseless
            else:
                ume = dataclasses.replace(cfg, method=MethodConfig(name="ume"))
                predicted = predict_run_method(ume, data, joint.trained,
                                               joint.initial_alignment).test_error_noiseless
        ensemble = Ensemble(
            name="ensemble", trained=list(range(cfg.K)),
            test_error=predictor_error(phi_uni, y, w),
            modality_test_error=[predictor_error(phi_uni[:, [r]], y, w) for r in range(cfg.K)],
            predicted_test_error=predicted,
        )
    outcomes = {}
    for run in runs:
        own = phi[run.name]
        if run.name == "joint":
            res = _methods.method_results(cfg, run.trained, own, y, w, phi_uni)
            pred = predictions[run.name].method
            outcomes[run.name] = MethodOutcome(run_method(cfg, run.name), res["shapley"],
                                               res["method_test_error"], pred)
        else:
            outcomes[run.name] = MethodOutcome("none", shapley_values(own, y, w),
                                               predictor_error(own, y, w))
    expected = {run.name: expected_error(cfg, data, run) for run in runs}
    return Experiment(cfg=cfg, data=data, runs=runs, predictions=predictions, outcomes=outcomes,
                      ensemble=ensemble, expected_errors=expected)


def _refuse_fusion(cfgs) -> None:
    """The original learner's runs only: a fusion-engine config here would train the wrong model."""
    from .fusion_config import uses_fusion_engine

    if any(uses_fusion_engine(cfg.model) for cfg in cfgs):
        raise ConfigError("this configuration runs on the fusion engine (model.architecture / "
                          "model.head); use simcomp.simulate or simcomp.fusion_train")


def run_experiment(
    cfg: Config,
    progress: Callable[[int], None] | None = None,
    data: ExperimentData | None = None,
) -> Experiment:
    """Draw the data, train every run of ``cfg.train.mode`` and predict each.

    The joint run is trained with ``cfg.method``; umt's joint run is
    trained last, after its teachers.  A run whose loss turns non-finite
    stops there; the others still run, and :attr:`Experiment.failed` lists
    the failures.
    """
    _refuse_fusion([cfg])
    if data is None:
        data = make_experiment_data(cfg)
    plan = run_plan(cfg)
    done: dict = {}
    for name, trained in sorted(plan, key=lambda item: _needs_teachers(cfg, item[0])):
        units = None
        if _needs_teachers(cfg, name):
            for tname, ttrained in _teacher_plan(cfg, set(done)):
                done[tname] = train_run(_teacher_cfg(cfg), data, tname, ttrained, progress,
                                        record=False)
            units = _teacher_units(cfg, data, trained, done)
        done[name] = train_run(cfg, data, name, trained, progress,
                               rule=run_rule(cfg, name, trained, units))
    return _assemble(cfg, data, [done[name] for name, _ in plan])


def run_experiments(cfgs: list[Config], record: bool = True,
                    progress: Callable[[int], None] | None = None,
                    batched: bool = True) -> list[Experiment]:
    """Many experiments at once: runs of equal shape train together in compiled batches.

    Each experiment equals ``run_experiment`` of its config (bit for bit in
    its learned steps, final weights and the records it keeps); with
    ``record=False`` only step 0 and the last step are traced, which is all
    a sweep row needs.  Runs are batched only with runs of the same method;
    umt's joint runs are trained in a second batch, after every teacher.
    ``batched=False`` trains every run alone (``train_batch``'s option).
    """
    _refuse_fusion(cfgs)
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    plans = [run_plan(cfg) for cfg in cfgs]
    # Phase 1: every run but umt's joint runs, and umt's teachers the uni-modal runs do not give.
    b_cfgs, b_datas, b_plans, b_rules, where = [], [], [], [], []
    for i, (cfg, data, plan) in enumerate(zip(cfgs, datas, plans)):
        first = [(name, trained) for name, trained in plan if not _needs_teachers(cfg, name)]
        if first:
            b_cfgs.append(cfg), b_datas.append(data), b_plans.append(first)
            b_rules.append([run_rule(cfg, name, trained) for name, trained in first])
            where.append(i)
        if len(first) < len(plan):
            teach = _teacher_plan(cfg, {name for name, _ in first})
            if teach:
                b_cfgs.append(_teacher_cfg(cfg)), b_datas.append(data), b_plans.append(teach)
                b_rules.append([None] * len(teach))
                where.append(i)
    done: list[dict] = [{} for _ in cfgs]
    for i, runs in zip(where, train_batch(b_cfgs, b_datas, b_plans, record=record, rules=b_rules,
                                          progress=progress, batched=batched)):
        done[i].update({run.name: run for run in runs})
    # Phase 2: umt's joint runs, with their teachers' unit outputs.
    b_cfgs, b_datas, b_plans, b_rules, where = [], [], [], [], []
    for i, (cfg, data, plan) in enumerate(zip(cfgs, datas, plans)):
        for name, trained in plan:
            if _needs_teachers(cfg, name):
                units = _teacher_units(cfg, data, trained, done[i])
                b_cfgs.append(cfg), b_datas.append(data), b_plans.append([(name, trained)])
                b_rules.append([run_rule(cfg, name, trained, units)])
                where.append(i)
    if b_cfgs:
        for i, runs in zip(where, train_batch(b_cfgs, b_datas, b_plans, record=record,
                                              rules=b_rules, progress=progress,
                                              batched=batched)):
            done[i].update({run.name: run for run in runs})
    return [_assemble(cfg, data, [done[i][name] for name, _ in plan])
            for i, (cfg, data, plan) in enumerate(zip(cfgs, datas, plans))]
