"""Gradient descent in the modes joint, unimodal and compare (docs/model.md section 3).

Full-batch by default; with ``train.batch_size = b > 0``, mini-batch SGD:
every step is one compiled call whose sample weights are those of the
step's batch (simcomp.batches: omega_j n / b inside the batch, 0 outside),
so the full-batch path is untouched and SGD runs through the very same
kernels, learned-step check, rules and early stop (which then compares the
step's mini-batch loss). A rule's per-step statistics are then over the
batch; trace records still evaluate the whole training and test sets.

Python only runs between trace points: each segment of ``trace_every`` steps
is one call (or, while the serial and the parallel gradient are being timed
against each other, a few calls) of the compiled ``gd_segment`` kernel,
which also watches for the learned step at every step, the early stop and
non-finite losses.

Many runs at once: :func:`train_batch` groups runs of one shape and
advances each group by one call of the batched kernel
``gd_segment_batch`` per trace point (runs spread over the threads, each
run's steps serial); with ``record=False`` a group runs to its horizon in
a single call. A batched run is bit-identical to the same run through
:func:`train_run`.

Every run holds its data in the packed layout of the kernels
(``_kernels.pack_samples``), made once per run for the training and for
the test set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from . import kernels as _kernels
from .config import Config
from .batches import MiniBatches
from .data import Dataset, ExperimentData, batch_seed_sequence
from .pacing import CallSizer, PathChooser
from . import method_hooks
from .registry import REGISTRY
from .trace import METHOD_KEYS, Trace, geometry, trace_stride, weighted_error

__all__ = [
    "RunResult",
    "run_plan",
    "train_run",
    "train_batch",
    "KIND_CODES",
    "STATUS_OK",
    "STATUS_STOP_LOSS",
    "STATUS_NONFINITE",
    "TrainingInterrupted",
]

# Codes shared with the kernels.
KIND_CODES = {("symmetric", "srelu"): 0, ("class_banks", "srelu"): 1, ("class_banks", "relu"): 2}
STATUS_OK, STATUS_STOP_LOSS, STATUS_NONFINITE = 0, 1, 2
STATUS_INTERRUPTED = 3  # trainer only: a signal ended the run between two compiled calls


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a SIGTERM turned into KeyboardInterrupt) during :func:`train_run`.

    ``result`` is the run up to the interruption: status "interrupted",
    its trace (every record taken so far), learned steps and the weights
    at ``steps_run``. A subclass of KeyboardInterrupt, so code that does
    not look for it still stops.
    """

    def __init__(self, result):
        super().__init__(f"training of {result.name} interrupted at step {result.steps_run}")
        self.result = result

# Serial or parallel gradient. Both give bit-identical results, so train_run
# may switch between them at any step; it times both on the run itself and
# keeps the faster (PathChooser). Measured with the register-tiled kernels
# (docs/performance.md): on an idle 2-core machine the parallel step is
# 1.4x faster at 2**17 multiply-adds per step, 1.7x at the default problem
# (2**20) and 1.5x at 2**27 (memory-bound); with another process holding a
# core it is slower than the serial one at every size (0.6-0.9x; OpenMP
# threads wait for each other at every step) and, under heavy contention,
# it can stall by far more (13x slower at the default size was measured).
# Below _PARALLEL_MIN_WORK (or with one block of samples, nothing to split)
# only the serial step runs. It sits just above the default problem (2**21:
# n 512 x d 128 x K 2 x width 16): there the parallel gain is small next to
# the seconds its compilation adds to a cold start.
_PARALLEL_MIN_WORK = 1 << 22
# Probing needs several kernel calls: a call is cut to about this much work
# (multiply-adds) when both paths are in play, e.g. 64 steps at the default
# size, 1 step at D = 1024, n = 4096. Segments do not change results.
_PROBE_CALL_WORK = 1 << 26
@dataclass
class RunResult:
    """One trained network: its trace, its learned steps and where it ended.

    ``learned_step`` is per trained modality (min over banks), -1 when never
    learned; ``status`` is "ok", "stop_loss" or "nonfinite" (then
    ``failed_step`` names the step whose loss was not finite). ``threads``
    is the number of numba threads the run could use; ``parallel`` whether
    the parallel gradient was used for at least one kernel call (results
    do not depend on it).
    """

    name: str
    trained: list
    trace: Trace
    learned_step: np.ndarray
    learned_step_bank: np.ndarray
    initial_alignment: np.ndarray
    final_weights: list
    steps_run: int
    status: str
    failed_step: int | None
    seconds: float
    threads: int
    parallel: bool

    @property
    def winner(self) -> int | None:
        """Index (into ``trained``) of the modality learned first; ties go to the lower index."""
        learned = [(step, k) for k, step in enumerate(self.learned_step) if step >= 0]
        return min(learned)[1] if learned else None


def run_plan(cfg: Config) -> list[tuple[str, list[int]]]:
    """The runs of ``cfg.train.mode``: (name, trained modality indices)."""
    joint = [("joint", list(range(cfg.K)))]
    unimodal = [(f"unimodal-{name}", [r]) for r, name in enumerate(cfg.names)]
    return {"joint": joint, "unimodal": unimodal, "compare": joint + unimodal}[cfg.train.mode]


def _pad(arrays: list, width: int, dtype) -> np.ndarray:
    """Stack arrays whose last axes differ into one zero-padded C-contiguous array."""
    if all(arr.shape[-1] == width for arr in arrays):
        return np.stack(arrays).astype(dtype, copy=False)
    out = np.zeros((len(arrays),) + arrays[0].shape[:-1] + (width,), dtype=dtype)
    for k, arr in enumerate(arrays):
        out[k, ..., : arr.shape[-1]] = arr
    return out


def _threads(cfg: Config) -> int:
    wanted = cfg.train.threads or numba.config.NUMBA_NUM_THREADS
    return max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))


class _Evaluator:
    """Forward passes on a fixed, padded dataset for losses and errors.

    Holds the padded X and its packed copies (``_kernels.pack_samples``) for
    the lifetime of a run: packing the 4096-sample default test set costs
    more than a forward pass, and a run evaluates it at every trace point.
    The copies are made when first needed (only the forward copy, unless
    :meth:`pack` asks for both), or filled in by :func:`_train_group`.
    """

    def __init__(self, data: Dataset, trained: list, width: int, dtype, kind: int, q, rho,
                 mix=None):
        self.mix = None if mix is None else np.asarray(mix, dtype=np.float64)
        self.X = _pad([data.X[r] for r in trained], width, dtype)
        self.packed = None
        self.y = data.y.astype(dtype)
        self.weight = data.weight.astype(dtype)
        self.y64, self.weight64 = data.y, data.weight
        self.kind, self.q, self.rho = kind, q, rho
        self.f = np.empty(data.n, dtype=dtype)
        self.phi = np.empty((data.n, len(trained)), dtype=dtype)

    def pack(self, backward: bool = True) -> tuple:
        """The packed copies, made now if missing (both with ``backward``)."""
        if self.packed is None or (backward and self.packed[1] is None):
            self.packed = _kernels.pack_samples(self.X, backward=backward)
        return self.packed

    def adopt(self, packed: tuple) -> None:
        """Use equal packed copies (views into a batch's stacked arrays)."""
        self.packed = packed

    def __call__(self, W: np.ndarray, dims: np.ndarray):
        _kernels.forward(self.X, dims, W, self.kind, self.q, self.rho, self.f, self.phi,
                         packed=self.pack(backward=False))
        f = self.f.astype(np.float64)
        if self.mix is not None:  # a method's own predictor, sum_r a_r phi_r
            f = self.phi.astype(np.float64) @ self.mix
        with np.errstate(invalid="ignore", over="ignore"):  # a non-finite loss is handled by the caller
            loss = float(np.dot(self.weight64, np.logaddexp(0.0, -self.y64 * f)))
        error = weighted_error(self.y64, f, self.weight64)
        per_modality = np.array(
            [weighted_error(self.y64, self.phi[:, k].astype(np.float64), self.weight64)
             for k in range(self.phi.shape[1])]
        )
        return loss, error, per_modality


class _Run:
    """One training run's arrays, trace and progress, shared by train_run and train_batch.

    The run's state between compiled segments: ``step`` (the step index of
    ``W``), ``status`` and ``failed_step``; :meth:`start`, :meth:`segment`
    and :meth:`advance` implement the loop of :func:`train_run`, and
    :func:`train_batch` drives many runs through the same methods, so a
    batched run records exactly what it would alone.
    """

    def __init__(self, cfg: Config, data: ExperimentData, name: str, trained: list[int],
                 record: bool = True, rule: _kernels.Rule | None = None):
        clock = time.perf_counter()
        if rule is not None and rule.K != len(trained):
            raise ValueError(f"the rule is for {rule.K} modalities, the run trains {len(trained)}")
        self.rule = None if rule is None or rule.name == "none" else rule
        self.cfg, self.name, self.trained = cfg, name, list(trained)
        self.record_all = record
        self.dtype = np.dtype(cfg.train.dtype)
        self.mods = [cfg.data.modality[r] for r in trained]
        self.width = max(mod.dim for mod in self.mods)
        self.dims = np.array([mod.dim for mod in self.mods], dtype=np.int64)
        self.kind = KIND_CODES[(cfg.model.learner, cfg.model.activation)]
        self.q, self.rho = float(cfg.model.q), float(cfg.model.rho)
        self.n = data.train.n
        predictor = None if self.rule is None else REGISTRY[self.rule.name].predictor_setting
        mix = None if predictor is None else self.rule.setting(predictor)  # its own predictor
        self._eval_args = (trained, self.width, self.dtype, self.kind, self.q, self.rho, mix)
        self.train_eval = _Evaluator(data.train, *self._eval_args)
        # The test set's padded and packed copies are kept only when the run
        # records often; with record=False they are made for each of the two
        # records and dropped, so that a large batch does not hold them all.
        self._test_data = data.test
        self.test_eval = self.train_eval if data.test is data.train else None
        self.W = _pad([data.init[r] for r in trained], self.width, self.dtype)
        self.signal = _pad([data.signals[r] for r in trained], self.width, self.dtype)
        self.beta = np.array([mod.beta for mod in self.mods], dtype=np.float64)
        self.learned = np.full((len(trained), cfg.model.banks), -1, dtype=np.int64)
        self.dictionaries = [data.dictionaries[r] for r in trained]
        self.trace = Trace(banks=cfg.model.banks)
        self.initial_alignment = geometry(self._weights(), self.dictionaries)[0]
        self.step, self.status, self.failed_step = 0, STATUS_OK, None
        self.done = False
        # Only a run that records its trace has a stride to cap (and to say so): a sweep's
        # runs record only their first and last step, yet the note came for every run.
        self.every = (trace_stride(cfg.train.steps, cfg.train.trace_every, name) if record
                      else int(cfg.train.trace_every))
        self.work = self.n * self.width * len(trained) * cfg.model.banks * cfg.model.width
        # SGD: the step's sample weights, rewritten before every (one-step) call.
        self.batches = None
        if cfg.train.batch_size:
            self.batches = MiniBatches(batch_seed_sequence(cfg.seed), data.train.weight,
                                       cfg.train.batch_size)
            self.step_weight = np.zeros(self.n, dtype=self.dtype)
        # A method's work between compiled segments (held-out evaluations, resets, probes).
        self.data = data
        hook = None if self.rule is None else REGISTRY[self.rule.name].hook
        self.hook = None if hook is None else getattr(method_hooks, hook)(self)
        self.seconds = time.perf_counter() - clock  # own time: preparation, tracing

    @property
    def shape_key(self) -> tuple:
        """Runs with equal keys can share one batched kernel call."""
        code = 0 if self.rule is None else self.rule.code
        sgd = self.batches is not None  # SGD groups take one step per call
        return (self.dtype.str, self.kind, self.q, self.rho, code, sgd) + self.W.shape + (self.n,)

    def _weights(self) -> list:
        return [self.W[k, :, :, : mod.dim] for k, mod in enumerate(self.mods)]

    def record(self, step: int) -> bool:
        """Append a trace record at ``step``; False (nothing recorded) if the loss is not finite."""
        clock = time.perf_counter()
        try:
            loss, train_err, _ = self.train_eval(self.W, self.dims)
            if not (np.isfinite(loss) and np.all(np.isfinite(self.W))):
                return False
            alignment, distractor, orthogonal = geometry(self._weights(), self.dictionaries)
            test_eval = self.test_eval or _Evaluator(self._test_data, *self._eval_args)
            if self.record_all:
                self.test_eval = test_eval
            _, test_err, modality_err = test_eval(self.W, self.dims)
            method = None
            if self.rule is not None:  # the statistics of the step just taken (NaN at step 0)
                method = (self.rule.method_stats() if step > 0 else
                          {key: np.full(len(self.trained), np.nan) for key in METHOD_KEYS})
            self.trace.append(step, alignment, distractor, orthogonal, loss, train_err, test_err,
                              modality_err, method)
            return True
        finally:
            self.seconds += time.perf_counter() - clock

    def start(self) -> None:
        """Record step 0 (a non-finite loss there ends the run before any step)."""
        if not self.record(0):
            self.status, self.failed_step, self.done = STATUS_NONFINITE, 0, True
        self.done = self.done or self.step >= self.cfg.train.steps
        if not self.done:
            self._hook()

    def _hook(self) -> None:
        """The method's work at this step (before the step is taken), if it has some."""
        if self.hook is not None and self.step in self.hook.steps:
            clock = time.perf_counter()
            self.hook(self, self.step)
            self.seconds += time.perf_counter() - clock

    def segment(self) -> int:
        """Steps to the next trace point (to the horizon when only the end is recorded),
        or to the method's next hook step if that comes first."""
        total, every = self.cfg.train.steps, self.every
        n = total - self.step if not self.record_all else min(every - self.step % every,
                                                               total - self.step)
        if self.hook is not None:
            later = [s for s in self.hook.steps if s > self.step]
            if later:
                n = min(n, min(later) - self.step)
        return n

    def advance(self, status: int, t_stop: int) -> None:
        """Take a call's outcome; record at a trace point (or a stop) unless the run failed."""
        self.status = int(status)
        self.step = int(t_stop)
        if self.status == STATUS_NONFINITE:
            self.failed_step, self.done = self.step, True
            return
        end = self.status == STATUS_STOP_LOSS or self.step >= self.cfg.train.steps
        if self.status == STATUS_OK:
            self._hook()
        if not end and (not self.record_all or self.step % self.every):
            return  # a call cut short of the trace point (see _CALL_SECONDS)
        if not self.record(self.step):
            self.status, self.failed_step, self.done = STATUS_NONFINITE, self.step, True
            return
        if self.status == STATUS_STOP_LOSS or self.step >= self.cfg.train.steps:
            self.done = True

    def result(self, threads: int, parallel: bool, seconds: float) -> RunResult:
        return RunResult(
            name=self.name,
            trained=list(self.trained),
            trace=self.trace,
            learned_step=_min_learned(self.learned),
            learned_step_bank=self.learned.copy(),
            initial_alignment=self.initial_alignment,
            final_weights=[w.astype(np.float64) for w in self._weights()],
            steps_run=self.step,
            status={STATUS_OK: "ok", STATUS_STOP_LOSS: "stop_loss",
                    STATUS_NONFINITE: "nonfinite", STATUS_INTERRUPTED: "interrupted"}[self.status],
            failed_step=self.failed_step,
            seconds=seconds,
            threads=threads,
            parallel=parallel,
        )


def train_run(
    cfg: Config,
    data: ExperimentData,
    name: str,
    trained: list[int],
    progress: Callable[[int], None] | None = None,
    record: bool = True,
    rule: "_kernels.Rule | None" = None,
) -> RunResult:
    """Train the late-fusion network on the modalities ``trained`` and trace it.

    Parameters
    ----------
    cfg : Config
        The experiment.
    data : ExperimentData
        Dictionaries, training and test sets and initial weights (shared by
        every run of an experiment, so uni-modal runs start from the joint
        run's encoder weights).
    name : str
        Run name ("joint", "unimodal-A", ...).
    trained : list of int
        Indices of the trained modalities; the other encoders are absent.
    progress : callable, optional
        Called with the number of GD steps just done, after each segment.
        (With ``train.batch_size > 0`` every call is one SGD step.)
    record : bool
        Record every ``trace_every`` steps (default); False records only
        step 0 and the last step (learned steps are still checked at every
        step), which is all a sweep needs.
    rule : Rule, optional
        ``simcomp.kernels.make_rule(...)`` for ``len(trained)`` modalities;
        default (None or "none") plain training. Its statistics are
        recorded in the trace (``method_*`` keys) at every trace point.
    """
    start = time.perf_counter()
    run = _Run(cfg, data, name, trained, record, rule)
    return _train_single(run, progress, start)


def _train_single(run: _Run, progress, start: float) -> RunResult:
    """The loop of :func:`train_run` for a prepared run."""
    cfg = run.cfg
    threads = _threads(cfg)
    numba.set_num_threads(threads)
    nblocks, _ = _kernels.chunk_layout(run.n)
    chooser = PathChooser(threads > 1 and nblocks > 1 and run.work >= _PARALLEL_MIN_WORK)
    max_call = max(1, _PROBE_CALL_WORK // max(run.work, 1)) if chooser.enabled else None
    sizer = CallSizer()
    grad_buf = np.zeros_like(run.W)
    # Said before the first compiled call (packing, the step-0 record), so
    # that no compilation on a cold cache goes unannounced.
    _kernels.announce_compile("serial")
    ev = run.train_eval
    packed = ev.pack()
    run.start()
    try:
        while not run.done:
            segment = run.segment()
            step = run.step
            while True:  # one segment, in calls bounded in steps and in wall time
                steps = sizer.next(segment if max_call is None else min(segment, max_call))
                omega = ev.weight
                if run.batches is not None:  # SGD: one step per call, its batch's weights
                    steps = 1
                    run.batches.fill(step, run.step_weight)
                    omega = run.step_weight
                parallel = chooser.next()
                _kernels.announce_compile("parallel" if parallel else "serial")  # once per path
                clock = time.perf_counter()
                status, t_stop, _ = _kernels.gd_segment(
                    ev.X, run.dims, ev.y, omega, run.W, run.kind, run.q, run.rho,
                    float(cfg.train.lr), run.signal, run.beta, float(cfg.model.threshold),
                    run.learned, step, steps, float(cfg.train.stop_loss), parallel, grad_buf,
                    packed=packed, rule=run.rule,
                )
                run.step = int(t_stop)  # first: W is W(t_stop) now, whatever comes next
                seconds = time.perf_counter() - clock
                chooser.record(parallel, int(t_stop) - step, seconds)
                sizer.record(int(t_stop) - step, seconds)
                if progress is not None:
                    progress(int(t_stop) - step)
                segment -= int(t_stop) - step
                step = int(t_stop)
                if status != STATUS_OK or segment == 0:
                    break
            run.advance(status, step)
    except KeyboardInterrupt as interrupt:
        # Python sees the signal between compiled calls, which are short
        # (_CALL_SECONDS); W and run.step are those of the last completed call.
        # The original interrupt stays the cause: the CLI tells SIGTERM from Ctrl-C by it.
        run.status = STATUS_INTERRUPTED
        raise TrainingInterrupted(run.result(threads, chooser.used_parallel,
                                             time.perf_counter() - start)) from interrupt
    return run.result(threads, chooser.used_parallel, time.perf_counter() - start)


def _batch_threads(cfgs: list[Config]) -> int:
    return min(_threads(cfg) for cfg in cfgs)


def train_batch(
    cfgs: list[Config],
    datas: list[ExperimentData],
    plan: list[list[tuple[str, list[int]]]] | None = None,
    *,
    record: bool = True,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    rules: list | None = None,
    batched: bool = True,
) -> list[list[RunResult]]:
    """Train the runs of many experiments, batching runs of one shape into compiled calls.

    Every run of every experiment is prepared as :func:`train_run` would.
    Runs whose arrays have the same shapes, dtype, learner kind, q and rho
    (learning rates, signal strengths, thresholds, seeds, presence, steps,
    ``trace_every`` and ``stop_loss`` may all differ) form a group, advanced
    by one call of :func:`simcomp._kernels.gd_segment_batch` per trace
    point: the runs are spread over the thread pool, each run's steps
    serial. Mini-batch runs (``train.batch_size > 0``, any batch size)
    group only with each other and advance one step per call, each with
    its own batch's sample weights. A group of one runs through
    :func:`train_run` (which may use the parallel gradient for a large run).
    Each result is bit-identical to ``train_run`` of the same run (same
    trace records, learned steps and final weights).

    Parameters
    ----------
    cfgs : list of Config
        The experiments.
    datas : list of ExperimentData
        ``datas[i]`` is the data of ``cfgs[i]`` (``make_experiment_data``).
    plan : list of list of (name, trained), optional
        The runs of each experiment; default ``run_plan(cfg)`` (its mode).
    record : bool
        False: trace only step 0 and the last step of each run (learned
        steps are still checked at every step, and the final alignments and
        errors are recorded), so each group runs to its horizon in a single
        call. What a sweep needs, and much faster for small runs.
    threads : int, optional
        Threads for the batched calls; default the smallest ``train.threads``
        of the configs (0 meaning every core).
    progress : callable, optional
        Called with the number of GD steps just done, after each call.
    rules : list of list of Rule, optional
        ``rules[i][k]`` is the training rule of run k of experiment i (None
        for plain training); default plain training everywhere. Runs are
        batched only with runs of the same method.
    batched : bool
        False: every run through :func:`train_run`'s loop, one by one (the
        same results bit for bit): what a sweep's workers do while the
        batched loop is being compiled for them (:mod:`simcomp.sweep.warm`).

    Returns
    -------
    list of list of RunResult
        Per experiment, its runs in plan order. ``seconds`` of a batched
        run is its own preparation and tracing time plus an equal share of
        its group's kernel time; ``parallel`` is False for batched runs.
    """
    if len(cfgs) != len(datas):
        raise ValueError(f"got {len(cfgs)} configs but {len(datas)} datasets")
    if plan is None:
        plan = [run_plan(cfg) for cfg in cfgs]
    if len(plan) != len(cfgs):
        raise ValueError(f"got {len(cfgs)} configs but a plan for {len(plan)}")
    if not cfgs:
        return []
    threads = _batch_threads(cfgs) if threads is None else max(1, int(threads))
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    if rules is None:
        rules = [[None] * len(runs_plan) for runs_plan in plan]
    runs = [[_Run(cfg, data, name, trained, record, rule)
             for (name, trained), rule in zip(runs_plan, exp_rules)]
            for cfg, data, runs_plan, exp_rules in zip(cfgs, datas, plan, rules)]
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for e, exp_runs in enumerate(runs):
        for k, run in enumerate(exp_runs):
            groups.setdefault(run.shape_key, []).append((e, k))
    results: list[list[RunResult | None]] = [[None] * len(exp_runs) for exp_runs in runs]
    for members in groups.values():
        if len(members) == 1 or not batched:
            for e, k in members:
                run = runs[e][k]  # its preparation time counts, as in train_run
                results[e][k] = _train_single(run, progress, time.perf_counter() - run.seconds)
            continue
        group = [runs[e][k] for e, k in members]
        numba.set_num_threads(threads)
        _train_group(group, progress)
        for (e, k), run in zip(members, group):
            results[e][k] = run.result(threads, False, run.seconds)
    return results


def _train_group(group: list[_Run], progress: Callable[[int], None] | None) -> None:
    """Advance runs of one shape together, one batched kernel call per trace point.

    The runs' arrays are stacked once; each run then works on views into
    the stacks, so tracing between calls reads the current weights in place.
    """
    R = len(group)
    ev0 = group[0].train_eval
    shape_f, shape_b = _kernels.packed_shapes(*ev0.X.shape, ev0.X.dtype)
    Xf = np.zeros((R,) + shape_f, ev0.X.dtype)
    Xb = np.zeros((R,) + shape_b, ev0.X.dtype)
    y = np.stack([run.train_eval.y for run in group])
    sgd = group[0].batches is not None  # the shape key keeps SGD and GD runs apart
    omega = np.stack([run.step_weight if sgd else run.train_eval.weight for run in group])
    W = np.stack([run.W for run in group])
    signal = np.stack([run.signal for run in group])
    learned = np.stack([run.learned for run in group])
    dims = np.stack([run.dims for run in group])
    beta = np.stack([run.beta for run in group])
    eta = np.array([float(run.cfg.train.lr) for run in group])
    threshold = np.array([float(run.cfg.model.threshold) for run in group])
    stop_loss = np.array([float(run.cfg.train.stop_loss) for run in group])
    for i, run in enumerate(group):  # packed straight into the stacks, no copies
        _kernels.fill_forward(run.train_eval.X, Xf[i])
        _kernels.fill_backward(run.train_eval.X, Xb[i])
        run.train_eval.adopt((Xf[i], Xb[i]))
        run.W, run.learned = W[i], learned[i]
        if sgd:
            run.step_weight = omega[i]
    stacked = _kernels.stack_rules([run.rule for run in group], W.shape[1])
    for i, run in enumerate(group):  # the runs' rules work on views into the stacks
        if run.rule is not None:
            run.rule = run.rule._replace(state=stacked[3][i], stats=stacked[6][i])
    t_start = np.zeros(R, np.int64)
    n_steps = np.zeros(R, np.int64)
    status = np.zeros(R, np.int64)
    t_stop = np.zeros(R, np.int64)
    last_loss = np.zeros(R, np.float64)
    _kernels.announce_compile("batch")  # before the step-0 records compile anything
    for run in group:
        run.start()
    sizer = CallSizer()
    while True:
        active = [i for i, run in enumerate(group) if not run.done]
        if not active:
            break
        n_steps[:] = -1  # runs that are done are left alone
        for i in active:
            t_start[i] = group[i].step
            n_steps[i] = sizer.next(group[i].segment())
            if sgd:
                n_steps[i] = 1
                group[i].batches.fill(group[i].step, group[i].step_weight)
        clock = time.perf_counter()
        _kernels.gd_segment_batch(Xf, Xb, dims, y, omega, W, group[0].kind, group[0].q,
                                  group[0].rho, eta, signal, beta, threshold, learned, t_start,
                                  n_steps, stop_loss, status, t_stop, last_loss, rules=stacked)
        seconds = time.perf_counter() - clock
        sizer.record(int(max(t_stop[i] - t_start[i] for i in active)), seconds)
        share = seconds / len(active)
        if progress is not None:
            progress(int(sum(t_stop[i] - t_start[i] for i in active)))
        for i in active:
            group[i].seconds += share
            group[i].advance(status[i], t_stop[i])


def _min_learned(learned: np.ndarray) -> np.ndarray:
    """A modality's learned step is its first bank's; -1 stays for never."""
    masked = np.where(learned >= 0, learned, np.iinfo(np.int64).max)
    first = masked.min(axis=1)
    return np.where(first == np.iinfo(np.int64).max, -1, first).astype(np.int64)
